"""SavedModel export: `model_dir/saved_model/<step>/`, loadable and fine-tunable.

The exported object is called as `module(images, trainable=bool)` on a float32
batch `[B, H, W, 3]` in [0, 1] (3 + k channels with `--randbits=k`) and
returns a dict of the encoder endpoints (the ResNet's `initial_conv`,
`initial_max_pool`, `block_group1`..`4`, `final_avg_pool`; the ConvNet's),
`proj_head_input`, `proj_head_output` and, when the model has a supervised
head, `logits_sup`. `trainable=True` runs BatchNorm in training mode (batch
statistics, moving averages updated) so that the module can be fine-tuned:
`module.variables` and `module.trainable_variables` list its variables
explicitly (a `tf.Module` does not see the variables of a Keras 3 model),
and gradients flow through the call. `tf.saved_model.load` and `hub.load`
both read it. Blur is never applied inside the module.

For deployment tools the export also carries two signatures:
- `serving_default(images)`: float32 `[N, H, W, 3]` in [0, 1], any size (the
  ResNet is fully convolutional and ends in a global average pool; for the
  numbers of the trained model feed the training resolution, e.g. the eval
  preprocessing's output; `--encoder=convnet` takes the training resolution
  only); returns the dict above, inference mode. With `--randbits` an image
  has 3 + bits channels, and `serving_bytes` appends the bits itself.
- `serving_bytes(image_bytes)`: a `[N]` string tensor of encoded JPEG/PNG/
  BMP/GIF images; decodes each and applies the eval preprocessing of
  `run.py` (centre crop of 87.5% and resize to `image_size`, no crop at 32 px
  or less), then returns the same dict. A server needs no Python.
`saved_model_cli`, TF Serving, `keras.layers.TFSMLayer`, `hub.KerasLayer`
and the TFLite converter read them.
"""
import os

from absl import logging
import tensorflow as tf

from tf2.data import augment, randbits
from tf2.errors import ExportError

SERVING_DEFAULT = 'serving_default'
SERVING_BYTES = 'serving_bytes'


class _Exported(tf.__internal__.tracking.AutoTrackable):
  """The object saved: the model, explicit variable lists, and the call."""

  def __init__(self, model):
    super().__init__()
    self.model = model
    self.variables = [v.value for v in model.variables]
    self.trainable_variables = [v.value for v in model.trainable_variables]
    self.regularization_losses = []

    @tf.function
    def call(images, trainable=False):
      return model(images, training=trainable, return_endpoints=True)

    # One trace per mode; the loaded object dispatches on the Python bool.
    config = model.config
    image_size = config.image_size
    # The ConvNet's dense layer takes the flattened maps of one image size only.
    side = image_size if config.encoder == 'convnet' else None
    images = tf.TensorSpec([None, side, side, config.view_channels], tf.float32)
    call.get_concrete_function(images, False)
    call.get_concrete_function(images, True)
    self.__call__ = call

    @tf.function(input_signature=[images])
    def serve(images):
      return call(images, False)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='image_bytes')])
    def serve_bytes(image_bytes):
      def decode(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        view = augment.preprocess(image, image_size, is_training=False, color_distort=False)
        if not config.randbits:
          return view
        return randbits.with_bits(view, image, config.randbits, 1)
      batch = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec(
          [image_size, image_size, config.view_channels], tf.float32))
      return call(batch, False)

    self.serve = serve
    self.serve_bytes = serve_bytes
    # The training resolution, for tools that feed the export (e.g. checkpoints.tflite).
    self.image_size = tf.function(lambda: tf.constant(image_size), input_signature=[])

  @property
  def signatures(self):
    return {SERVING_DEFAULT: self.serve.get_concrete_function(),
            SERVING_BYTES: self.serve_bytes.get_concrete_function()}


def export_saved_model(model, model_dir, step, keep_max=1):
  """Writes `model_dir/saved_model/<step>/`, keeping the newest `keep_max` exports.

  The export is written under `.incomplete-<step>` and renamed when complete,
  so `<step>` is never a half-written export; older exports are removed only
  after that.
  """
  base = os.path.join(model_dir, 'saved_model')
  export_dir = os.path.join(base, str(int(step)))
  scratch = os.path.join(base, f'.incomplete-{int(step)}')
  exported = _Exported(model)
  try:
    for stale in (scratch, export_dir):
      if tf.io.gfile.exists(stale):
        tf.io.gfile.rmtree(stale)
    tf.saved_model.save(exported, scratch, signatures=exported.signatures)
    tf.io.gfile.rename(scratch, export_dir)
  except (tf.errors.OpError, OSError) as e:
    if tf.io.gfile.exists(scratch):
      tf.io.gfile.rmtree(scratch)
    text = str(e).strip()
    raise ExportError(
        f'Exporting the SavedModel of step {step} to {export_dir} failed '
        f'({type(e).__name__}: {text.splitlines()[0][:300] if text else ""}): is the disk full '
        'or the directory read-only? The checkpoints and earlier exports are intact; free '
        'some space and run the same command (with --mode=eval to export only).') from e
  logging.info('Exported SavedModel to %s', export_dir)
  if keep_max > 0:
    steps = sorted(int(d.rstrip('/')) for d in tf.io.gfile.listdir(base)
                   if d.rstrip('/').isdigit())
    for old in steps[:-keep_max]:
      tf.io.gfile.rmtree(os.path.join(base, str(old)))
  return export_dir
