"""kNN monitor: against a numpy implementation, and features gathered from 8 replicas."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.config import Config
from tf2.data.datasets import array_source
from tf2.data.datasets import build_source
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
  config = Config(encoder='convnet', image_size=32, eval_batch_size=16, use_tpu=False,
                  global_bn=False, train_split='train', eval_split='test')
  with strategy8.scope():
    model = SimCLRModel(config, 10).build_for()
  x, y = features.split_features(model, strategy8, source, config, 'test')
  assert sorted(y.tolist()) == list(range(n))  # Every example exactly once.
  expected = model(tf.constant(images, tf.float32) / 255.0, training=False,
                   return_endpoints=True)[features.REPRESENTATION].numpy()
  np.testing.assert_allclose(x[np.argsort(y)], expected, atol=1e-5)
  assert float(np.std(expected)) > 1e-3
  x10, y10 = features.split_features(model, strategy8, source, config, 'train', sample=10,
                                     seed=3)
  assert x10.shape == (10, x.shape[1]) and len(set(y10.tolist())) == 10
  np.testing.assert_allclose(x10, expected[y10], atol=1e-5)
  assert max(y10) > 10  # Drawn over the split, not its first ten.


COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20)]


def solid_colour_folder(root, per_class):
  """root/<split>/<class>/*.png: one solid colour per class, listed class by class."""
  for split, count in per_class.items():
    for index, colour in enumerate(COLOURS):
      directory = root / split / f'class_{index}'
      directory.mkdir(parents=True)
      image = tf.io.encode_png(tf.constant(np.full((16, 16, 3), colour, np.uint8)))
      for i in range(count):
        tf.io.write_file(str(directory / f'{i:03d}.png'), image)


def test_bank_of_a_class_sorted_folder_holds_every_class(tmp_path):
  """A folder reads class by class: a bank of its first 60 images would be class 0 alone
  and the kNN top-1 chance (0.25). The bank is a sample spread over the split: every class
  in proportion, and any encoder tells solid colours apart."""
  solid_colour_folder(tmp_path, {'train': 60, 'test': 5})
  source = build_source(str(tmp_path), None, ['train', 'test'])
  config = Config(resnet_depth=18, resnet_base_width=8, image_size=16, eval_batch_size=32,
                  use_tpu=False, train_split='train', eval_split='test', knn_bank_size=60,
                  knn_k=5)
  strategy = tf.distribute.get_strategy()
  model = SimCLRModel(config, 4).build_for()
  _, bank_y = features.split_features(model, strategy, source, config, 'train', sample=60)
  assert np.bincount(bank_y).tolist() == [15, 15, 15, 15]
  result = knn.knn_accuracy(config, model, strategy, source, step=0)
  assert result[knn.KNN_TOP_1] == 1.0 and result['eval/knn_bank_size'] == 60


def test_a_slow_monitor_shows_progress_runs_once_per_checkpoint_and_is_not_training_time(
    tmp_path, monkeypatch, caplog):
  """A kNN pass longer than the progress interval logs progress with the time left; the
  last step, one after a checkpoint, gets no second pass (its result is the checkpoint's);
  the progress line after a pass shows the training rate, not one diluted by the pass."""
  import logging  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  from conftest import TINY_RUN  # pylint: disable=g-import-not-at-top
  from tf2 import runner  # pylint: disable=g-import-not-at-top
  real_step = features.make_feature_step

  def slow_step(*args, **kwargs):
    step = real_step(*args, **kwargs)

    def slowly(images, labels):
      time.sleep(0.25)  # 16 batches of 8: 4 s a pass.
      return step(images, labels)
    return slowly

  monkeypatch.setattr(features, 'make_feature_step', slow_step)
  caplog.set_level(logging.INFO, logger='absl')  # absl may have been set higher elsewhere.
  caplog.set_level(logging.INFO)
  config = Config(**dict(TINY_RUN, train_steps=21), checkpoint_steps=20, knn_eval=True,
                  knn_bank_size=64, knn_num_queries=64, log_every_secs=0.3, mode='train',
                  model_dir=str(tmp_path))
  result = runner.run(config)
  lines = [r.getMessage() for r in caplog.records]
  passing = [line for line in lines if re.match(r'kNN at step 20, (train bank|eval queries): '
                                                r'\d+/64 images .* left$', line)]
  assert len(passing) >= 2, lines
  assert [line for line in lines if line.startswith('kNN at step 21: not run, the weights of '
                                                    'step 20 were scored 1 step(s) ago')]
  assert sorted(set(re.findall(r'kNN at step (\d+): top-1', '\n'.join(lines)))) == ['0', '20']
  assert result['eval/knn_step'] == 20 and result['global_step'] == 21
  assert any(re.search(r'kNN: \d+% of the wall time so far \(2 pass', line) for line in lines)
  rate = float(re.search(r'step 21/21 .* \| ([\d.]+) images/s', '\n'.join(lines)).group(1))
  # A rate that counted the pass could not exceed 8 / 4 images/s; twice that leaves 2 s for the
  # step and the checkpoint written at step 20, on a loaded machine.
  assert rate > 2 * 8 / 4.0
