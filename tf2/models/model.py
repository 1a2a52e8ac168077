"""The SimCLR model: encoder + projection head + supervised head.

Input layout is the original's: the augmented views of each image stacked on
the channel axis (`[B, H, W, 3 * views]`, 2 views when pretraining). The model
splits them into a `[views * B, H, W, 3]` batch (view-major), so that BN sees
every view together. When pretraining it can augment on the accelerator, per
batch with each image's own draw: the colour distortion
(`--color_jitter_on_device`, `tf2/data/color.py`), then the blur.

`call` returns a dict of float32 (float64 in float64 mode) tensors: `proj_head_input` (the encoder
output), `proj_head_output` (equal to the input with head mode `none`), and
`logits_sup` when the model has a supervised head (fine-tuning, or linear
evaluation while pretraining, where the head sees a stop-gradient of the
representation so label information never reaches the encoder). With
`return_endpoints=True` it adds the encoder's intermediate outputs.
"""
import keras
import tensorflow as tf

from tf2.data import blur, color
from tf2.dtypes import at_least_float32, dtype_policy
from tf2.config import Config
from tf2.models.heads import ProjectionHead, SupervisedHead
from tf2.models.resnet import resnet_from_config


def split_views(images):
  """[B, H, W, 3k] -> [k * B, H, W, 3] (all first views, then all second views...)."""
  channels = images.shape[-1]
  if channels is None or channels % 3:
    raise ValueError('The input channel dimension must be static and a multiple of 3 '
                     f'(views stacked on channels); got input shape {images.shape}.')
  return tf.concat(tf.split(images, channels // 3, axis=-1), 0)


def stack_views(features, views):
  """[k * B, H, W, 3] -> [B, H, W, 3k]: the inverse of `split_views`."""
  return tf.concat(tf.split(features, views, axis=0), -1)


class SimCLRModel(keras.Model):
  """SimCLR v1/v2 network for pretraining, fine-tuning and linear evaluation."""

  def __init__(self, config: Config, num_classes: int, **kwargs):
    super().__init__(name=kwargs.pop('name', 'simclr'), **kwargs)
    self.config = config
    self.num_classes = num_classes
    dtype = dtype_policy(config.precision)
    self.resnet_model = resnet_from_config(config, dtype)
    self.projection_head = ProjectionHead(
        config.proj_head_mode, config.num_proj_layers, config.proj_out_dim,
        config.ft_proj_selector, bn_momentum=config.batch_norm_decay,
        global_bn=config.global_bn, name='head_contrastive', dtype=dtype)
    self.supervised_head = SupervisedHead(
        num_classes, zero_init=config.zero_init_logits_layer,
        dtype=dtype) if config.has_supervised_head else None

  def build(self, input_shape):  # pylint: disable=unused-argument
    """Nothing to create here: sub-layers build on the first call (see models.composite)."""

  @property
  def augments_when_training(self):
    """Whether `call(training=True)` augments its inputs (pretraining with use_blur or
    color_jitter_on_device)."""
    cfg = self.config
    return cfg.train_mode == 'pretrain' and (cfg.use_blur or cfg.color_jitter_on_device)

  def _augment_views(self, features):
    cfg = self.config
    if cfg.color_jitter_on_device:
      features = color.batch_random_color_jitter(features, cfg.color_jitter_strength,
                                                 cfg.color_jitter_impl)
    if cfg.use_blur:
      features = blur.batch_random_blur(features, cfg.image_size)
    return features

  def device_augment(self, inputs):
    """Training's augmentations on the accelerator, on stacked views (each image's own
    draw)."""
    return stack_views(self._augment_views(split_views(inputs)), inputs.shape[-1] // 3)

  def call(self, inputs, training=False, return_endpoints=False, apply_device_augment=None):
    """`apply_device_augment=None`: when training and `augments_when_training`."""
    cfg = self.config
    features = split_views(inputs)
    if apply_device_augment is None:
      apply_device_augment = training and self.augments_when_training
    if apply_device_augment:
      features = self._augment_views(features)
    hiddens, endpoints = self.resnet_model(features, training=training, return_endpoints=True)
    proj_output, ft_input = self.projection_head(hiddens, training=training)
    outputs = {'proj_head_input': hiddens, 'proj_head_output': proj_output}
    if self.supervised_head is not None:
      if cfg.train_mode == 'pretrain':
        ft_input = tf.stop_gradient(ft_input)
      outputs['logits_sup'] = self.supervised_head(ft_input, training=training)
    if return_endpoints:
      outputs.update(endpoints)
    return {k: at_least_float32(v) for k, v in outputs.items()}

  def projection_shape(self, batch, views=2):
    """[views * batch, d] of `proj_head_output`, from a trace (nothing runs)."""
    size = self.config.image_size
    spec = tf.TensorSpec([batch, size, size, 3 * views])
    fn = tf.function(lambda x: self(x, training=False, apply_device_augment=False))
    return fn.get_concrete_function(spec).structured_outputs['proj_head_output'].shape.as_list()

  def build_for(self, image_size=None, views=None):
    """Creates every variable by calling the model on a dummy batch.

    Restoring into an unbuilt Keras 3 model silently creates duplicate
    variables, so always build first.
    """
    size = image_size or self.config.image_size
    if views is None:
      views = 2 if self.config.train_mode == 'pretrain' else 1
    self(tf.zeros([2, size, size, 3 * views]), training=False)
    return self
