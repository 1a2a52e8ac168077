"""NT-Xent, the normalized temperature-scaled cross-entropy loss (SimCLR eq. 1).

For a batch of N images with two views each (z_1..z_N first views, then
z_N+1..z_2N second views, as the model emits them), the loss of the positive
pair (i, j) is

    l(i, j) = -log exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t)

with sim the cosine similarity (`hidden_norm`) or dot product. Every example's
negatives are all 2N - 2 other views of the *global* batch: under
`tf.distribute` each replica gathers the embeddings of all replicas (an
all-reduce of one-hot slots, as the original) and its positives sit at offset
`replica_id * local_batch` in the gathered matrix.

Like the original, the returned loss is
    mean over local pairs k of [l(k, k+N) + l(k+N, k)],
which is twice the paper's L = 1/(2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)]; the
factor matters for LARS with weight decay, so we keep the original's value.
The mean of the per-replica losses equals the loss of the global batch.
"""
import tensorflow as tf

from tf2.dtypes import at_least_float32

LARGE_NUM = 1e9


def cross_replica_concat(tensor):
  """Concatenates `tensor` [n, ...] from every replica along axis 0 (differentiable).

  Each replica writes its tensor into its own slot of a [replicas, n, ...]
  zero tensor (a one-hot scatter) and the slots are summed across replicas.
  That is one all-reduce, which every backend lowers, XLA on GPUs and TPUs
  included; `ReplicaContext.all_gather` lowers to CollectiveGatherV2, which
  XLA's GPU backend has no kernel for. The all-reduce's gradient is the
  all-reduce of the incoming gradients, so each replica receives the sum of
  every replica's gradient for its own slot.
  """
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return tensor
  replicas = ctx.num_replicas_in_sync
  slot = tf.one_hot(ctx.replica_id_in_sync_group, replicas, dtype=tensor.dtype)
  slots = tf.reshape(slot, [replicas] + [1] * tensor.shape.rank) * tensor[None]
  gathered = ctx.all_reduce(tf.distribute.ReduceOp.SUM, slots)
  return tf.reshape(gathered, [-1] + tensor.shape[1:].as_list())


def replica_id():
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return tf.constant(0, tf.int32)
  return tf.cast(ctx.replica_id_in_sync_group, tf.int32)


def nt_xent_loss(hidden, hidden_norm=True, temperature=1.0):
  """Returns (loss, logits_ab, labels) for `hidden` = [2n, d], views stacked.

  `logits_ab` [n, N] are the similarities of local first views to all
  gathered second views; `labels` [n, 2N] are one-hot at the positives, as
  in the original (the metrics below use them).
  """
  hidden = at_least_float32(hidden)
  if hidden_norm:
    hidden = tf.math.l2_normalize(hidden, -1)
  hidden1, hidden2 = tf.split(hidden, 2, 0)
  batch_size = tf.shape(hidden1)[0]
  hidden1_large = cross_replica_concat(hidden1)
  hidden2_large = cross_replica_concat(hidden2)
  enlarged_batch_size = tf.shape(hidden1_large)[0]
  labels_idx = tf.range(batch_size) + replica_id() * batch_size
  labels = tf.one_hot(labels_idx, enlarged_batch_size * 2, dtype=hidden.dtype)
  masks = tf.one_hot(labels_idx, enlarged_batch_size, dtype=hidden.dtype)

  logits_aa = tf.matmul(hidden1, hidden1_large, transpose_b=True) / temperature
  logits_aa = logits_aa - masks * LARGE_NUM
  logits_bb = tf.matmul(hidden2, hidden2_large, transpose_b=True) / temperature
  logits_bb = logits_bb - masks * LARGE_NUM
  logits_ab = tf.matmul(hidden1, hidden2_large, transpose_b=True) / temperature
  logits_ba = tf.matmul(hidden2, hidden1_large, transpose_b=True) / temperature

  loss_a = tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ab, logits_aa], 1))
  loss_b = tf.nn.softmax_cross_entropy_with_logits(labels, tf.concat([logits_ba, logits_bb], 1))
  return tf.reduce_mean(loss_a + loss_b), logits_ab, labels


def contrastive_metrics(logits_ab, labels):
  """(accuracy, entropy) the original logs: top-1 of the positive among the
  second views, and the mean entropy of the softmax over them."""
  correct = tf.equal(tf.argmax(labels, 1), tf.argmax(logits_ab, 1))
  accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
  prob = tf.nn.softmax(logits_ab)
  entropy = -tf.reduce_mean(tf.reduce_sum(prob * tf.math.log(prob + 1e-8), -1))
  return accuracy, entropy
