"""BatchNormalization: numpy reference, and global BN across 8 replicas."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import per_replica_slices
from tf2.models.batch_norm import BatchNormalization


def numpy_bn_train(x, gamma, beta, eps):
  axes = tuple(range(x.ndim - 1))
  mean, var = x.mean(axes), x.var(axes)  # biased variance
  return (x - mean) / np.sqrt(var + eps) * gamma + beta, mean, var


@pytest.mark.parametrize('shape', [(6, 5, 4, 3), (10, 7)])
def test_training_matches_numpy_and_moving_average(rng, shape):
  x = rng.randn(*shape).astype(np.float32) * 2 + 1
  bn = BatchNormalization(momentum=0.9, epsilon=1e-5)
  bn.build(x.shape)
  bn.gamma.assign(rng.rand(shape[-1]).astype(np.float32) + 0.5)
  bn.beta.assign(rng.randn(shape[-1]).astype(np.float32))
  y = bn(tf.constant(x), training=True).numpy()
  expected, mean, var = numpy_bn_train(x, bn.gamma.numpy(), bn.beta.numpy(), 1e-5)
  np.testing.assert_allclose(y, expected, atol=1e-5)
  np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, atol=1e-6)
  np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * var, atol=1e-6)
  # Inference uses the moving statistics.
  y_inf = bn(tf.constant(x), training=False).numpy()
  ref = (x - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-5)
  np.testing.assert_allclose(y_inf, ref * bn.gamma.numpy() + bn.beta.numpy(), atol=1e-5)


def test_frozen_layer_uses_moving_statistics(rng):
  x = rng.randn(4, 3, 3, 2).astype(np.float32) + 3
  bn = BatchNormalization()
  bn.build(x.shape)
  bn.trainable = False
  y = bn(tf.constant(x), training=True).numpy()
  np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-5), atol=1e-5)
  np.testing.assert_array_equal(bn.moving_mean.numpy(), 0)


def test_no_center_no_beta_and_zero_init_gamma():
  bn = BatchNormalization(center=False, gamma_zero_init=True)
  bn.build((2, 4))
  assert [v.name for v in bn.weights] == ['gamma', 'moving_mean', 'moving_variance']
  np.testing.assert_array_equal(bn.gamma.numpy(), 0)


def _run_bn(strategy, x, synchronized, grad_seed):
  """Returns outputs, moving stats and d(sum(y * w))/dx per replica, concatenated."""
  with strategy.scope():
    bn = BatchNormalization(momentum=0.9, synchronized=synchronized)
    bn.build(x.shape)
  w = np.random.RandomState(grad_seed).randn(*x.shape).astype(np.float32)

  @tf.function
  def run(xs, ws):
    def fn(xr, wr):
      with tf.GradientTape() as tape:
        tape.watch(xr)
        y = bn(xr, training=True)
        loss = tf.reduce_sum(y * wr)
      return y, tape.gradient(loss, xr)
    return strategy.run(fn, (xs, ws))

  ys, gs = run(per_replica_slices(strategy, x), per_replica_slices(strategy, w))
  cat = lambda t: np.concatenate([v.numpy() for v in strategy.experimental_local_results(t)])
  return cat(ys), bn.moving_mean.numpy(), bn.moving_variance.numpy(), cat(gs)


def test_global_bn_eight_replicas_equals_full_batch(strategy8, rng):
  x = (rng.randn(16, 4, 4, 3) * 3 + rng.randn(16, 1, 1, 1) * 2).astype(np.float32)
  single = _run_bn(tf.distribute.get_strategy(), x, True, 1)
  distributed = _run_bn(strategy8, x, True, 1)
  for got, want in zip(distributed, single):
    np.testing.assert_allclose(got, want, atol=1e-5)
  # Local BN: every replica normalises with its own two examples' statistics.
  # (The replica-averaged moving mean still equals the global mean; the
  # averaged variance misses the between-replica spread.)
  local = _run_bn(strategy8, x, False, 1)
  assert np.abs(local[0] - single[0]).max() > 0.1
  np.testing.assert_allclose(local[1], single[1], atol=1e-5)
  assert np.all(local[2] < single[2] - 1e-3)
  assert np.abs(local[3] - single[3]).max() > 0.1
