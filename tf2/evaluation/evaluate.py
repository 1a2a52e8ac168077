"""Evaluation of the supervised head: top-1/top-5 accuracy and the regularization loss.

Every example of the eval split is counted exactly once: the distributed
dataset is iterated in Python (the last batch may be partial, and some
replicas may get an empty batch), each replica returns its counts of correct
predictions and examples, and the counts are summed across replicas
(`strategy.reduce(SUM)`). An `Evaluator` traces its step once and reuses it
for every checkpoint it scores. Results are written by `results.py`.
"""
from absl import logging
import tensorflow as tf

from tf2.data import input_pipeline
from tf2.errors import ConfigError, DatasetError
from tf2.evaluation import features
from tf2.training.optimizers import weight_decay_loss
from tf2.training.progress import PassProgress

TOP_1 = 'eval/label_top_1_accuracy'
TOP_5 = 'eval/label_top_5_accuracy'
REGULARIZATION = 'eval/regularization_loss'
# What the supervised head is, per training mode, for the log.
HEADS = {'pretrain': 'the linear head trained beside pretraining (on stop-gradient features)',
         'finetune': 'the fine-tuned classifier',
         'distill': "the student's classifier"}


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


class Evaluator:
  """Evaluates one model's supervised head under `strategy`, at any number of steps."""

  def __init__(self, config, model, strategy):
    if model.supervised_head is None:
      raise ConfigError('This model has no supervised head to evaluate: pretrain with '
                        '--lineareval_while_pretraining=True, or fine-tune.')
    self.config, self.model, self.strategy = config, model, strategy
    self.per_replica_batch = -(-config.eval_batch_size // strategy.num_replicas_in_sync)
    self.step = None  # Made at the first call, when the class count is known.

  def __call__(self, source, step):
    """The result dict (floats) of the model as it is now, labelled `step`."""
    config = self.config
    if source.num_classes < 1:
      raise DatasetError(f'The eval split {config.eval_split!r} of {source.name} has no labels '
                         '(an unlabelled folder): evaluation needs class subfolders.')
    if self.step is None:
      self.step = make_eval_step(self.model, self.strategy, source.num_classes,
                                 self.per_replica_batch)
    dataset = input_pipeline.distributed_dataset(self.strategy, source, config,
                                                 is_training=False)
    expected = source.num_examples(config.eval_split)
    if config.eval_steps:
      expected = min(expected, config.eval_steps * config.eval_batch_size)
    progress = PassProgress(f'Evaluation at step {step}', expected, config.log_every_secs)
    correct1 = correct5 = total = 0
    for i, (images, labels) in enumerate(dataset):
      if config.eval_steps and i >= config.eval_steps:
        break
      c1, c5, n = self.step(images, labels)
      correct1, correct5, total = correct1 + int(c1), correct5 + int(c5), total + int(n)
      progress.advance(int(n))
    if total == 0:
      raise DatasetError(f'The eval split {config.eval_split!r} is empty.')
    reg = float(weight_decay_loss(self.model.trainable_variables, config.optimizer,
                                  config.weight_decay))
    result = {TOP_1: correct1 / total, TOP_5: correct5 / total, REGULARIZATION: reg,
              'eval/num_examples': float(total), 'global_step': float(step)}
    logging.info('Evaluation at step %d of %s on %d %s examples: top-1 %.4f, top-5 %.4f '
                 '(chance %.4f)', step, HEADS[config.train_mode], total, config.eval_split,
                 result[TOP_1], result[TOP_5], 1.0 / source.num_classes)
    return result


def evaluate(config, model, strategy, source, step):
  """Evaluates `model` on the eval split once; returns the result dict (floats)."""
  return Evaluator(config, model, strategy)(source, step)
