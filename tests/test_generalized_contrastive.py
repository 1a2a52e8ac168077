"""The generalized contrastive loss: each variant against numpy and the original's colab,
given W and P; 8 replicas against one device on the global batch."""
import json
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from conftest import SHARED_DIR, per_replica_slices
from tf2.training import generalized_contrastive as gcl

COLAB = os.path.join(SHARED_DIR, 'reference', 'original', 'colabs', 'intriguing_properties',
                     'generalized_contrastive_loss.ipynb')


def numpy_loss(h1, h2, lambda_weight, temperature, distribution, hidden_norm, loss_scaling,
               rotation, prior):
  """The paper's equations, in float64, one term at a time."""
  if hidden_norm:
    h1 = h1 / np.linalg.norm(h1, axis=1, keepdims=True)
    h2 = h2 / np.linalg.norm(h2, axis=1, keepdims=True)
  n, d = h1.shape
  align = np.sum((h1 - h2) ** 2) / (n * d) / 2
  hiddens = np.concatenate([h1, h2])
  if distribution == 'logsumexp':
    scores = hiddens @ hiddens.T / temperature
    top = scores.max(1, keepdims=True)
    dist = np.mean(np.log(np.exp(scores - top).sum(1)) + top[:, 0]) - np.log(d)
  else:
    projected = np.sort(hiddens @ rotation, axis=0)
    target = np.sort(prior @ rotation, axis=0)
    dist = np.mean((target - projected) ** 2)
  return loss_scaling * (align + lambda_weight * dist), align, dist


def draws(rng, n, d, distribution, hidden_norm):
  rotation = np.linalg.qr(rng.randn(d, d))[0]
  prior = rng.randn(2 * n, d) if distribution == 'normal' else rng.uniform(-1, 1, (2 * n, d))
  if hidden_norm:
    prior /= np.linalg.norm(prior, axis=1, keepdims=True)
  return rotation, prior


@pytest.mark.parametrize('variant', sorted(gcl.VARIANTS))
def test_each_variant_equals_numpy_given_w_and_p(variant, rng):
  distribution, hidden_norm = gcl.VARIANTS[variant]
  n, d = 12, 6
  h1, h2 = rng.randn(n, d) * 2, rng.randn(n, d)
  rotation, prior = draws(rng, n, d, distribution, hidden_norm)
  want = numpy_loss(h1, h2, 0.7, 0.3, distribution, hidden_norm, 2.5, rotation, prior)
  got = gcl.generalized_contrastive_loss(
      tf.constant(h1), tf.constant(h2), lambda_weight=0.7, temperature=0.3,
      distribution=distribution, hidden_norm=hidden_norm, loss_scaling=2.5,
      rotation=tf.constant(rotation), prior=tf.constant(prior))
  np.testing.assert_allclose([g.numpy() for g in got], want, rtol=1e-10)
  assert got[1].numpy() > 0 and got[2].numpy() != 0  # Both terms are present.


def original_colab_functions():
  """The colab's own loss code (its first code cells), or None without a copy."""
  if not os.path.isfile(COLAB):
    return None
  with open(COLAB) as f:
    cells = [''.join(c['source']) for c in json.load(f)['cells'] if c['cell_type'] == 'code']
  namespace = {'tf': tf}
  for source in cells[:2]:
    exec(source, namespace)  # pylint: disable=exec-used
  return namespace


@pytest.mark.parametrize('variant', sorted(gcl.VARIANTS))
def test_each_variant_equals_the_original_colab(variant, rng):
  """The colab's generalized_contrastive_loss with its draws of W and P replaced by ours."""
  original = original_colab_functions()
  if original is None:
    pytest.skip('no copy of the original colab (../shared/reference/original)')
  distribution, hidden_norm = gcl.VARIANTS[variant]
  n, d = 10, 5
  h1 = tf.constant(rng.randn(n, d), tf.float32)
  h2 = tf.constant(rng.randn(n, d), tf.float32)
  rotation, prior = (tf.constant(x, tf.float32) for x in draws(rng, n, d, distribution, False))
  # The colab draws P from tf.random and normalises it itself with hidden_norm.
  with mock.patch.object(tf.keras.initializers, 'Orthogonal', lambda: lambda shape: rotation), \
       mock.patch.object(tf.random, 'normal', lambda shape, **kw: prior), \
       mock.patch.object(tf.random, 'uniform', lambda shape, *a, **kw: prior):
    want = original['generalized_contrastive_loss'](
        h1, h2, lambda_weight=0.5, temperature=0.2, dist=distribution,
        hidden_norm=hidden_norm, loss_scaling=3.0)
  ours = tf.math.l2_normalize(prior, -1) if hidden_norm else prior
  got, _, _ = gcl.generalized_contrastive_loss(
      h1, h2, lambda_weight=0.5, temperature=0.2, distribution=distribution,
      hidden_norm=hidden_norm, loss_scaling=3.0, rotation=rotation, prior=ours)
  np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)


def test_the_draws_are_orthogonal_from_a_seed_and_fresh_for_another(rng):
  w = gcl.random_rotation(8, tf.constant([3, 4])).numpy()
  np.testing.assert_allclose(w @ w.T, np.eye(8), atol=1e-5)
  np.testing.assert_array_equal(w, gcl.random_rotation(8, tf.constant([3, 4])).numpy())
  assert not np.allclose(w, gcl.random_rotation(8, tf.constant([3, 5])).numpy())
  p = gcl.prior_sample([6, 4], 'uniform', True, tf.constant([1, 2])).numpy()
  np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-5)
  u = gcl.prior_sample([500, 4], 'uniform', False, tf.constant([1, 2])).numpy()
  assert -1 <= u.min() < -0.95 and 0.95 < u.max() <= 1


@pytest.mark.parametrize('variant', ['decoupled_nt_xent', 'swd_hypersphere', 'swd_hypercube'])
def test_eight_replicas_equal_one_device_on_the_global_batch(variant, strategy8, rng):
  """Each replica holds its share of both views; with the same seed every replica draws
  the same W and P. The replicas' mean loss, their terms and the gathered gradient of
  loss / replicas equal one device's on the global batch."""
  distribution, hidden_norm = gcl.VARIANTS[variant]
  replicas, n_global, d = strategy8.num_replicas_in_sync, 16, 8
  local = n_global // replicas
  first, second = rng.randn(n_global, d), rng.randn(n_global, d)
  seed = tf.constant([7, 11])
  kwargs = dict(lambda_weight=0.5, temperature=0.25, distribution=distribution,
                hidden_norm=hidden_norm, loss_scaling=2.0, seed=seed)
  h1, h2 = tf.constant(first), tf.constant(second)
  with tf.GradientTape() as tape:
    tape.watch([h1, h2])
    single = gcl.generalized_contrastive_loss(h1, h2, **kwargs)
  g1, g2 = (g.numpy() for g in tape.gradient(single[0], [h1, h2]))

  def share(r):  # Replica r's first views, then its second views.
    return np.concatenate([first[r * local:(r + 1) * local], second[r * local:(r + 1) * local]])

  @tf.function
  def run(x):
    def fn(views):
      a, b = tf.split(views, 2)
      with tf.GradientTape() as t:
        t.watch([a, b])
        loss, align, dist = gcl.generalized_contrastive_loss(a, b, **kwargs)
        scaled = loss / replicas
      return (loss, align, dist) + tuple(t.gradient(scaled, [a, b]))
    return strategy8.run(fn, (x,))

  outputs = run(per_replica_slices(strategy8, np.concatenate([share(r) for r in range(replicas)])))
  loss, align, dist, ga, gb = ([t.numpy() for t in strategy8.experimental_local_results(o)]
                               for o in outputs)
  for got, want in zip((loss, align, dist), single):
    assert abs(np.mean(got) - want.numpy()) < 1e-9 * max(1.0, abs(want.numpy()))
  if distribution != 'logsumexp':  # The sorted term is the global one on every replica.
    np.testing.assert_allclose(dist, single[2].numpy(), rtol=1e-9)
  np.testing.assert_allclose(np.concatenate(ga), g1, rtol=1e-7, atol=1e-12)
  np.testing.assert_allclose(np.concatenate(gb), g2, rtol=1e-7, atol=1e-12)
