"""Projection head (contrastive) and supervised head, as in the original.

Projection head (SimCLR section 2.1, SimCLRv2 section 2.2): `num_proj_layers`
dense layers, each dense (no bias) + BN. Middle layers keep the input width,
carry the BN bias (beta) and a ReLU; the last maps to `proj_out_dim` with
neither BN bias nor ReLU. `ft_proj_selector` picks which of the head's
hidden outputs (0: the encoder output itself) feeds the supervised head when
fine-tuning (SimCLRv2 fine-tunes from the middle of the projection head).

Supervised head: one dense layer with bias, under the name `head_supervised`
(LARS excludes it from weight decay and adaptation by that name).
"""
import keras
import tensorflow as tf

from tf2.models.batch_norm import BatchNormalization
from tf2.models.composite import Composite
from tf2.models.resnet import BATCH_NORM_EPSILON


class LinearLayer(keras.layers.Layer):
  """Dense (N(0, 0.01) init) with optional BN; `units=None` keeps the input width."""

  def __init__(self, units=None, use_bias=True, use_bn=False, zero_init=False,
               bn_momentum=0.9, global_bn=True, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.use_bias = use_bias
    self.use_bn = use_bn
    self.zero_init = zero_init
    self.bn_momentum = bn_momentum
    self.global_bn = global_bn
    self.dense = None
    self.bn = None

  def build(self, input_shape):
    units = self.units or int(input_shape[-1])
    initializer = 'zeros' if self.zero_init else keras.initializers.RandomNormal(stddev=0.01)
    self.dense = keras.layers.Dense(
        units, use_bias=self.use_bias and not self.use_bn,
        kernel_initializer=initializer, name='dense', dtype=self.dtype_policy)
    if self.use_bn:
      self.bn = BatchNormalization(
          momentum=self.bn_momentum, epsilon=BATCH_NORM_EPSILON, center=self.use_bias,
          synchronized=self.global_bn, name='batch_normalization', dtype=self.dtype_policy)

  def call(self, inputs, training=False):
    if inputs.shape.rank != 2:
      raise ValueError(f'LinearLayer expects [batch, features], got {inputs.shape}.')
    x = self.dense(inputs)
    if self.bn is not None:
      x = self.bn(x, training=training)
    return x


class ProjectionHead(Composite):
  """Returns (projection output, the hidden selected by `ft_proj_selector`)."""

  def __init__(self, mode='nonlinear', num_layers=3, out_dim=128, ft_proj_selector=0,
               bn_momentum=0.9, global_bn=True, **kwargs):
    super().__init__(**kwargs)
    self.mode = mode
    self.ft_proj_selector = ft_proj_selector
    common = dict(use_bn=True, bn_momentum=bn_momentum, global_bn=global_bn,
                  dtype=kwargs.get('dtype'))
    if mode == 'none':
      self.num_layers = 0
    elif mode == 'linear':
      self.num_layers = 1
      self.layer_0 = LinearLayer(out_dim, use_bias=False, name='l_0', **common)
    elif mode == 'nonlinear':
      self.num_layers = num_layers
      for j in range(num_layers):
        last = j == num_layers - 1
        setattr(self, f'layer_{j}', LinearLayer(
            out_dim if last else None, use_bias=not last, name=f'nl_{j}', **common))
    else:
      raise ValueError(f'Unknown projection head mode {mode!r}.')

  def linear_layers(self):
    return [getattr(self, f'layer_{j}') for j in range(self.num_layers)]

  def call(self, inputs, training=False):
    hiddens = [inputs]
    for j, layer in enumerate(self.linear_layers()):
      x = layer(hiddens[-1], training=training)
      if self.mode == 'nonlinear' and j != self.num_layers - 1:
        x = tf.nn.relu(x)
      hiddens.append(x)
    return hiddens[-1], hiddens[self.ft_proj_selector]


class SupervisedHead(Composite):
  """The linear classifier `head_supervised`; zero-initialised on request."""

  def __init__(self, num_classes, zero_init=False, name='head_supervised', **kwargs):
    super().__init__(name=name, **kwargs)
    self.linear_layer = LinearLayer(num_classes, use_bias=True, zero_init=zero_init,
                                    name='linear_layer', dtype=kwargs.get('dtype'))

  def call(self, inputs, training=False):
    return self.linear_layer(inputs, training=training)
