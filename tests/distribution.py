"""Helpers of the distribution tests: many random views through tf.data, the
two-sample Kolmogorov-Smirnov test that compares two sets of them, and the
original's colour jitter of one image for given draws."""
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


def clipped_jitter(image, draws, impl='simclrv2'):
  """One image's colour jitter as the original's `color_jitter_rand` computes it, for
  fixed draws (scalars, and `order` a permutation of 0-3 for brightness, contrast,
  saturation, hue): tf.image's ops in that order, each result clipped to [0, 1]."""
  ops = [lambda y: (y * draws['brightness'] if impl == 'simclrv2'
                    else tf.image.adjust_brightness(y, draws['brightness'])),
         lambda y: tf.image.adjust_contrast(y, draws['contrast']),
         lambda y: tf.image.adjust_saturation(y, draws['saturation']),
         lambda y: tf.image.adjust_hue(y, draws['hue'])]
  for op in np.asarray(draws['order']):
    image = tf.clip_by_value(ops[op](image), 0.0, 1.0)
  return image
