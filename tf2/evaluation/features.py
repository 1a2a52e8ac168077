"""Frozen features of a whole split, computed on every replica and gathered.

Each replica pads its (possibly partial or empty) batch to a static size,
runs the model in inference mode and returns its features, labels and a
validity mask; `strategy.gather` concatenates them across replicas (and
workers), and the padding is dropped on the host. So every example is kept
exactly once, shapes stay static (TPU/XLA), and one trace serves all batches.
A `FeatureExtractor` keeps its trace for every split and checkpoint it reads.
"""
import numpy as np
import tensorflow as tf

from tf2.data import input_pipeline
from tf2.data import sampling
from tf2.training.progress import PassProgress

# The representation the evaluations read: the encoder's output (the ResNet's
# `final_avg_pool`, the ConvNet's dense block).
REPRESENTATION = 'proj_head_input'


def pad_batch(images, labels, size, label_dtype=tf.int64):
  """A replica's batch padded to the static `size`: (images, labels, valid mask, count)."""
  count = tf.shape(labels)[0]
  pad = size - count
  images = tf.pad(images, [[0, pad], [0, 0], [0, 0], [0, 0]])
  images.set_shape([size] + images.shape[1:].as_list())
  labels = tf.pad(tf.cast(labels, label_dtype), [[0, pad]])
  return images, labels, tf.range(size) < count, count


def make_feature_step(model, strategy, per_replica_batch, key=REPRESENTATION):
  """step(images, labels) -> (features, labels, valid), gathered from all replicas."""

  def replica_step(images, labels):
    images, labels, valid, _ = pad_batch(images, labels, per_replica_batch)
    outputs = model(images, training=False, return_endpoints=True)
    valid = tf.cast(valid, tf.int32)  # (gather takes no bool)
    return tf.cast(outputs[key], tf.float32), labels, valid

  @tf.function
  def step(images, labels):
    per_replica = strategy.run(replica_step, (images, labels))
    return [strategy.gather(x, axis=0) for x in per_replica]

  return step


class FeatureExtractor:
  """Features `key` of one model under `strategy`, split after split (eval preprocessing)."""

  def __init__(self, config, model, strategy, key=REPRESENTATION):
    self.config, self.strategy = config, strategy
    per_replica_batch = -(-config.eval_batch_size // strategy.num_replicas_in_sync)
    self.step = make_feature_step(model, strategy, per_replica_batch, key)

  def __call__(self, source, split, sample=0, seed=0, what=None):
    """(features [N, D] float32, labels [N] int64) of `split`.

    `sample` > 0: only a seeded sample of that many examples spread over the
    whole split (`tf2/data/sampling.py`; the rest is neither decoded nor
    computed), not the first ones in reading order, which in a folder are the
    first classes. `what`: what the progress lines of a long pass call it.
    """
    keep, total = None, source.num_examples(split)
    if 0 < sample < total:
      keep = sampling.spread_sample(total, sample, seed, source.labels(split))
      total = sample
    progress = PassProgress(what or f'Features of {split}', total, self.config.log_every_secs)
    dataset = input_pipeline.distributed_dataset(self.strategy, source, self.config,
                                                 is_training=False, split=split, keep=keep)
    xs, ys = [], []
    for images, labels in dataset:
      features, labels, valid = (x.numpy() for x in self.step(images, labels))
      valid = valid.astype(bool)
      xs.append(features[valid])
      ys.append(labels[valid])
      progress.advance(int(valid.sum()))
    if not xs:
      return np.zeros([0, 0], np.float32), np.zeros([0], np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def split_features(model, strategy, source, config, split, sample=0, seed=0,
                   key=REPRESENTATION):
  """`FeatureExtractor(...)(source, split, sample, seed)`, for a single split."""
  return FeatureExtractor(config, model, strategy, key)(source, split, sample, seed)
