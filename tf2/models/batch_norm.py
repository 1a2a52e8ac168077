"""Batch normalisation: fused where statistics are local, cross-replica for global BN.

SimCLR computes BN statistics over the whole global batch ("global BN",
paper section 3, so that the model cannot use the local batch to cheat the
contrastive task). This layer does that with one all-reduce of per-channel
sums when `synchronized` is on and there is more than one replica in sync;
otherwise (local statistics, or a single replica where local is global) it
uses TensorFlow's fused kernel, which is several times faster than Keras 3's
moments-based BatchNormalization on CPU and GPU.

Semantics follow the original (Keras 2 `BatchNormalization(fused=False)` /
`SyncBatchNormalization`): normalisation by the biased batch variance,
moving averages `moving = moving * momentum + batch * (1 - momentum)` of
the batch mean and biased variance, epsilon 1e-5 in SimCLR's ResNet. In
inference mode, or when the layer is frozen (`trainable=False`), the moving
statistics are used.
"""
import keras
import tensorflow as tf

from tf2.dtypes import at_least_float32


def _replicas_in_sync():
  ctx = tf.distribute.get_replica_context()
  if ctx is None:  # Cross-replica context: no per-replica batch here.
    return 1
  return ctx.num_replicas_in_sync


class BatchNormalization(keras.layers.Layer):
  """BN over all axes but the last; synchronised across replicas on request."""

  def __init__(self, momentum=0.9, epsilon=1e-5, center=True, scale=True,
               gamma_zero_init=False, synchronized=False, **kwargs):
    super().__init__(**kwargs)
    self.momentum = momentum
    self.epsilon = epsilon
    self.center = center
    self.scale = scale
    self.gamma_zero_init = gamma_zero_init
    self.synchronized = synchronized

  def build(self, input_shape):
    channels = int(input_shape[-1])
    if self.scale:
      self.gamma = self.add_weight(
          name='gamma', shape=(channels,),
          initializer='zeros' if self.gamma_zero_init else 'ones', autocast=False)
    if self.center:
      self.beta = self.add_weight(
          name='beta', shape=(channels,), initializer='zeros', autocast=False)
    self.moving_mean = self.add_weight(
        name='moving_mean', shape=(channels,), initializer='zeros',
        trainable=False, autocast=False, aggregation='mean')
    self.moving_variance = self.add_weight(
        name='moving_variance', shape=(channels,), initializer='ones',
        trainable=False, autocast=False, aggregation='mean')

  def _scale_offset(self, channels):
    dtype = self.variable_dtype
    gamma = self.gamma if self.scale else tf.ones([channels], dtype)
    beta = self.beta if self.center else tf.zeros([channels], dtype)
    return tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta)

  def call(self, inputs, training=False):
    channels = inputs.shape[-1]
    gamma, beta = self._scale_offset(channels)
    if not (training and self.trainable):
      return self._normalize(inputs, self.moving_mean, self.moving_variance, gamma, beta)
    if self.synchronized and _replicas_in_sync() > 1:
      mean, variance = self._global_moments(inputs)
      outputs = self._normalize(inputs, mean, variance, gamma, beta)
    elif inputs.dtype == tf.float64:  # No fused kernel for float64.
      mean, variance = tf.nn.moments(inputs, list(range(inputs.shape.rank - 1)))
      outputs = self._normalize(inputs, mean, variance, gamma, beta)
    else:
      outputs, mean, variance = self._fused_train(inputs, gamma, beta)
    self._update_moving(mean, variance)
    return outputs

  def _fused_train(self, inputs, gamma, beta):
    """Fused kernel in training mode; returns outputs, batch mean, biased variance."""
    shape = tf.shape(inputs)
    x = inputs
    if inputs.shape.rank != 4:
      x = tf.reshape(inputs, [-1, 1, 1, inputs.shape[-1]])
    y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=gamma, offset=beta,
        mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32),
        epsilon=self.epsilon, data_format='NHWC', is_training=True)
    if inputs.shape.rank != 4:
      y = tf.reshape(y, shape)
    # The kernel Bessel-corrects the variance it returns; the original's
    # moving average uses the biased one.
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
    variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / count
    return y, mean, variance

  def _global_moments(self, inputs):
    """Mean and biased variance over the global batch (one all-reduce)."""
    x = at_least_float32(inputs)
    axes = list(range(inputs.shape.rank - 1))
    local_sum = tf.reduce_sum(x, axes)
    local_sq_sum = tf.reduce_sum(tf.square(x), axes)
    local_count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
    packed = tf.concat([local_sum, local_sq_sum, tf.reshape(local_count, [1])], 0)
    total = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, packed)
    channels = inputs.shape[-1]
    count = total[2 * channels]
    mean = total[:channels] / count
    variance = tf.maximum(total[channels:2 * channels] / count - tf.square(mean), 0.0)
    return mean, variance

  def _normalize(self, inputs, mean, variance, gamma, beta):
    x = at_least_float32(inputs)
    inv = tf.math.rsqrt(tf.cast(variance, x.dtype) + self.epsilon) * tf.cast(gamma, x.dtype)
    y = x * inv + (tf.cast(beta, x.dtype) - tf.cast(mean, x.dtype) * inv)
    return tf.cast(y, inputs.dtype)

  def _update_moving(self, mean, variance):
    """Moving averages of the batch statistics. A channel whose statistics are not finite
    (a float16 overflow, whose step the loss scale skips) keeps its averages: the step's
    skip cannot undo an update made in the forward pass."""
    decay = 1.0 - self.momentum
    dtype = self.moving_mean.dtype
    mean = tf.cast(tf.stop_gradient(mean), dtype)
    variance = tf.cast(tf.stop_gradient(variance), dtype)
    finite = tf.math.is_finite(mean) & tf.math.is_finite(variance)
    self.moving_mean.assign(tf.where(
        finite, self.moving_mean * self.momentum + mean * decay, self.moving_mean))
    self.moving_variance.assign(tf.where(
        finite, self.moving_variance * self.momentum + variance * decay, self.moving_variance))

  def compute_output_shape(self, input_shape):
    return input_shape
