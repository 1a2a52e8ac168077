"""Projection and supervised heads against the original's structure and numpy."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.models.heads import ProjectionHead, SupervisedHead

EPS = 1e-5


def shapes(layer):
  return [(v.path.split('/', 1)[1], tuple(v.shape)) for v in layer.variables]


def test_nonlinear_head_structure_and_forward(rng):
  head = ProjectionHead('nonlinear', num_layers=3, out_dim=8, ft_proj_selector=1, name='head')
  x = rng.randn(5, 16).astype(np.float32)
  out, ft = head(tf.constant(x), training=False)
  # Middle layers keep the width and carry BN beta; the last has neither BN
  # beta nor a dense bias (as in the original's checkpoints).
  assert shapes(head) == [
      ('nl_0/dense/kernel', (16, 16)), ('nl_0/batch_normalization/gamma', (16,)),
      ('nl_0/batch_normalization/beta', (16,)),
      ('nl_0/batch_normalization/moving_mean', (16,)),
      ('nl_0/batch_normalization/moving_variance', (16,)),
      ('nl_1/dense/kernel', (16, 16)), ('nl_1/batch_normalization/gamma', (16,)),
      ('nl_1/batch_normalization/beta', (16,)),
      ('nl_1/batch_normalization/moving_mean', (16,)),
      ('nl_1/batch_normalization/moving_variance', (16,)),
      ('nl_2/dense/kernel', (16, 8)), ('nl_2/batch_normalization/gamma', (8,)),
      ('nl_2/batch_normalization/moving_mean', (8,)),
      ('nl_2/batch_normalization/moving_variance', (8,))]
  kernels = [head.layer_0.dense.kernel.numpy(), head.layer_1.dense.kernel.numpy(),
             head.layer_2.dense.kernel.numpy()]
  assert 0.005 < kernels[0].std() < 0.015  # N(0, 0.01) initialiser
  bn = lambda h: h / np.sqrt(1 + EPS)  # inference with initial statistics
  h1 = np.maximum(bn(x @ kernels[0]), 0)
  h2 = np.maximum(bn(h1 @ kernels[1]), 0)
  h3 = bn(h2 @ kernels[2])
  np.testing.assert_allclose(out.numpy(), h3, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(ft.numpy(), h1, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('selector,index', [(0, 0), (2, 2), (-1, 3), (-2, 2)])
def test_ft_proj_selector(selector, index, rng):
  head = ProjectionHead('nonlinear', num_layers=3, out_dim=4, ft_proj_selector=selector)
  x = tf.constant(rng.randn(3, 6).astype(np.float32))
  head(x)
  hiddens = [x]
  for j, layer in enumerate(head.linear_layers()):
    h = layer(hiddens[-1])
    hiddens.append(tf.nn.relu(h) if j < 2 else h)
  _, ft = head(x)
  np.testing.assert_allclose(ft.numpy(), hiddens[index].numpy(), rtol=1e-6)


def test_linear_and_none_modes(rng):
  x = tf.constant(rng.randn(4, 6).astype(np.float32))
  linear = ProjectionHead('linear', out_dim=3)
  out, ft = linear(x)
  assert out.shape == (4, 3) and ft is x
  assert shapes(linear)[0] == ('l_0/dense/kernel', (6, 3))
  assert not any('beta' in p for p, _ in shapes(linear))
  none = ProjectionHead('none')
  out, ft = none(x)
  assert out is x and ft is x and not none.variables


def test_supervised_head_init_and_name(rng):
  head = SupervisedHead(10)
  head(tf.zeros([2, 32]))
  assert [v.path for v in head.variables] == ['head_supervised/linear_layer/dense/kernel',
                                              'head_supervised/linear_layer/dense/bias']
  assert head.variables[0].numpy().std() > 0.005
  zero = SupervisedHead(10, zero_init=True)
  logits = zero(tf.constant(rng.randn(2, 32).astype(np.float32)))
  assert not logits.numpy().any() and not zero.variables[0].numpy().any()
