"""Convert an export's `serving_default` signature to TensorFlow Lite.

    python -m checkpoints.tflite SRC DST.tflite [--quantize=none|float16|dynamic_range]

SRC is one of our SavedModel exports (`model_dir/saved_model/<step>/`, or
`DST/saved_model/0/` written by `checkpoints.convert`), or a `model_dir`,
whose newest export is used. Released models (TF1 hub modules, original tf2
SavedModels) have no `serving_default` signature: convert them with
`python -m checkpoints.convert` first. The command writes DST, then runs the
TFLite model and the SavedModel on the same fixed images (seeded, at the
export's training resolution) and reports the file size and the largest
absolute difference of every output.

Quantisation: `float16` stores weights as float16 (half the size, outputs
within ~1e-3); `dynamic_range` stores weights as int8 (a quarter of the size,
larger differences: check them on your task).
"""
import argparse
import os
import warnings

import numpy as np
import tensorflow as tf

from tf2.export import SERVING_DEFAULT

QUANTIZATIONS = ('none', 'float16', 'dynamic_range')


class TFLiteError(ValueError):
  """SRC cannot be converted; the message says why and what to do."""


def resolve_export(src):
  """An export directory, or the newest `saved_model/<step>` of a model_dir."""
  exports = os.path.join(src, 'saved_model')
  if tf.io.gfile.isdir(exports) and not tf.io.gfile.exists(os.path.join(src, 'saved_model.pb')):
    steps = [int(d.rstrip('/')) for d in tf.io.gfile.listdir(exports) if d.rstrip('/').isdigit()]
    if not steps:
      raise TFLiteError(f'{exports} holds no export; run an evaluation (--mode=eval) first.')
    return os.path.join(exports, str(max(steps)))
  if not tf.io.gfile.exists(os.path.join(src, 'saved_model.pb')):
    raise TFLiteError(f'{src} is neither a SavedModel nor a model_dir with saved_model/<step>/.')
  return src


def convert(src, quantize='none'):
  """Returns (tflite bytes, export path)."""
  if quantize not in QUANTIZATIONS:
    raise TFLiteError(f'--quantize must be one of {QUANTIZATIONS}, not {quantize!r}.')
  path = resolve_export(src)
  loaded = tf.saved_model.load(path)
  if SERVING_DEFAULT not in loaded.signatures:
    raise TFLiteError(
        f'{path} has no {SERVING_DEFAULT!r} signature (a released TF1 hub module or original '
        'tf2 SavedModel?). Convert it first: python -m checkpoints.convert SRC DIR, then use '
        'DIR/saved_model/0.')
  converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[SERVING_DEFAULT])
  if quantize != 'none':
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if quantize == 'float16':
    converter.target_spec.supported_types = [tf.float16]
  return converter.convert(), path


def _interpreter(content):
  try:  # LiteRT, the interpreter's new home, when installed.
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')  # tf.lite.Interpreter's deprecation notice.
      return tf.lite.Interpreter(model_content=content)
  return Interpreter(model_content=content)


def compare(content, export_path, batch=2, seed=0, relative=False):
  """Max |TFLite - SavedModel| per output on fixed images in [0, 1].

  With `relative`, each difference is divided by the output's largest magnitude
  (at least 1): the fair measure for float16, whose error grows with the value.
  """
  loaded = tf.saved_model.load(export_path)
  size = int(loaded.image_size()) if hasattr(loaded, 'image_size') else 224
  spec = loaded.signatures[SERVING_DEFAULT].structured_input_signature[1]['images']
  channels = spec.shape[-1]  # 3, or 3 + the --randbits channels.
  images = np.random.default_rng(seed).uniform(size=(batch, size, size, channels))
  images = images.astype(np.float32)
  expected = loaded.signatures[SERVING_DEFAULT](images=tf.constant(images))
  runner = _interpreter(content).get_signature_runner(SERVING_DEFAULT)
  got = runner(images=images)
  diffs = {}
  for k in sorted(expected):
    want = expected[k].numpy()
    scale = max(1.0, float(np.max(np.abs(want)))) if relative else 1.0
    diffs[k] = float(np.max(np.abs(got[k] - want))) / scale
  return diffs


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('src')
  parser.add_argument('dst')
  parser.add_argument('--quantize', default='none', choices=QUANTIZATIONS)
  args = parser.parse_args(argv)
  try:
    content, path = convert(args.src, args.quantize)
  except (TFLiteError, OSError) as e:
    raise SystemExit(f'error: {e}')
  with open(args.dst, 'wb') as f:
    f.write(content)
  diffs = compare(content, path)
  relative = compare(content, path, relative=True)
  print(f'Wrote {args.dst} from {path}: {len(content) / 2**20:.2f} MiB '
        f'(quantize={args.quantize}); max |TFLite - SavedModel| over '
        f'{len(diffs)} outputs: {max(diffs.values()):.3g} '
        f'(the representation, proj_head_input, {diffs["proj_head_input"]:.3g}); relative to the '
        f'largest output value: {max(relative.values()):.3g}')
  return diffs


if __name__ == '__main__':
  main()
