"""The small ConvNet of the Intriguing Properties RandBits notebook (`--encoder=convnet`).

The notebook's `ConvN` encoder (Chen, Luo, Li 2021, Fig. 5a): three 3x3
convolutions of stride 2 with 32, 64 and 64 filters, VALID padding, a
flatten, and a dense layer of 128 units; each without bias and followed by
BatchNorm and a ReLU; every width times `width_multiplier`. At 28 px the maps
are 13, 6 and 2 px wide. Keras' default initialisers, as in the notebook. The
dense layer needs the flattened size, so the network takes one image size
only (the one it was built for), unlike the ResNet.

It stands in for the ResNet in `SimCLRModel` (held as `resnet_model`, the key
the checkpoints use for the encoder) and returns its representation and the
intermediate outputs as endpoints.
"""
import keras

from tf2.models.composite import Composite
from tf2.models.resnet import LayerArgs

ENDPOINT_NAMES = ('conv_block1', 'conv_block2', 'conv_block3', 'dense_block')
FILTERS = (32, 64, 64)
UNITS = 128


class _BatchNormRelu(Composite):
  """A convolution or dense layer (no bias), BatchNorm, ReLU."""

  def __init__(self, layer, args: LayerArgs, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    self.layer = layer
    self.batch_normalization = args.bn('batch_normalization')

  def call(self, inputs, training=False):
    x = self.batch_normalization(self.layer(inputs), training=training)
    return keras.ops.relu(x)


class ConvNet(Composite):
  """`call` returns the [batch, 128 * width_multiplier] representation."""

  def __init__(self, width_multiplier=1, args: LayerArgs = LayerArgs(), **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    for i, filters in enumerate(FILTERS):
      conv = keras.layers.Conv2D(filters * width_multiplier, 3, 2, padding='valid',
                                 use_bias=False, name='conv2d', dtype=args.dtype)
      setattr(self, ENDPOINT_NAMES[i], _BatchNormRelu(conv, args, name=ENDPOINT_NAMES[i]))
    dense = keras.layers.Dense(UNITS * width_multiplier, use_bias=False, name='dense',
                               dtype=args.dtype)
    self.dense_block = _BatchNormRelu(dense, args, name='dense_block')

  def call(self, inputs, training=False, return_endpoints=False):
    endpoints = {}
    x = inputs
    for name in ENDPOINT_NAMES[:3]:
      x = getattr(self, name)(x, training=training)
      endpoints[name] = x
    x = keras.ops.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
    x = self.dense_block(x, training=training)
    endpoints['dense_block'] = x
    if return_endpoints:
      return x, endpoints
    return x


def convnet_from_config(config, dtype=None) -> ConvNet:
  args = LayerArgs(bn_momentum=config.batch_norm_decay, global_bn=config.global_bn, dtype=dtype)
  return ConvNet(config.width_multiplier, args, name='convnet')
