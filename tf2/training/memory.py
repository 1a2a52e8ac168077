"""SimCLRv2's memory of negatives and momentum encoder (Chen et al. 2020b, section 2; MoCo).

With --memory_size=K, a momentum (EMA) copy of the encoder and projection head
makes the keys, and a queue holds the last K of them as extra negatives. For
a global batch of N images, q the online projections and k the momentum
projections (both normalised when --hidden_norm, k without gradient), m_1..m_K
the queue and v_s = 1 for filled slots, the loss of view a of image i (b the
other view) is

    l(i, a) = -log exp(q_i^a . k_i^b / t) / [ sum_j exp(q_i^a . k_j^b / t)
              + sum_{j != i} exp(q_i^a . k_j^a / t) + sum_s v_s exp(q_i^a . m_s / t) ]

with j over the global batch (keys gathered from every replica), and the loss
is the mean over local images of l(i, 1) + l(i, 2), the convention of
`nt_xent.nt_xent_loss`. It is NT-Xent with the keys taken from the momentum
encoder and the queue appended to the negatives: with k = q and an empty
queue its value is NT-Xent's. Empty slots are masked out, so a queue that
fills during the first K / (2N) steps never contrasts against zeros.

After each optimizer step the momentum weights move as MoCo's,
w_ema = d * w_ema + (1 - d) * w (d = --momentum_decay), and both views' keys of
the global batch are enqueued over the oldest entries (a ring index and
static shapes, for XLA; every replica writes its own copy, with no
cross-replica call). The momentum network computes keys
in training mode, as MoCo's key encoder does (batch statistics, across
replicas with --global_bn); its BN moving averages are its own, advanced by
those forward passes, so that they match its weights when it is evaluated.
"""
import tensorflow as tf

from tf2.dtypes import at_least_float32
from tf2.training import nt_xent


def gather_keys(keys, hidden_norm):
  """[2N, d] keys of the global batch from this replica's [2n, d] momentum
  projections (views stacked): all first views, then all second views, each
  in replica order; float32 (float64 in float64 mode), normalised with
  --hidden_norm."""
  keys = at_least_float32(tf.stop_gradient(keys))
  if hidden_norm:
    keys = tf.math.l2_normalize(keys, -1)
  k1, k2 = tf.split(keys, 2, 0)
  return tf.concat([nt_xent.cross_replica_concat(k1), nt_xent.cross_replica_concat(k2)], 0)


def memory_nt_xent_loss(queries, global_keys, memory, valid, hidden_norm=True,
                        temperature=1.0):
  """Returns (loss, logits_ab, labels) for this replica's [2n, d] queries (views stacked).

  `global_keys` [2N, d] are `gather_keys`' output, `memory` [K, d] past keys,
  `valid` [K] 1.0 at filled slots. `logits_ab` [n, N] and `labels` [n, 2N]
  are as in `nt_xent.nt_xent_loss` (for its metrics).
  """
  queries = at_least_float32(queries)
  if hidden_norm:
    queries = tf.math.l2_normalize(queries, -1)
  dtype = queries.dtype
  k1_large, k2_large = tf.split(tf.cast(global_keys, dtype), 2, 0)
  memory, valid = tf.cast(memory, dtype), tf.cast(valid, dtype)
  q1, q2 = tf.split(queries, 2, 0)
  n, global_n = tf.shape(q1)[0], tf.shape(k1_large)[0]
  positives = tf.range(n) + nt_xent.replica_id() * n
  labels = tf.one_hot(positives, global_n * 2, dtype=dtype)
  self_mask = tf.one_hot(positives, global_n, dtype=dtype) * nt_xent.LARGE_NUM
  empty = (1.0 - valid)[None] * nt_xent.LARGE_NUM
  labels_all = tf.pad(labels, [[0, 0], [0, memory.shape[0]]])  # No positive in the memory.

  def view_loss(q, k_other, k_same):
    logits_other = tf.matmul(q, k_other, transpose_b=True) / temperature
    logits_same = tf.matmul(q, k_same, transpose_b=True) / temperature - self_mask
    logits_memory = tf.matmul(q, memory, transpose_b=True) / temperature - empty
    return logits_other, tf.nn.softmax_cross_entropy_with_logits(
        labels_all, tf.concat([logits_other, logits_same, logits_memory], 1))

  logits_ab, loss_a = view_loss(q1, k2_large, k1_large)
  _, loss_b = view_loss(q2, k1_large, k2_large)
  return tf.reduce_mean(loss_a + loss_b), logits_ab, labels


class NegativeMemory(tf.Module):
  """A ring buffer of the last `size` keys: `queue` [size, dim] (of `dtype`), the
  next slot to write (`pointer`) and how many slots hold keys (`filled`).

  Create it under the strategy's scope; its variables are mirrored. Every
  replica enqueues the same (gathered) keys into its own copy, so no update
  needs a cross-replica call (aggregation NONE, as for the EMA weights).
  """

  def __init__(self, size, dim, dtype=tf.float32):
    super().__init__(name='memory')
    self.size = size
    sync = dict(synchronization=tf.VariableSynchronization.ON_WRITE,
                aggregation=tf.VariableAggregation.NONE, trainable=False)
    self.queue = tf.Variable(tf.zeros([size, dim], dtype), name='queue', **sync)
    self.pointer = tf.Variable(0, dtype=tf.int64, name='pointer', **sync)
    self.filled = tf.Variable(0, dtype=tf.int64, name='filled', **sync)

  def valid(self):
    """[size] float32: 1.0 where a slot holds a key."""
    return tf.cast(tf.range(self.size, dtype=tf.int64) < self.filled, tf.float32)

  def enqueue(self, keys):
    """Writes `keys` [n, dim] (n <= size) over the oldest slots."""
    n = keys.shape[0]
    slots = (self.pointer + tf.range(n, dtype=tf.int64)) % self.size
    self.queue.scatter_update(tf.IndexedSlices(tf.cast(keys, self.queue.dtype), slots))
    self.pointer.assign((self.pointer + n) % self.size)
    self.filled.assign(tf.minimum(self.filled + n, self.size))


def momentum_update(ema_variables, variables, decay):
  """w_ema <- decay * w_ema + (1 - decay) * w, for each pair."""
  for ema, online in zip(ema_variables, variables):
    ema.assign(decay * ema + (1.0 - decay) * tf.cast(online, ema.dtype))


def start_as(ema_model, model):
  """Makes the momentum network a copy of `model` (every variable, by path):
  how a run that does not resume starts it."""
  by_path = {v.path: v for v in ema_model.variables}
  if sorted(by_path) != sorted(v.path for v in model.variables):
    raise ValueError('The momentum network must have the online network\'s variables.')
  for variable in model.variables:
    by_path[variable.path].assign(variable)


def momentum_pairs(ema_model, model):
  """(EMA variables, online variables): the trainable weights, by path.

  BN moving statistics are not among them: the momentum network's are its own.
  """
  online = {v.path: v for v in model.trainable_variables}
  ema = [v for v in ema_model.variables if v.path in online]
  missing = set(online) - {v.path for v in ema}
  if missing:
    raise ValueError(f'The momentum network lacks {sorted(missing)[:3]}: it must be built '
                     'from the same config as the online network.')
  return ema, [online[v.path] for v in ema]


class MomentumEncoder:
  """The momentum network and the memory of --memory_size, as a step uses them: the
  keys of a batch, and what follows each optimizer update (the EMA, the enqueue).
  The memory's variables are created under `strategy`'s scope (mirrored)."""

  def __init__(self, ema_model, model, strategy, size, decay, hidden_norm, dtype=tf.float32):
    self.ema_model = ema_model
    self.pairs = momentum_pairs(ema_model, model)
    dim = model.projection_shape(1)[-1]
    with strategy.scope():
      self.memory = NegativeMemory(size, dim, dtype)
    self.decay = decay
    self.hidden_norm = hidden_norm

  def keys(self, images):
    """The global batch's keys (`gather_keys`) of the momentum network on `images`
    (training mode, as MoCo's key encoder)."""
    return self.gather(self.ema_model(images, training=True)['proj_head_output'])

  def gather(self, keys):
    """`gather_keys` of this replica's momentum projections."""
    return gather_keys(keys, self.hidden_norm)

  def after_update(self, global_keys):
    """The momentum weights move towards the online ones; the step's keys are enqueued,
    unless one is not finite (a float16 overflow of the momentum network, whose step the
    loss scale skips): the memory never holds one. The keys are the same on every replica,
    so every replica decides alike."""
    momentum_update(*self.pairs, self.decay)

    def enqueue():
      self.memory.enqueue(global_keys)
      return tf.constant(True)

    tf.cond(tf.reduce_all(tf.math.is_finite(global_keys)), enqueue, lambda: tf.constant(False))

  def checkpointed(self):
    """What checkpoints hold of it beside the online model."""
    return {'ema_model': self.ema_model, 'memory': self.memory}
