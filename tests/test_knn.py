"""kNN monitor: against a numpy implementation, and features gathered from 8 replicas."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.config import Config
from tf2.data.datasets import array_source
from tf2.evaluation import features, knn
from tf2.models.model import SimCLRModel


def numpy_knn(queries, bank, bank_labels, num_classes, k, temperature):
  """Wu et al. 2018 eq. 8, one query at a time."""
  bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  predictions = []
  for q in queries:
    sims = bank @ (q / np.linalg.norm(q))
    nearest = np.argsort(-sims, kind='stable')[:k]
    scores = np.zeros(num_classes)
    for i in nearest:
      scores[bank_labels[i]] += np.exp(sims[i] / temperature)
    predictions.append(np.argmax(scores))
  return np.array(predictions)


@pytest.mark.parametrize('k, temperature, chunk', [(200, 0.1, 1024), (5, 0.5, 7), (1, 0.1, 50),
                                                   (1000, 1.0, 64)])
def test_matches_numpy(rng, k, temperature, chunk):
  centres = rng.normal(size=(4, 16))
  bank_y = rng.randint(0, 4, 300)
  bank = centres[bank_y] + 1.5 * rng.normal(size=(300, 16))
  query_y = rng.randint(0, 4, 120)
  queries = centres[query_y] + 1.5 * rng.normal(size=(120, 16))
  got = knn.knn_predict(queries, bank, bank_y, 4, k, temperature, chunk)
  expected = numpy_knn(queries, bank, bank_y, 4, min(k, 300), temperature)
  np.testing.assert_array_equal(got, expected)
  assert 0.4 < np.mean(got == query_y) < 1.0  # Neither trivial nor impossible.


def test_weights_decide_against_a_majority():
  # Two far bank entries of class 0 against one identical entry of class 1.
  bank = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  labels = np.array([1, 0, 0])
  query = np.array([[1.0, 0.05]])
  assert knn.knn_predict(query, bank, labels, 2, k=3, temperature=0.1)[0] == 1
  assert knn.knn_predict(query, bank, labels, 2, k=3, temperature=100.0)[0] == 0


def test_features_from_8_replicas_equal_one_device(strategy8, rng):
  n = 37  # Not a multiple of the batch (16) nor of the replicas: partial and empty batches.
  images = rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8)
  labels = np.arange(n)  # Unique labels identify the examples after gathering.
  source = array_source('tiny', {'train': (images, labels), 'test': (images, labels)}, n)
  config = Config(resnet_depth=18, resnet_base_width=8, image_size=32, eval_batch_size=16,
                  use_tpu=False, global_bn=False, train_split='train', eval_split='test')
  with strategy8.scope():
    model = SimCLRModel(config, 10).build_for()
  x, y = features.split_features(model, strategy8, source, config, 'test')
  assert sorted(y.tolist()) == list(range(n))  # Every example exactly once.
  expected = model(tf.constant(images, tf.float32) / 255.0, training=False,
                   return_endpoints=True)['final_avg_pool'].numpy()
  np.testing.assert_allclose(x[np.argsort(y)], expected, atol=1e-5)
  assert float(np.std(expected)) > 1e-3
  x10, y10 = features.split_features(model, strategy8, source, config, 'train', limit=10)
  assert x10.shape == (10, x.shape[1]) and len(set(y10.tolist())) == 10
