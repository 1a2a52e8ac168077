"""NT-Xent against the paper's formula in numpy, and across 8 replicas."""
import numpy as np
import tensorflow as tf

from conftest import per_replica_slices
from tf2.training import nt_xent


def paper_pair_loss(z, i, j, temperature):
  """l(i, j) of SimCLR eq. 1 with cosine similarity, from scratch."""
  sim = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
  numerator = np.exp(sim(z[i], z[j]) / temperature)
  denominator = sum(np.exp(sim(z[i], z[k]) / temperature) for k in range(len(z)) if k != i)
  return -np.log(numerator / denominator)


def paper_loss(z, temperature):
  """L = 1/(2N) sum_k [l(k, k+N) + l(k+N, k)], views stacked as the model emits them."""
  n = len(z) // 2
  total = sum(paper_pair_loss(z, k, k + n, temperature) + paper_pair_loss(z, k + n, k, temperature)
              for k in range(n))
  return total / (2 * n)


def test_matches_paper_formula(rng):
  z = rng.randn(12, 5).astype(np.float64)
  for temperature in (0.1, 0.5, 1.0):
    loss, logits_ab, labels = nt_xent.nt_xent_loss(tf.constant(z, tf.float32), True, temperature)
    # The original (and we) return the sum of both directions' mean: 2L.
    np.testing.assert_allclose(loss.numpy(), 2 * paper_loss(z, temperature), rtol=1e-5)
    assert logits_ab.shape == (6, 6) and labels.shape == (6, 12)
    np.testing.assert_array_equal(np.argmax(labels.numpy(), 1), np.arange(6))


def test_without_hidden_norm_uses_dot_products(rng):
  z = rng.randn(8, 3).astype(np.float32) * 0.3
  loss, _, _ = nt_xent.nt_xent_loss(tf.constant(z), hidden_norm=False, temperature=0.5)
  n = 4
  sim = z @ z.T / 0.5
  expected = 0.0
  for i in range(2 * n):
    j = (i + n) % (2 * n)
    others = [k for k in range(2 * n) if k != i]
    expected += -sim[i, j] + np.log(np.sum(np.exp(sim[i, others])))
  np.testing.assert_allclose(loss.numpy(), expected / n, rtol=1e-5)


def test_metrics():
  z = np.eye(4, dtype=np.float32)  # views identical to each other: accuracy 1.
  z = np.concatenate([z, z])
  loss, logits_ab, labels = nt_xent.nt_xent_loss(tf.constant(z), True, 1.0)
  acc, entropy = nt_xent.contrastive_metrics(logits_ab, labels)
  assert acc.numpy() == 1.0
  logits = logits_ab.numpy().astype(np.float64)
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_allclose(entropy.numpy(), -np.mean(np.sum(p * np.log(p + 1e-8), 1)), rtol=1e-5)


def test_eight_replicas_equal_global_batch(strategy8, rng):
  n_global, dim, replicas = 32, 16, strategy8.num_replicas_in_sync
  first, second = rng.randn(n_global, dim), rng.randn(n_global, dim)
  single, _, _ = nt_xent.nt_xent_loss(
      tf.constant(np.concatenate([first, second]), tf.float32), True, 0.2)
  local = n_global // replicas
  # Each replica holds its own first views, then its own second views.
  per_replica = np.concatenate([
      np.concatenate([first[r * local:(r + 1) * local], second[r * local:(r + 1) * local]])
      for r in range(replicas)]).astype(np.float32)
  hidden = per_replica_slices(strategy8, per_replica)

  @tf.function
  def run(h):
    def fn(x):
      loss, logits_ab, labels = nt_xent.nt_xent_loss(x, True, 0.2)
      return loss, tf.shape(logits_ab)[1], tf.argmax(labels, 1, output_type=tf.int32)
    return strategy8.run(fn, (h,))

  losses, widths, positives = run(hidden)
  losses = [t.numpy() for t in strategy8.experimental_local_results(losses)]
  assert all(w.numpy() == n_global for w in strategy8.experimental_local_results(widths))
  positives = np.concatenate([p.numpy() for p in strategy8.experimental_local_results(positives)])
  np.testing.assert_array_equal(positives, np.arange(n_global))  # offset by replica id
  assert abs(np.mean(losses) - single.numpy()) < 1e-5


def test_gradient_through_gather_matches_single_device(strategy8, rng):
  """The summed per-replica gradients (loss / replicas) equal the global gradient."""
  n_global, dim = 16, 8
  z = rng.randn(2 * n_global, dim).astype(np.float32)
  zt = tf.constant(z)
  with tf.GradientTape() as tape:
    tape.watch(zt)
    single, _, _ = nt_xent.nt_xent_loss(zt, True, 0.5)
  expected = tape.gradient(single, zt).numpy()

  local = n_global // strategy8.num_replicas_in_sync
  idx = np.concatenate([np.concatenate([np.arange(r * local, (r + 1) * local),
                                        n_global + np.arange(r * local, (r + 1) * local)])
                        for r in range(strategy8.num_replicas_in_sync)])
  var_values = z[idx]

  @tf.function
  def run(h):
    def fn(x):
      with tf.GradientTape() as t:
        t.watch(x)
        loss, _, _ = nt_xent.nt_xent_loss(x, True, 0.5)
        loss = loss / strategy8.num_replicas_in_sync
      return t.gradient(loss, x)
    return strategy8.run(fn, (h,))

  grads = run(per_replica_slices(strategy8, var_values))
  got = np.concatenate([g.numpy() for g in strategy8.experimental_local_results(grads)])
  np.testing.assert_allclose(got, expected[idx], atol=1e-6)


def test_gather_is_an_all_reduce_not_all_gather(strategy8, rng, monkeypatch):
  """`ReplicaContext.all_gather` lowers to CollectiveGatherV2, which XLA on GPUs cannot
  compile; the gather must be the original's all-reduce of one-hot slots, and give every
  replica the replicas' embeddings in replica order."""
  def refuse(*args, **kwargs):
    raise AssertionError('all_gather used: it lowers to CollectiveGatherV2')
  monkeypatch.setattr(tf.distribute.ReplicaContext, 'all_gather', refuse)
  replicas, local, dim = strategy8.num_replicas_in_sync, 3, 5
  values = rng.randn(replicas * local, dim).astype(np.float32)

  @tf.function
  def run(x):
    return strategy8.run(nt_xent.cross_replica_concat, (x,))

  gathered = run(per_replica_slices(strategy8, values))
  for got in strategy8.experimental_local_results(gathered):
    assert got.shape == (replicas * local, dim)
    np.testing.assert_array_equal(got.numpy(), values)
