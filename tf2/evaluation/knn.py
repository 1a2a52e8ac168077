"""kNN monitor: weighted k-nearest-neighbour accuracy on frozen features.

The classifier of Wu et al. 2018 ("Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", eq. 8), as used by solo-learn and
lightly to follow self-supervised training without training a classifier:
features are L2-normalised, each query's k most cosine-similar bank entries
vote for their class with weight exp(similarity / temperature), and the class
with the largest total wins. Queries are the eval split and the bank is the
train split, or a seeded sample of `knn_bank_size` of its examples spread over
the whole split (stratified by class where labels are known up front; the same
bank at every checkpoint), both eval-preprocessed, as `final_avg_pool`
features gathered from every replica. `KnnMonitor` scores the model at every
checkpoint of a training run.
"""
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tf2.evaluation import features as features_lib
from tf2.evaluation import results

KNN_TOP_1 = 'eval/knn_top_1'
BANK_SEED = 0  # Fixed: every checkpoint is scored against the same bank.


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
                             seed=BANK_SEED)
  query_x, query_y = extractor(source, config.eval_split)
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
  """The training loop's on_checkpoint hook: kNN accuracy, logged and in TensorBoard."""

  def __init__(self, config, model, strategy, source):
    self.config, self.model, self.strategy, self.source = config, model, strategy, source
    self.extractor = features_lib.FeatureExtractor(config, model, strategy)
    self.results = {}

  def __call__(self, step):
    result = knn_accuracy(self.config, self.model, self.strategy, self.source, step,
                          self.extractor)
    self.results[step] = result
    results.write_summaries(self.config, {KNN_TOP_1: result[KNN_TOP_1]}, step,
                            self.config.model_dir)

  def result_at(self, step):
    """The result at `step`, with the step-0 (initial weights) figure when there is one."""
    if step not in self.results:
      return None
    result = dict(self.results[step])
    if 0 in self.results and step != 0:
      result['eval/knn_top_1_initial'] = self.results[0][KNN_TOP_1]
    return result
