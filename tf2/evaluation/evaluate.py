"""Evaluation of the supervised head: top-1/top-5 accuracy and the regularization loss.

Every example of the eval split is counted exactly once: the distributed
dataset is iterated in Python (the last batch may be partial, and some
replicas may get an empty batch), each replica returns its counts of correct
predictions and examples, and the counts are summed across replicas
(`strategy.reduce(SUM)`). Results are written as the original does:
`result.json` (latest), `result_<step>.json` and `flags.json` in `model_dir`,
plus TensorBoard scalars under `model_dir/<eval_name or 'eval'>`.
"""
import dataclasses
import json
import os

from absl import logging
import tensorflow as tf

from tf2.data import input_pipeline
from tf2.evaluation import features
from tf2.config import ConfigError
from tf2.data.datasets import DatasetError
from tf2.training.optimizers import weight_decay_loss

TOP_1 = 'eval/label_top_1_accuracy'
TOP_5 = 'eval/label_top_5_accuracy'
REGULARIZATION = 'eval/regularization_loss'


def make_eval_step(model, strategy, num_classes, per_replica_batch):
  """Counts per batch. Each replica pads its (possibly partial or empty) batch to
  the static `per_replica_batch` and masks the padding: static shapes for
  TPUs, and no empty batches through the network."""
  k = min(5, max(num_classes, 1))

  def replica_step(images, labels):
    images, labels, valid, count = features.pad_batch(images, labels, per_replica_batch,
                                                      tf.int32)
    logits = tf.cast(model(images, training=False)['logits_sup'], tf.float32)
    top1 = tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels)
    topk = tf.math.in_top_k(labels, logits, k)
    as_count = lambda hits: tf.reduce_sum(tf.cast(tf.logical_and(hits, valid), tf.int64))
    return as_count(top1), as_count(topk), tf.cast(count, tf.int64)

  @tf.function
  def step(images, labels):
    per_replica = strategy.run(replica_step, (images, labels))
    return [strategy.reduce(tf.distribute.ReduceOp.SUM, x, axis=None) for x in per_replica]

  return step


def evaluate(config, model, strategy, source, step):
  """Evaluates `model` on the eval split; returns the result dict (floats)."""
  if model.supervised_head is None:
    raise ConfigError('This model has no supervised head to evaluate: pretrain with '
                     '--lineareval_while_pretraining=True, or fine-tune.')
  if source.num_classes < 1:
    raise DatasetError(f'The eval split {config.eval_split!r} of {source.name} has no labels '
                     '(an unlabelled folder): evaluation needs class subfolders.')
  dataset = input_pipeline.distributed_dataset(strategy, source, config, is_training=False)
  per_replica_batch = -(-config.eval_batch_size // strategy.num_replicas_in_sync)
  eval_step = features.cached_step(
      model, ('eval', strategy, source.num_classes, per_replica_batch),
      lambda: make_eval_step(model, strategy, source.num_classes, per_replica_batch))
  correct1 = correct5 = total = 0
  for i, (images, labels) in enumerate(dataset):
    if config.eval_steps and i >= config.eval_steps:
      break
    c1, c5, n = eval_step(images, labels)
    correct1, correct5, total = correct1 + int(c1), correct5 + int(c5), total + int(n)
  if total == 0:
    raise DatasetError(f'The eval split {config.eval_split!r} is empty.')
  reg = float(weight_decay_loss(model.trainable_variables, config.optimizer,
                                config.weight_decay))
  result = {TOP_1: correct1 / total, TOP_5: correct5 / total, REGULARIZATION: reg,
            'eval/num_examples': float(total), 'global_step': float(step)}
  logging.info('Evaluation at step %d on %d examples: top-1 %.4f, top-5 %.4f',
               step, total, result[TOP_1], result[TOP_5])
  return result


def write_results(config, result, model_dir):
  """result.json, result_<step>.json, flags.json and eval summaries."""
  step = int(result['global_step'])
  for name in ('result.json', f'result_{step}.json'):
    with tf.io.gfile.GFile(os.path.join(model_dir, name), 'w') as f:
      json.dump({k: float(v) for k, v in result.items()}, f, indent=1)
  write_flags(config, model_dir)
  write_summaries(config, {k: v for k, v in result.items() if k != 'global_step'}, step,
                  model_dir)


def write_summaries(config, scalars, step, model_dir):
  """TensorBoard scalars under model_dir/<eval_name or 'eval'>."""
  writer = tf.summary.create_file_writer(os.path.join(model_dir, config.eval_name or 'eval'))
  with writer.as_default():
    for key, value in scalars.items():
      tf.summary.scalar(key, value, step=step)
  writer.flush()


def write_flags(config, model_dir):
  with tf.io.gfile.GFile(os.path.join(model_dir, 'flags.json'), 'w') as f:
    json.dump(dataclasses.asdict(config), f, indent=1, sort_keys=True)
