"""ResNet and SK-ResNet encoders of SimCLR (v1: ResNet, v2: SK-ResNet).

Architecture exactly as the original `resnet.py`:
- basic blocks for depths 18/34, bottlenecks for 50/101/152/200, widths
  64/128/256/512 (x4 for bottleneck outputs) times `width_multiplier`;
- the first block of every group has a projection shortcut (also group 1 of
  ResNet-18/34, whose shapes would allow identity: the original does this);
- "fixed" padding: stride-1 convs pad SAME, strided convs pad
  (k-1)//2 before and the rest after, then convolve VALID;
- convolution kernels VarianceScaling(1, fan_in, truncated normal), no bias;
  BN epsilon 1e-5, the last BN of each residual branch zero-initialised;
- SK (SimCLRv2, `sk_ratio` > 0): the 3x3 conv of a bottleneck becomes a
  two-branch conv (one 3x3 conv with 2x filters, split) mixed by a softmax
  attention computed from their global pool, plus ResNet-D: a three-conv
  stem and average-pool-then-1x1 projection shortcuts;
- SE (`se_ratio` > 0): squeeze-and-excitation after the last BN;
- CIFAR stem (3x3 stride 1, no max pool) for images of 32 px or less.

Sub-layers are held as named attributes, never in lists: Keras 3 lists of
layers are invisible to `tf.train.Checkpoint`.
"""
import dataclasses

import keras
import tensorflow as tf

from tf2.models.batch_norm import BatchNormalization
from tf2.models.composite import Composite

BATCH_NORM_EPSILON = 1e-5
BLOCK_GROUP_NAMES = ('block_group1', 'block_group2', 'block_group3', 'block_group4')
ENDPOINT_NAMES = ('initial_conv', 'initial_max_pool') + BLOCK_GROUP_NAMES + ('final_avg_pool',)

# depth -> (bottleneck?, blocks per group)
ARCHITECTURES = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
    200: (True, (3, 24, 36, 3)),
}


@dataclasses.dataclass(frozen=True)
class LayerArgs:
  """What every conv/BN of the encoder shares."""
  bn_momentum: float = 0.9
  global_bn: bool = True
  dtype: object = None  # Keras dtype policy (e.g. 'mixed_bfloat16').
  sk_ratio: float = 0.0
  se_ratio: float = 0.0

  def bn(self, name, zero_init=False, center=True, trainable=True):
    return BatchNormalization(
        momentum=self.bn_momentum, epsilon=BATCH_NORM_EPSILON, center=center,
        gamma_zero_init=zero_init, synchronized=self.global_bn, name=name,
        dtype=self.dtype, trainable=trainable)

  def conv(self, filters, kernel_size, strides, name, trainable=True):
    return Conv2dFixedPadding(filters, kernel_size, strides, name=name,
                              dtype=self.dtype, trainable=trainable)


def conv_initializer():
  return keras.initializers.VarianceScaling(
      scale=1.0, mode='fan_in', distribution='truncated_normal')


def fixed_padding(inputs, kernel_size):
  """Pads height and width independently of the input size (original's rule)."""
  pad_total = kernel_size - 1
  pad_beg = pad_total // 2
  pad_end = pad_total - pad_beg
  return tf.pad(inputs, [[0, 0], [pad_beg, pad_end], [pad_beg, pad_end], [0, 0]])


class Conv2dFixedPadding(Composite):
  """Bias-free conv: SAME padding at stride 1, explicit fixed padding when strided."""

  def __init__(self, filters, kernel_size, strides, **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = kernel_size
    self.strides = strides
    self.conv2d = keras.layers.Conv2D(
        filters, kernel_size, strides,
        padding='same' if strides == 1 else 'valid', use_bias=False,
        kernel_initializer=conv_initializer(), name='conv2d',
        dtype=kwargs.get('dtype'))

  def call(self, inputs):
    if self.strides > 1:
      inputs = fixed_padding(inputs, self.kernel_size)
    return self.conv2d(inputs)


class SelectiveKernel(Composite):
  """SK conv (SimCLRv2): two 3x3 branches mixed by a learned softmax attention."""

  def __init__(self, filters, strides, args: LayerArgs, min_dim=32, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    self.conv = args.conv(2 * filters, 3, strides, name='conv')
    self.bn = args.bn('batch_normalization')
    mid_dim = max(int(filters * args.sk_ratio), min_dim)
    self.attention_reduce = keras.layers.Conv2D(
        mid_dim, 1, use_bias=False, kernel_initializer=conv_initializer(),
        name='attention_reduce', dtype=args.dtype)
    self.attention_bn = args.bn('attention_batch_normalization')
    self.attention_expand = keras.layers.Conv2D(
        2 * filters, 1, use_bias=False, kernel_initializer=conv_initializer(),
        name='attention_expand', dtype=args.dtype)

  def call(self, inputs, training=False):
    x = tf.nn.relu(self.bn(self.conv(inputs), training=training))
    branches = tf.stack(tf.split(x, 2, axis=-1))  # [2, B, H, W, C]
    pooled = tf.reduce_mean(tf.reduce_sum(branches, 0), [1, 2], keepdims=True)
    attention = tf.nn.relu(self.attention_bn(self.attention_reduce(pooled), training=training))
    mixing = tf.stack(tf.split(self.attention_expand(attention), 2, axis=-1))
    mixing = tf.nn.softmax(tf.cast(mixing, tf.float32), axis=0)
    return tf.reduce_sum(branches * tf.cast(mixing, branches.dtype), 0)


class SqueezeExcitation(keras.layers.Layer):
  """SE: channel gates from the global pool (reduce to filters * se_ratio)."""

  def __init__(self, filters, se_ratio, dtype=None, **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.reduce_filters = max(1, int(filters * se_ratio))
    self.se_reduce = keras.layers.Conv2D(
        self.reduce_filters, 1, padding='same', use_bias=True,
        kernel_initializer=conv_initializer(), name='se_reduce', dtype=dtype)
    self._expand_dtype = dtype
    self.se_expand = None

  def build(self, input_shape):
    self.se_expand = keras.layers.Conv2D(
        int(input_shape[-1]), 1, padding='same', use_bias=True,
        kernel_initializer=conv_initializer(), name='se_expand', dtype=self._expand_dtype)

  def call(self, inputs):
    squeezed = tf.reduce_mean(inputs, [1, 2], keepdims=True)
    gates = self.se_expand(tf.nn.relu(self.se_reduce(squeezed)))
    return tf.sigmoid(gates) * inputs


class ProjectionShortcut(Composite):
  """1x1 conv + BN shortcut; with SK the ResNet-D form (avg pool, then 1x1 stride 1)."""

  def __init__(self, filters_out, strides, args: LayerArgs, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    self.resnet_d = args.sk_ratio > 0
    self.strides = strides
    if self.resnet_d:
      self.pool = keras.layers.AveragePooling2D(
          pool_size=2, strides=strides, padding='same' if strides == 1 else 'valid',
          dtype=args.dtype, name='avg_pool')
      self.conv = args.conv(filters_out, 1, 1, name='conv')
    else:
      self.conv = args.conv(filters_out, 1, strides, name='conv')
    self.bn = args.bn('batch_normalization')

  def call(self, inputs, training=False):
    x = inputs
    if self.resnet_d:
      if self.strides > 1:
        x = fixed_padding(x, 2)
      x = self.pool(x)
    return self.bn(self.conv(x), training=training)


class ResidualBlock(Composite):
  """Basic block (ResNet-18/34): 3x3 conv-BN-ReLU, 3x3 conv-BN(zero init), + shortcut."""

  def __init__(self, filters, strides, use_projection, args: LayerArgs, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    self.shortcut = ProjectionShortcut(filters, strides, args, name='shortcut') \
        if use_projection else None
    self.conv_0 = args.conv(filters, 3, strides, name='conv_0')
    self.bn_0 = args.bn('batch_normalization_0')
    self.conv_1 = args.conv(filters, 3, 1, name='conv_1')
    self.bn_1 = args.bn('batch_normalization_1', zero_init=True)
    self.se = SqueezeExcitation(filters, args.se_ratio, dtype=args.dtype, name='se') \
        if args.se_ratio > 0 else None

  def call(self, inputs, training=False):
    shortcut = inputs if self.shortcut is None else self.shortcut(inputs, training=training)
    x = tf.nn.relu(self.bn_0(self.conv_0(inputs), training=training))
    x = self.bn_1(self.conv_1(x), training=training)
    if self.se is not None:
      x = self.se(x)
    return tf.nn.relu(x + shortcut)


class BottleneckBlock(Composite):
  """Bottleneck: 1x1, 3x3 (or SK), 1x1 (4x filters, zero-init BN), + shortcut."""

  def __init__(self, filters, strides, use_projection, args: LayerArgs, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    self.shortcut = ProjectionShortcut(4 * filters, strides, args, name='shortcut') \
        if use_projection else None
    self.conv_0 = args.conv(filters, 1, 1, name='conv_0')
    self.bn_0 = args.bn('batch_normalization_0')
    if args.sk_ratio > 0:
      self.sk = SelectiveKernel(filters, strides, args, name='selective_kernel')
    else:
      self.sk = None
      self.conv_1 = args.conv(filters, 3, strides, name='conv_1')
      self.bn_1 = args.bn('batch_normalization_1')
    self.conv_2 = args.conv(4 * filters, 1, 1, name='conv_2')
    self.bn_2 = args.bn('batch_normalization_2', zero_init=True)
    self.se = SqueezeExcitation(filters, args.se_ratio, dtype=args.dtype, name='se') \
        if args.se_ratio > 0 else None

  def call(self, inputs, training=False):
    shortcut = inputs if self.shortcut is None else self.shortcut(inputs, training=training)
    x = tf.nn.relu(self.bn_0(self.conv_0(inputs), training=training))
    if self.sk is not None:
      x = self.sk(x, training=training)
    else:
      x = tf.nn.relu(self.bn_1(self.conv_1(x), training=training))
    x = self.bn_2(self.conv_2(x), training=training)
    if self.se is not None:
      x = self.se(x)
    return tf.nn.relu(x + shortcut)


class BlockGroup(Composite):
  """`blocks` residual blocks; the first is strided and has the projection shortcut."""

  def __init__(self, filters, bottleneck, blocks, strides, args: LayerArgs, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    block_cls = BottleneckBlock if bottleneck else ResidualBlock
    self.num_blocks = blocks
    for i in range(blocks):
      setattr(self, f'block_{i}', block_cls(
          filters, strides if i == 0 else 1, i == 0, args, name=f'block_{i}'))

  def blocks(self):
    return [getattr(self, f'block_{i}') for i in range(self.num_blocks)]

  def call(self, inputs, training=False):
    for block in self.blocks():
      inputs = block(inputs, training=training)
    return inputs


class Stem(Composite):
  """Initial conv(s) + BN-ReLU (+ 3x3/2 max pool for ImageNet-sized images)."""

  def __init__(self, width_multiplier, cifar_stem, args: LayerArgs, base_width=64, **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    self.cifar_stem = cifar_stem
    self.resnet_d = args.sk_ratio > 0 and not cifar_stem
    width = base_width * width_multiplier
    if cifar_stem:
      self.conv_0 = args.conv(width, 3, 1, name='conv_0')
    elif self.resnet_d:
      self.conv_0 = args.conv(width // 2, 3, 2, name='conv_0')
      self.bn_0 = args.bn('batch_normalization_0')
      self.conv_1 = args.conv(width // 2, 3, 1, name='conv_1')
      self.bn_1 = args.bn('batch_normalization_1')
      self.conv_2 = args.conv(width, 3, 1, name='conv_2')
    else:
      self.conv_0 = args.conv(width, 7, 2, name='conv_0')
    self.bn = args.bn('batch_normalization')
    if not cifar_stem:
      self.max_pool = keras.layers.MaxPooling2D(
          pool_size=3, strides=2, padding='same', dtype=args.dtype, name='max_pool')

  def call(self, inputs, training=False):
    """Returns (initial_conv, initial_max_pool) endpoints."""
    x = self.conv_0(inputs)
    if self.resnet_d:
      x = tf.nn.relu(self.bn_0(x, training=training))
      x = tf.nn.relu(self.bn_1(self.conv_1(x), training=training))
      x = self.conv_2(x)
    initial_conv = x
    x = tf.nn.relu(self.bn(x, training=training))
    if not self.cifar_stem:
      x = self.max_pool(x)
    return initial_conv, x


class ResNet(Composite):
  """The SimCLR encoder; `call` returns the 2-D globally pooled representation.

  `fine_tune_after_block` (-1: all trainable): when k >= 0 the stem and the
  block groups before group k+1 are frozen (`trainable=False`, so their BN
  uses moving statistics) and a stop_gradient cuts the graph there, as the
  original does when fine-tuning.
  """

  def __init__(self, depth=50, width_multiplier=1, cifar_stem=False,
               fine_tune_after_block=-1, args: LayerArgs = LayerArgs(), base_width=64,
               **kwargs):
    super().__init__(dtype=args.dtype, **kwargs)
    if depth not in ARCHITECTURES:
      raise ValueError(f'resnet_depth must be one of {sorted(ARCHITECTURES)}, got {depth}.')
    bottleneck, layers = ARCHITECTURES[depth]
    self.fine_tune_after_block = fine_tune_after_block
    self.stem = Stem(width_multiplier, cifar_stem, args, base_width=base_width, name='stem')
    for i, (name, blocks) in enumerate(zip(BLOCK_GROUP_NAMES, layers)):
      setattr(self, name, BlockGroup(
          base_width * (2 ** i) * width_multiplier, bottleneck, blocks, 1 if i == 0 else 2,
          args, name=name))
    if fine_tune_after_block >= 0:
      # The setter propagates to every sub-layer (BN then uses moving stats).
      self.stem.trainable = False
      for group in self.block_groups()[:fine_tune_after_block]:
        group.trainable = False

  def block_groups(self):
    return [getattr(self, name) for name in BLOCK_GROUP_NAMES]

  def call(self, inputs, training=False, return_endpoints=False):
    endpoints = {}
    endpoints['initial_conv'], x = self.stem(inputs, training=training)
    endpoints['initial_max_pool'] = x
    for i, group in enumerate(self.block_groups()):
      if self.fine_tune_after_block == i:
        x = tf.stop_gradient(x)
      x = group(x, training=training)
      endpoints[BLOCK_GROUP_NAMES[i]] = x
    if self.fine_tune_after_block == 4:
      x = tf.stop_gradient(x)
    x = tf.reduce_mean(x, [1, 2])
    endpoints['final_avg_pool'] = x
    if return_endpoints:
      return x, endpoints
    return x


def resnet_from_config(config, dtype=None) -> ResNet:
  args = LayerArgs(bn_momentum=config.batch_norm_decay, global_bn=config.global_bn,
                   dtype=dtype, sk_ratio=config.sk_ratio, se_ratio=config.se_ratio)
  return ResNet(depth=config.resnet_depth, width_multiplier=config.width_multiplier,
                cifar_stem=config.cifar_stem,
                fine_tune_after_block=config.encoder_fine_tune_after_block,
                args=args, base_width=config.resnet_base_width, name='resnet')
