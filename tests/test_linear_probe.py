"""The logistic-regression probe: learns separable features, stays at chance on noise."""
import numpy as np

from tf2.evaluation import linear_probe


def test_separable_features_are_classified(rng):
  centres = rng.normal(0, 1, [4, 16]) * 3
  labels = rng.randint(0, 4, 800)
  features = (centres[labels] + rng.normal(0, 1, [800, 16])).astype(np.float32)
  predict = linear_probe.fit_logistic_regression(features[:600], labels[:600], 4, steps=200)
  assert np.mean(predict(features[600:]) == labels[600:]) > 0.95


def test_noise_features_stay_near_chance(rng):
  features = rng.normal(0, 1, [1000, 16]).astype(np.float32)
  labels = rng.randint(0, 4, 1000)
  predict = linear_probe.fit_logistic_regression(features[:800], labels[:800], 4, steps=200)
  assert abs(np.mean(predict(features[800:]) == labels[800:]) - 0.25) < 0.1


def test_probe_fits_on_a_capped_sample_spread_over_the_split(rng, monkeypatch, caplog):
  """--linear_probe_max_examples bounds the features held in memory: a class-sorted split of
  40 examples capped at 12 gives 12 training features, 3 per class, and says so."""
  import logging  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2.config import Config  # pylint: disable=g-import-not-at-top
  from tf2.data.datasets import array_source  # pylint: disable=g-import-not-at-top
  from tf2.models.model import SimCLRModel  # pylint: disable=g-import-not-at-top
  images = rng.randint(0, 256, (40, 16, 16, 3)).astype(np.uint8)
  labels = np.repeat(np.arange(4), 10)
  source = array_source('sorted', {'train': (images, labels), 'test': (images[:8], labels[:8])},
                        4)
  config = Config(resnet_depth=18, resnet_base_width=8, image_size=16, eval_batch_size=16,
                  use_tpu=False, linear_probe_max_examples=12)
  fitted = []
  real_fit = linear_probe.fit_logistic_regression
  monkeypatch.setattr(linear_probe, 'fit_logistic_regression',
                      lambda x, y, n: fitted.append(y) or real_fit(x, y, n))
  caplog.set_level(logging.INFO, logger='absl')  # absl may have been set higher elsewhere.
  caplog.set_level(logging.INFO)
  model = SimCLRModel(config, 4).build_for()
  linear_probe.probe_accuracy(model, tf.distribute.get_strategy(), source, config, 'train',
                              'test', 4)
  assert np.bincount(fitted[0]).tolist() == [3, 3, 3, 3]
  assert 'fitted on 12 of the 40 train examples (--linear_probe_max_examples=12)' in caplog.text
