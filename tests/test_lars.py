"""LARS against a numpy reference of the original update, over several steps."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf2.training.lars import LARS


class Tiny(keras.layers.Layer):
  """Variables whose paths exercise the exclusion patterns."""

  def build(self, _):
    self.kernel = self.add_weight(name='kernel', shape=(3, 4), initializer='random_normal')
    self.bias = self.add_weight(name='bias', shape=(4,), initializer='random_normal')
    self.zero = self.add_weight(name='zero_kernel', shape=(2,), initializer='zeros')


def numpy_lars(w, v, g, lr, momentum, wd, eeta, decay, adapt, classic, nesterov):
  if decay:
    g = g + wd * w

  def trust(u):
    wn, un = np.linalg.norm(w), np.linalg.norm(u)
    return eeta * wn / un if wn > 0 and un > 0 else 1.0

  if classic:
    scaled = lr * (trust(g) if adapt else 1.0)
    v = momentum * v + scaled * g
    update = momentum * v + scaled * g if nesterov else v
    return w - update, v
  v = momentum * v + g
  update = momentum * v + g if nesterov else v
  return w - lr * (trust(update) if adapt else 1.0) * update, v


@pytest.mark.parametrize('classic,nesterov', [(True, False), (True, True), (False, False),
                                              (False, True)])
def test_matches_numpy_reference(classic, nesterov):
  layer = Tiny(name='tiny')
  layer.build(None)
  layer.zero.assign([0.0, 0.0])
  opt = LARS(learning_rate=0.5, momentum=0.9, weight_decay=0.01, use_nesterov=nesterov,
             classic_momentum=classic, eeta=0.002)
  variables = [layer.kernel, layer.bias, layer.zero]
  opt.build(variables)
  assert [opt.uses_weight_decay(v) for v in variables] == [True, False, True]
  assert [opt.uses_layer_adaptation(v) for v in variables] == [True, False, True]
  ws = [v.numpy().astype(np.float64) for v in variables]
  vs = [np.zeros_like(w) for w in ws]
  flags = [(True, True), (False, False), (True, True)]
  rng = np.random.RandomState(3)
  for _ in range(4):
    grads = [rng.randn(*w.shape) for w in ws]
    grads[2] = np.zeros(2) if _ == 0 else grads[2]  # zero norms -> trust 1
    opt.apply_gradients([(tf.constant(g, tf.float32), v) for g, v in zip(grads, variables)])
    for i, (decay, adapt) in enumerate(flags):
      ws[i], vs[i] = numpy_lars(ws[i], vs[i], grads[i], 0.5, 0.9, 0.01, 0.002, decay, adapt,
                                classic, nesterov)
  for v, w in zip(variables, ws):
    np.testing.assert_allclose(v.numpy(), w, rtol=1e-5, atol=1e-6)


def test_exclusions_come_from_variable_paths():
  model = keras.Sequential([keras.layers.Dense(3, name='head_supervised'),
                            keras.layers.BatchNormalization(name='batch_normalization'),
                            keras.layers.Dense(2, name='proj')])
  model.build((None, 5))
  opt = LARS(0.1, weight_decay=1e-4)
  opt.build(model.trainable_variables)
  decay = {v.path: opt.uses_weight_decay(v) for v in model.trainable_variables}
  assert decay == {'sequential/head_supervised/kernel': False,
                   'sequential/head_supervised/bias': False,
                   'sequential/batch_normalization/gamma': False,
                   'sequential/batch_normalization/beta': False,
                   'sequential/proj/kernel': True,
                   'sequential/proj/bias': False}
  no_decay = LARS(0.1, weight_decay=0.0)
  no_decay.build(model.trainable_variables)
  assert not any(no_decay.uses_weight_decay(v) for v in model.trainable_variables)
  assert no_decay.uses_layer_adaptation(model.trainable_variables[-2])
