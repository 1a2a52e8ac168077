"""The generalized contrastive loss of "Intriguing Properties of Contrastive Losses"
(Chen, Luo, Li, NeurIPS 2021, section 2; the original's colab
`intriguing_properties/generalized_contrastive_loss.ipynb`).

For the two views' projections h1, h2 [n, d] (L2-normalised first with
`hidden_norm`) and H = [h1; h2] [2n, d]:

    L = loss_scaling * (L_align + lambda * L_dist),
    L_align = mean over the n x d elements of (h1 - h2)^2 / 2,

and L_dist matches the distribution of H to a prior:

- `logsumexp` (decoupled NT-Xent): mean over the rows i of H of
  logsumexp_j(H_i . H_j / temperature) - log d, j over every row, i itself
  included (nothing is masked);
- `normal` / `uniform` (sliced Wasserstein distance): with W a random d x d
  orthogonal matrix and P a sample of H's shape from N(0, 1) or U[-1, 1]
  (L2-normalised with `hidden_norm`), the mean squared difference between
  the sorted columns of H W and those of P W.

The four variants the paper names: decoupled NT-Xent (`logsumexp`,
normalised), SWD-normal (`normal`, not normalised), SWD-hypersphere
(`normal`, normalised), SWD-hypercube (`uniform`, not normalised).

Columns are sorted with `tf.sort` (the colab ranks values by pairwise
comparison: O(d n^2) memory, and wrong on ties).

Under `tf.distribute` the distribution term spans the global batch: H is
gathered from every replica as NT-Xent's negatives are
(`nt_xent.cross_replica_concat`). `logsumexp` takes this replica's rows
against all of H, so the mean of the replicas' losses is the global one. The
sliced Wasserstein term couples every row through the sort, so each replica
computes it whole, on the same H, W and P: W and P are drawn from a
stateless seed that every replica holds (the training step's counter), and
the step's division by the number of replicas and the gathering's summed
gradient give the global loss's gradient.
"""
import math

import tensorflow as tf

from tf2.dtypes import at_least_float32
from tf2.training import nt_xent

DISTRIBUTIONS = ('logsumexp', 'normal', 'uniform')
# The paper's named variants: (distribution, hidden_norm).
VARIANTS = {
    'decoupled_nt_xent': ('logsumexp', True),
    'swd_normal': ('normal', False),
    'swd_hypersphere': ('normal', True),
    'swd_hypercube': ('uniform', False),
}


def random_rotation(dim, seed, dtype=tf.float32):
  """A d x d orthogonal matrix, uniformly distributed (Haar): Q of the QR decomposition of
  a Gaussian matrix, its columns' signs fixed by R's diagonal. `seed`: a stateless seed
  [2], or None for TensorFlow's global random state."""
  shape = [dim, dim]
  gaussian = (tf.random.stateless_normal(shape, seed, dtype=dtype) if seed is not None
              else tf.random.normal(shape, dtype=dtype))
  q, r = tf.linalg.qr(gaussian)
  return q * tf.sign(tf.linalg.diag_part(r))[None, :]


def prior_sample(shape, distribution, hidden_norm, seed, dtype=tf.float32):
  """P: N(0, 1) or U[-1, 1] of `shape`, rows L2-normalised with `hidden_norm`."""
  if distribution == 'normal':
    sample = (tf.random.stateless_normal(shape, seed, dtype=dtype) if seed is not None
              else tf.random.normal(shape, dtype=dtype))
  elif distribution == 'uniform':
    sample = (tf.random.stateless_uniform(shape, seed, -1.0, 1.0, dtype=dtype)
              if seed is not None else tf.random.uniform(shape, -1.0, 1.0, dtype=dtype))
  else:
    raise ValueError(f'No prior sample for distribution {distribution!r}.')
  return tf.math.l2_normalize(sample, -1) if hidden_norm else sample


def logsumexp_term(local, everything, temperature):
  """Mean over `local`'s rows of logsumexp over `everything`'s rows of the scaled dot
  product, minus log d."""
  scores = tf.matmul(local, everything, transpose_b=True) / temperature
  return tf.reduce_mean(tf.reduce_logsumexp(scores, 1)) - math.log(local.shape[-1])


def sliced_wasserstein_term(hiddens, prior, rotation):
  """Mean squared difference of the sorted columns of hiddens W and prior W."""
  projected = tf.sort(tf.matmul(hiddens, rotation), axis=0)
  target = tf.sort(tf.matmul(prior, rotation), axis=0)
  return tf.reduce_mean(tf.square(target - projected))


def generalized_contrastive_loss(hidden1, hidden2, lambda_weight=1.0, temperature=1.0,
                                 distribution='normal', hidden_norm=True, loss_scaling=1.0,
                                 rotation=None, prior=None, seed=None):
  """Returns (loss, alignment term, distribution term) for this replica's views [n, d].

  `rotation` W [d, d] and `prior` P [2N, d] (N: the global batch) are drawn when
  absent, from the stateless `seed` [2] if given (the same on every replica), else from
  TensorFlow's random state (one device only).
  """
  if distribution not in DISTRIBUTIONS:
    raise ValueError(f'Unknown distribution {distribution!r}: one of {DISTRIBUTIONS}.')
  hidden1, hidden2 = at_least_float32(hidden1), at_least_float32(hidden2)
  if hidden_norm:
    hidden1 = tf.math.l2_normalize(hidden1, -1)
    hidden2 = tf.math.l2_normalize(hidden2, -1)
  align = tf.reduce_mean(tf.square(hidden1 - hidden2)) / 2.0
  local = tf.concat([hidden1, hidden2], 0)
  everything = tf.concat([nt_xent.cross_replica_concat(hidden1),
                          nt_xent.cross_replica_concat(hidden2)], 0)
  if distribution == 'logsumexp':
    dist = logsumexp_term(local, everything, temperature)
  else:
    dtype, dim = everything.dtype, everything.shape[-1]
    if rotation is None:
      rotation = random_rotation(dim, _derived(seed, 0), dtype)
    if prior is None:
      prior = prior_sample(tf.shape(everything), distribution, hidden_norm, _derived(seed, 1),
                           dtype)
    dist = sliced_wasserstein_term(everything, tf.cast(prior, dtype), tf.cast(rotation, dtype))
  return loss_scaling * (align + lambda_weight * dist), align, dist


def _derived(seed, index):
  """A stateless seed of its own for each draw, from one seed (None stays None)."""
  if seed is None:
    return None
  return tf.stack([tf.cast(seed[0], tf.int64), tf.cast(seed[1], tf.int64) * 2 + index])
