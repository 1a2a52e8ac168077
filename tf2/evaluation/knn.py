"""kNN monitor: weighted k-nearest-neighbour accuracy on frozen features.

The classifier of Wu et al. 2018 ("Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", eq. 8), as used by solo-learn and
lightly to follow self-supervised training without training a classifier:
features are L2-normalised, each query's k most cosine-similar bank entries
vote for their class with weight exp(similarity / temperature), and the class
with the largest total wins. The queries are a seeded sample of
`--knn_num_queries` examples of the eval split and the bank one of
`--knn_bank_size` examples of the train split (0: the whole split), each
spread over its split (stratified by class where labels are known up front)
and the same at every checkpoint, both eval-preprocessed, as
encoder features (`features.REPRESENTATION`) gathered from every replica. `KnnMonitor` scores the model at every
checkpoint of a training run.
"""
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tf2.evaluation import features as features_lib
from tf2.evaluation import results
from tf2.training.progress import format_duration

KNN_TOP_1 = 'eval/knn_top_1'
BANK_SEED = 0  # Fixed: every checkpoint is scored against the same bank,
QUERY_SEED = 1  # with the same queries.


def knn_predict(queries, bank, bank_labels, num_classes, k=200, temperature=0.1, chunk=1024):
  """Class predictions [Q] for query features [Q, D] against a bank [N, D]."""
  bank = tf.math.l2_normalize(tf.constant(bank, tf.float32), -1)
  bank_labels = tf.constant(bank_labels, tf.int64)
  k = min(k, int(bank.shape[0]))
  predictions = []
  for start in range(0, len(queries), chunk):
    q = tf.math.l2_normalize(tf.constant(queries[start:start + chunk], tf.float32), -1)
    similarity = tf.matmul(q, bank, transpose_b=True)
    top, index = tf.math.top_k(similarity, k)
    weights = tf.exp(top / temperature)
    votes = tf.one_hot(tf.gather(bank_labels, index), num_classes) * weights[..., None]
    predictions.append(tf.argmax(tf.reduce_sum(votes, 1), -1).numpy())
  return np.concatenate(predictions) if predictions else np.zeros([0], np.int64)


def knn_accuracy(config, model, strategy, source, step, extractor=None):
  """{'eval/knn_top_1': accuracy, ...} of `model`'s features; logs the figure and its cost.
  `extractor`: the model's `features.FeatureExtractor`, when it is kept between calls."""
  start = time.time()
  extractor = extractor or features_lib.FeatureExtractor(config, model, strategy)
  bank_x, bank_y = extractor(source, config.train_split, sample=config.knn_bank_size,
                             seed=BANK_SEED, what=f'kNN at step {step}, train bank')
  query_x, query_y = extractor(source, config.eval_split, sample=config.knn_num_queries,
                               seed=QUERY_SEED, what=f'kNN at step {step}, eval queries')
  predictions = knn_predict(query_x, bank_x, bank_y, source.num_classes, config.knn_k,
                            config.knn_temperature)
  accuracy = float(np.mean(predictions == query_y))
  seconds = time.time() - start
  logging.info('kNN at step %d: top-1 %.4f (k=%d, temperature %g, bank %d train images, '
               '%d eval queries; %.1f s)', step, accuracy, config.knn_k,
               config.knn_temperature, len(bank_y), len(query_y), seconds)
  return {KNN_TOP_1: accuracy, 'eval/knn_bank_size': float(len(bank_y)),
          'eval/knn_num_queries': float(len(query_y)), 'eval/knn_seconds': seconds}


class KnnMonitor:
  """The training loop's on_checkpoint hook: kNN accuracy, logged and in TensorBoard.

  A pass fewer than `repeat_steps` (a tenth of the checkpoint interval, at least 1) after
  the last one is not run: its weights are almost those already scored (the last step of
  a run that ends just after a checkpoint). The decision depends on steps alone, so every
  worker of a multi-worker run takes the same one. Each pass logs its share of the wall
  time since training started.
  """

  def __init__(self, config, model, strategy, source, checkpoint_steps=1, clock=time.monotonic):
    self.config, self.model, self.strategy, self.source = config, model, strategy, source
    self.extractor = features_lib.FeatureExtractor(config, model, strategy)
    self.repeat_steps = max(1, checkpoint_steps // 10)
    self.clock = clock
    self.started = clock()
    self.seconds = 0.0
    self.results = {}

  def last_step(self):
    return max(self.results) if self.results else None

  def __call__(self, step):
    last = self.last_step()
    if last is not None and step - last < self.repeat_steps:
      logging.info('kNN at step %d: not run, the weights of step %d were scored %d step(s) '
                   'ago (passes are at least %d steps apart, a tenth of the checkpoint '
                   'interval).', step, last, step - last, self.repeat_steps)
      return
    start = self.clock()
    result = knn_accuracy(self.config, self.model, self.strategy, self.source, step,
                          self.extractor)
    now = self.clock()
    self.seconds += now - start
    self.results[step] = result
    logging.info('kNN: %.0f%% of the wall time so far (%d pass(es), %s of %s); '
                 '--knn_bank_size and --knn_num_queries bound it.',
                 100.0 * self.seconds / max(now - self.started, 1e-9), len(self.results),
                 format_duration(self.seconds), format_duration(now - self.started))
    results.write_summaries(self.config, {KNN_TOP_1: result[KNN_TOP_1]}, step,
                            self.config.model_dir)

  def result_at(self, step):
    """The result of the weights at `step`: the last pass, if it ran at `step` or fewer
    than `repeat_steps` before it (None otherwise); with the step-0 (initial weights)
    figure when there is one, and the step the pass scored."""
    last = self.last_step()
    if last is None or not 0 <= step - last < self.repeat_steps:
      return None
    result = dict(self.results[last], **{'eval/knn_step': float(last)})
    if 0 in self.results and last != 0:
      result['eval/knn_top_1_initial'] = self.results[0][KNN_TOP_1]
    return result
