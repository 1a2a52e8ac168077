"""Frozen features of a whole split, computed on every replica and gathered.

Each replica pads its (possibly partial or empty) batch to a static size,
runs the model in inference mode and returns its features, labels and a
validity mask; `strategy.gather` concatenates them across replicas (and
workers), and the padding is dropped on the host. So every example is kept
exactly once, shapes stay static (TPU/XLA), and one trace serves all batches.
"""
import collections

import numpy as np
import tensorflow as tf

from tf2.data import input_pipeline
from tf2.data import sampling


def pad_batch(images, labels, size, label_dtype=tf.int64):
  """A replica's batch padded to the static `size`: (images, labels, valid mask, count)."""
  count = tf.shape(labels)[0]
  pad = size - count
  images = tf.pad(images, [[0, pad], [0, 0], [0, 0], [0, 0]])
  images.set_shape([size] + images.shape[1:].as_list())
  labels = tf.pad(tf.cast(labels, label_dtype), [[0, pad]])
  return images, labels, tf.range(size) < count, count


_STEPS = collections.OrderedDict()  # (id(model), settings) -> (model, tf.function)
_MAX_CACHED = 8  # The functions hold their models: keep only the most recent few.


def cached_step(model, settings, make):
  """The step function for `model` and `settings`, made once: evaluating at every
  checkpoint reuses one trace instead of tracing a new function each time."""
  key = (id(model), settings)
  if key not in _STEPS or _STEPS[key][0] is not model:
    _STEPS[key] = (model, make())
    while len(_STEPS) > _MAX_CACHED:
      _STEPS.popitem(last=False)
  _STEPS.move_to_end(key)
  return _STEPS[key][1]


def make_feature_step(model, strategy, per_replica_batch, key='final_avg_pool'):
  """step(images, labels) -> (features, labels, valid), gathered from all replicas."""

  def replica_step(images, labels):
    images, labels, valid, _ = pad_batch(images, labels, per_replica_batch)
    outputs = model(images, training=False, return_endpoints=True, apply_device_augment=False)
    valid = tf.cast(valid, tf.int32)  # (gather takes no bool)
    return tf.cast(outputs[key], tf.float32), labels, valid

  @tf.function
  def step(images, labels):
    per_replica = strategy.run(replica_step, (images, labels))
    return [strategy.gather(x, axis=0) for x in per_replica]

  return step


def split_features(model, strategy, source, config, split, sample=0, seed=0,
                   key='final_avg_pool'):
  """(features [N, D] float32, labels [N] int64) of `split` with eval preprocessing.

  `sample` > 0: only a seeded sample of that many examples spread over the
  whole split (`tf2/data/sampling.py`; the rest is neither decoded nor
  computed), not the first ones in reading order, which in a folder are the
  first classes.
  """
  keep = None
  if 0 < sample < source.num_examples(split):
    keep = sampling.spread_sample(source.num_examples(split), sample, seed,
                                  source.labels(split))
  dataset = input_pipeline.distributed_dataset(strategy, source, config, is_training=False,
                                               split=split, keep=keep)
  per_replica_batch = -(-config.eval_batch_size // strategy.num_replicas_in_sync)
  step = cached_step(model, ('features', strategy, per_replica_batch, key),
                     lambda: make_feature_step(model, strategy, per_replica_batch, key))
  xs, ys = [], []
  for images, labels in dataset:
    features, labels, valid = (x.numpy() for x in step(images, labels))
    valid = valid.astype(bool)
    xs.append(features[valid])
    ys.append(labels[valid])
  if not xs:
    return np.zeros([0, 0], np.float32), np.zeros([0], np.int64)
  return np.concatenate(xs), np.concatenate(ys)
