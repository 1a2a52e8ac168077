"""The SimCLR model: encoder + projection head + supervised head.

Input layout is the original's: the augmented views of each image stacked on
the channel axis (`[B, H, W, c * views]`, 2 views when pretraining,
`tf2/views.py`; c = `config.view_channels`: RGB, then the `--randbits`
channels). The model splits them into a `[views * B, H, W, c]` batch
(view-major), so that BN sees every view together. It augments nothing: the
augmentations that run on the accelerator are the train step's first stage
(`tf2/data/device_augment.py`). The encoder is the ResNet or, with
`--encoder=convnet`, the small ConvNet of `convnet.py`.

`call` returns a dict of float32 (float64 in float64 mode) tensors: `proj_head_input` (the encoder
output), `proj_head_output` (equal to the input with head mode `none`), and
`logits_sup` when the model has a supervised head (fine-tuning, or linear
evaluation while pretraining, where the head sees a stop-gradient of the
representation so label information never reaches the encoder). With
`return_endpoints=True` it adds the encoder's intermediate outputs.
"""
import keras
import tensorflow as tf

from tf2.views import split_views
from tf2.dtypes import at_least_float32, dtype_policy
from tf2.config import Config
from tf2.models.heads import ProjectionHead, SupervisedHead
from tf2.models.convnet import convnet_from_config
from tf2.models.resnet import resnet_from_config


class SimCLRModel(keras.Model):
  """SimCLR v1/v2 network for pretraining, fine-tuning and linear evaluation."""

  def __init__(self, config: Config, num_classes: int, **kwargs):
    super().__init__(name=kwargs.pop('name', 'simclr'), **kwargs)
    self.config = config
    self.num_classes = num_classes
    dtype = dtype_policy(config.precision)
    # The encoder, under the original checkpoints' key whichever it is (--encoder).
    self.resnet_model = (convnet_from_config if config.encoder == 'convnet'
                         else resnet_from_config)(config, dtype)
    self.projection_head = ProjectionHead(
        config.proj_head_mode, config.num_proj_layers, config.proj_out_dim,
        config.ft_proj_selector, bn_momentum=config.batch_norm_decay,
        global_bn=config.global_bn, name='head_contrastive', dtype=dtype)
    self.supervised_head = SupervisedHead(
        num_classes, zero_init=config.zero_init_logits_layer,
        dtype=dtype) if config.has_supervised_head else None

  def build(self, input_shape):  # pylint: disable=unused-argument
    """Nothing to create here: sub-layers build on the first call (see models.composite)."""

  def call(self, inputs, training=False, return_endpoints=False):
    cfg = self.config
    features = split_views(inputs, cfg.view_channels)
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
    spec = tf.TensorSpec([batch, size, size, self.config.view_channels * views])
    fn = tf.function(lambda x: self(x, training=False))
    return fn.get_concrete_function(spec).structured_outputs['proj_head_output'].shape.as_list()

  def build_for(self, image_size=None, views=None):
    """Creates every variable by calling the model on a dummy batch.

    Restoring into an unbuilt Keras 3 model silently creates duplicate
    variables, so always build first.
    """
    size = image_size or self.config.image_size
    if views is None:
      views = 2 if self.config.train_mode == 'pretrain' else 1
    self(tf.zeros([2, size, size, self.config.view_channels * views]), training=False)
    return self
