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
