"""Images per second of the original's augmentation and ours on the same JPEGs, side by side.

    python -m benchmarks.input_side_by_side --original /path/to/simclr
        [--images DIR] [--seconds 8] [--rounds 3] [--threads 1,2] [--image_size 224]

`--original` is a checkout of github.com/google-research/simclr; its
`tf2/data_util.py` is imported at run time, never copied, in a worker process
(`children.py`) that measures the original's side when asked. Both sides read
the same JPEG bytes from memory through the same tf.data skeleton (map, batch
64, prefetch), with a private pool of N threads and no intra-op parallelism,
so that the figure is per-core work:
- the original: decode as TFDS does (`tf.io.decode_image`, 3 channels), then
  its `preprocess_image`; pretraining concatenates two training views, as its
  `data.py` does;
- ours: `datasets.decode_image` and `input_pipeline.preprocess_fn`, the
  functions our input pipeline maps; for pretraining also with
  `--color_jitter_on_device`, which leaves the colour distortion to the
  accelerator. What that costs there is printed last, timed on this CPU;
- for pretraining, kernels alone (`kernels_alone`): only the decode, crop,
  resize, saturation and hue kernels, which the original and ours both call.
  Its ratio to the original bounds ours (docs/performance.md).
Neither side blurs: both blur a batch on the accelerator. Rounds alternate the
sides, so that drift of the machine's speed hits both. `--images` takes a
folder of JPEGs (e.g. ImageNet's); without it, 64 photo-like 500x375 JPEGs
(smooth colour fields with fine grain, about 70 KB each) are generated.
"""
import argparse
import contextlib
import functools
import glob
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks import children
from tf2 import hardware
from tf2.config import Config
from tf2.data import augment, color, datasets, input_pipeline

PRETRAIN, EVAL = 'pretrain (2 views)', 'eval'


def photo_like_jpegs(n=64, height=375, width=500, seed=0):
  """JPEG bytes of smooth colour fields at three scales plus grain (not noise-only, not flat)."""
  rng = np.random.RandomState(seed)
  out = []
  for _ in range(n):
    image = np.zeros([height, width, 3], np.float32)
    for cells, weight in ((4, 0.6), (16, 0.3), (64, 0.15)):
      field = rng.uniform(0, 255, (cells * 3 // 4 + 1, cells + 1, 3)).astype(np.float32)
      image += weight * tf.image.resize(field, [height, width], 'bicubic').numpy()
    image += rng.normal(0, 10, image.shape)
    pixels = np.clip(image / 1.05, 0, 255).astype(np.uint8)
    out.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
  return out


def read_jpegs(folder, limit=256):
  paths = sorted(glob.glob(os.path.join(folder, '**', '*.jp*g'), recursive=True))[:limit]
  if not paths:
    raise SystemExit(f'No .jpg/.jpeg files under {folder}.')
  return [open(p, 'rb').read() for p in paths]


def images_per_second(fn, jpegs, threads, seconds, batch=64):
  ds = tf.data.Dataset.from_tensor_slices(jpegs).repeat()
  ds = ds.map(fn, num_parallel_calls=threads, deterministic=False).batch(batch)
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  options.threading.max_intra_op_parallelism = 1
  ds = ds.with_options(options).prefetch(2)
  it = iter(ds)
  for _ in range(3):  # warm-up: tracing, thread start
    next(it)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    count += int(next(it).shape[0])
  return count / (time.perf_counter() - start)


def original_pipelines(image_size, strength):
  """{kind: map function} of the original; only in the worker, whose path leads with the
  original's tf2/ folder."""
  import data_util  # pylint: disable=g-import-not-at-top

  def tfds_decode(data):
    return tf.io.decode_image(data, channels=3, expand_animations=False)

  def original_pretrain(data):
    image = tfds_decode(data)
    return tf.concat([data_util.preprocess_image(image, image_size, image_size, is_training=True,
                                                 color_jitter_strength=strength)
                      for _ in range(2)], -1)

  def original_eval(data):
    return data_util.preprocess_image(tfds_decode(data), image_size, image_size,
                                      is_training=False, test_crop=True)

  return {PRETRAIN: original_pretrain, EVAL: original_eval}


def our_pipelines(image_size, strength):
  """{kind: {side: map function}} of ours, and of the kernels alone."""
  config = Config(image_size=image_size, train_mode='pretrain', color_jitter_strength=strength)
  ours = lambda cfg, training: (lambda d: input_pipeline.preprocess_fn(cfg, training)(
      datasets.decode_image(d)))
  return {
      PRETRAIN: {
          'ours': ours(config, True),
          'ours, colour on device': ours(config.replace(color_jitter_on_device=True), True),
          'kernels alone': lambda d: kernels_alone(d, image_size, 2, strength)},
      EVAL: {'ours': ours(config, False)},
  }


def serve_original(args):
  """The worker: once loaded, a line `"ready"` on stdout; then for each request on stdin,
  a line [kind, threads, seconds], a line with the images/s of the original's pipeline."""
  jpegs = read_jpegs(args.images)
  pipelines = original_pipelines(args.image_size, args.strength)
  print(json.dumps('ready'), flush=True)
  for line in sys.stdin:
    kind, threads, seconds = json.loads(line)
    print(json.dumps(images_per_second(pipelines[kind], jpegs, threads, seconds)), flush=True)


@contextlib.contextmanager
def original_worker(args, folder):
  """rate(kind, threads, seconds): images/s of the original's pipeline, measured by a
  worker process on the JPEGs of `folder` (loaded before any measurement starts, so
  that its start-up competes with none)."""
  worker = children.start(
      'benchmarks.input_side_by_side',
      ['--worker', '--original', args.original, '--images', folder,
       '--image_size', str(args.image_size), '--strength', str(args.strength)],
      original=args.original, TF_CPP_MIN_LOG_LEVEL='2')

  def answer():
    line = worker.stdout.readline()
    if not line:
      raise SystemExit(f"The original's worker stopped (exit {worker.wait()}).")
    return json.loads(line)

  def rate(kind, threads, seconds):
    worker.stdin.write(json.dumps([kind, threads, seconds]) + '\n')
    return answer()

  try:
    answer()  # "ready"
    yield rate
  finally:
    worker.stdin.close()
    worker.wait()


def write_jpegs(jpegs, folder):
  """`jpegs` as files of `folder` that `read_jpegs` reads back in the same order."""
  for i, data in enumerate(jpegs):
    with open(os.path.join(folder, f'{i:04d}.jpg'), 'wb') as f:
      f.write(data)
  return folder


def kernels_alone(data, image_size, views, strength):
  """Only some of the tf.image kernels that make the original's training views, all of
  which ours calls too: the JPEG decode; per view the crop box, the crop's float
  conversion and bicubic resize and, with the jitter's probability, the saturation and
  hue kernels (at the range's top). Why it bounds us: docs/performance.md."""
  image = datasets.decode_image(data)
  out = []
  for _ in range(views):
    view = augment.random_crop_with_resize(image, image_size, image_size)
    out.append(tf.cond(
        tf.random.uniform([]) < color.JITTER_PROBABILITY,
        lambda v=view: tf.image.adjust_hue(tf.image.adjust_saturation(v, 1.0 + 0.8 * strength),
                                           0.2 * strength),
        lambda v=view: v))
  return tf.concat(out, -1)


def device_colour_seconds(image_size, strength, views=128, repeats=5):
  """Seconds per view of `color.batch_random_color_jitter` here, all threads (what
  --color_jitter_on_device adds to a step when the device is this CPU)."""
  images = tf.random.uniform([views, image_size, image_size, 3], -0.02, 1.02)
  jitter = tf.function(lambda x: color.batch_random_color_jitter(x, strength))
  jitter(images).numpy()
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    jitter(images).numpy()
    best = min(best, time.perf_counter() - start)
  return best / views


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--original', required=True, help='checkout of google-research/simclr')
  parser.add_argument('--images', default=None, help='a folder of JPEGs (default: generated)')
  parser.add_argument('--image_size', type=int, default=224)
  parser.add_argument('--strength', type=float, default=1.0, help='colour jitter strength')
  parser.add_argument('--seconds', type=float, default=8.0, help='per measurement')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--threads', default='1,2')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    return serve_original(args)
  print(hardware.describe(), flush=True)
  jpegs = read_jpegs(args.images) if args.images else photo_like_jpegs()
  shape = tf.image.extract_jpeg_shape(jpegs[0]).numpy()
  print(f'{len(jpegs)} JPEGs, first {shape[1]}x{shape[0]}, mean '
        f'{np.mean([len(j) for j in jpegs]) / 1000:.0f} KB; {args.image_size} px, colour '
        f'strength {args.strength}, {args.seconds:g} s per measurement', flush=True)
  threads = [int(t) for t in args.threads.split(',')]
  rates = {}
  with tempfile.TemporaryDirectory() as tmp, original_worker(
      args, args.images or write_jpegs(jpegs, tmp)) as original:
    # {kind: {side: rate(threads, seconds)}}, the original first.
    cases = {kind: dict({'original': functools.partial(original, kind)},
                        **{side: functools.partial(images_per_second, fn, jpegs)
                           for side, fn in sides.items()})
             for kind, sides in our_pipelines(args.image_size, args.strength).items()}
    for r in range(args.rounds):
      for n in threads:
        for kind, sides in cases.items():
          order = list(sides) if r % 2 == 0 else list(sides)[::-1]
          for side in order:
            rate = sides[side](n, args.seconds)
            rates.setdefault((kind, n, side), []).append(rate)
            print(f'round {r + 1}, {n} thread(s), {kind}, {side}: {rate:.0f} images/s',
                  flush=True)
  print('\nmedian images/s over rounds; (ratio to the original: the median of the per-round '
        'ratios)')
  for kind, sides in cases.items():
    for n in threads:
      original = rates[(kind, n, 'original')]
      line = f'{kind}, {n} thread(s): original {statistics.median(original):.0f} images/s'
      for side in list(sides)[1:]:
        ours = rates[(kind, n, side)]
        ratio = statistics.median(o / p for o, p in zip(ours, original))
        line += f'; {side} {statistics.median(ours):.0f} ({ratio:.2f}x)'
      print(line)
  per_view = device_colour_seconds(args.image_size, args.strength)
  print(f'--color_jitter_on_device on this CPU as the device: {per_view * 1e3:.2f} ms per '
        f'{args.image_size}-px view (batch of 128 views, all threads)')


if __name__ == '__main__':
  main()
