"""Helpers of the distribution tests: many random views through tf.data, and the
two-sample Kolmogorov-Smirnov test that compares two sets of them."""
import numpy as np
import tensorflow as tf


def many_views(view, n):
  """`n` draws of the random `view()`, traced once (a tf.data map), as one array."""
  return next(iter(tf.data.Dataset.range(n).map(lambda _: view()).batch(n))).numpy()


def ks_distance(a, b):
  """Two-sample Kolmogorov-Smirnov statistic."""
  grid = np.sort(np.concatenate([a, b]))
  cdf = lambda x: np.searchsorted(np.sort(x), grid, side='right') / len(x)
  return np.abs(cdf(a) - cdf(b)).max()


def ks_bound(n, m, alpha_coefficient=1.95):  # alpha = 0.001
  return alpha_coefficient * np.sqrt((n + m) / (n * m))
