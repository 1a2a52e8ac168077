"""Per-batch colour distortion (`--color_jitter_on_device`): each transform against tf.image,
the composition against tf.image's ops in the drawn order, the draws against their ranges,
and the whole against the original's per-image code (where a copy is present)."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests import original_code
from tests.distribution import clipped_jitter, ks_bound, ks_distance, many_views
from tf2.data import augment, color

N_DRAWS = 1200


def images(n=6, size=12, seed=0):
  """Random colours plus the edge cases: gray, black, white, saturated primaries."""
  rng = np.random.RandomState(seed)
  out = rng.uniform(0, 1, (n, size, size, 3)).astype(np.float32)
  out[0, 0, :3] = [[0.4, 0.4, 0.4], [0, 0, 0], [1, 1, 1]]
  out[0, 1, :3] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
  out[0, 2, :2] = [[0.7, 0.7, 0.2], [0.2, 0.7, 0.7]]  # ties for the largest channel
  return tf.constant(out)


@pytest.mark.parametrize('name,factors,reference', [
    ('brightness', [0.2, 0.7, 1.0, 1.4, 1.8, 0.0], lambda x, f: x * f),
    ('contrast', [0.2, 0.7, 1.0, 1.4, 1.8, 0.5], tf.image.adjust_contrast),
    ('saturation', [0.2, 0.7, 1.0, 1.4, 1.8, 0.0], tf.image.adjust_saturation),
    ('hue', [-0.2, -0.05, 0.0, 0.11, 0.2, 0.5], tf.image.adjust_hue),
])
def test_each_transform_equals_tf_image_per_image(name, factors, reference):
  x = images()
  got = getattr(color, name)(x, tf.constant(factors)).numpy()
  for i, f in enumerate(factors):
    np.testing.assert_allclose(got[i], reference(x[i], f).numpy(), atol=2e-6, err_msg=str(f))


def test_additive_brightness_and_grayscale_equal_tf_image():
  x = images()
  deltas = [-0.8, -0.3, 0.0, 0.2, 0.5, 0.8]
  got = color.brightness(x, tf.constant(deltas), impl='simclrv1').numpy()
  for i, d in enumerate(deltas):
    np.testing.assert_allclose(got[i], tf.image.adjust_brightness(x[i], d).numpy(), atol=1e-6)
  np.testing.assert_allclose(color.grayscale(x).numpy(),
                             tf.tile(tf.image.rgb_to_grayscale(x), [1, 1, 1, 3]).numpy(),
                             atol=1e-6)


@pytest.mark.parametrize('impl', ['simclrv2', 'simclrv1'])
def test_composition_applies_tf_image_ops_in_each_images_order_with_clips(impl):
  x = images(n=8) * 1.2 - 0.1  # unclipped input, as the input pipeline hands it over
  rng = np.random.RandomState(3)
  brightness = rng.uniform(0.2, 1.8, 8) if impl == 'simclrv2' else rng.uniform(-0.8, 0.8, 8)
  draws = {
      'brightness': tf.constant(brightness, tf.float32),
      'contrast': tf.constant(rng.uniform(0.2, 1.8, 8), tf.float32),
      'saturation': tf.constant(rng.uniform(0.2, 1.8, 8), tf.float32),
      'hue': tf.constant(rng.uniform(-0.2, 0.2, 8), tf.float32),
      'order': tf.constant([rng.permutation(4) for _ in range(8)], tf.int32),
      'jitter': tf.constant([True] * 6 + [False] * 2),
      'grayscale': tf.constant([False, True] * 4),
  }
  got = color.apply_jitter(x, draws, impl).numpy()
  for i in range(8):
    y = x[i]
    if draws['jitter'][i]:
      y = clipped_jitter(y, {k: v[i] for k, v in draws.items()}, impl)
    if draws['grayscale'][i]:
      y = tf.tile(tf.image.rgb_to_grayscale(y), [1, 1, 3])
    np.testing.assert_allclose(got[i], tf.clip_by_value(y, 0.0, 1.0).numpy(), atol=3e-6)


@pytest.mark.parametrize('impl,strength', [('simclrv2', 0.5), ('simclrv2', 1.25),
                                           ('simclrv1', 0.5)])
def test_draws_follow_the_originals_ranges_orders_and_rates(impl, strength):
  draws = {k: v.numpy() for k, v in color.sample_jitter(N_DRAWS * 2, strength, impl).items()}
  amount = 0.8 * strength
  ranges = {'brightness': (max(1 - amount, 0), 1 + amount) if impl == 'simclrv2'
                          else (-amount, amount),
            'contrast': (1 - amount, 1 + amount), 'saturation': (1 - amount, 1 + amount),
            'hue': (-0.2 * strength, 0.2 * strength)}
  n = N_DRAWS * 2
  for name, (lo, hi) in ranges.items():
    values = np.sort(draws[name])
    assert lo <= values[0] and values[-1] <= hi, name
    uniform_cdf = (values - lo) / (hi - lo)
    assert np.abs(uniform_cdf - np.arange(1, n + 1) / n).max() < 1.95 / np.sqrt(n), name
  counts = {p: 0 for p in itertools.permutations(range(4))}
  for order in draws['order']:
    counts[tuple(order)] += 1  # a KeyError if a row is not a permutation
  expected = n / 24
  chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
  assert chi2 < 49.7  # chi-square, 23 degrees of freedom, p = 0.001
  for coin, p in (('jitter', 0.8), ('grayscale', 0.2)):
    assert abs(draws[coin].mean() - p) < 4 * np.sqrt(p * (1 - p) / n), coin


def view_statistics(views):
  """Per view: channel means, pixel spread, mean chroma (max - min), grayness, and the
  fractions clipped at 1 and at 0."""
  views = np.asarray(views, np.float64)
  chroma = views.max(-1) - views.min(-1)
  return {'mean_r': views[..., 0].mean((1, 2)), 'mean_g': views[..., 1].mean((1, 2)),
          'mean_b': views[..., 2].mean((1, 2)), 'spread': views.std((1, 2, 3)),
          'chroma': chroma.mean((1, 2)), 'gray': (chroma.max((1, 2)) < 1e-6).astype(float),
          'at_one': (views >= 1.0).mean((1, 2, 3)), 'at_zero': (views <= 0.0).mean((1, 2, 3))}


def test_views_match_the_originals_distribution():
  """Host crop and flip plus device colour against the original's per-image
  `preprocess_for_train`, statistic by statistic. It checks the wiring (ranges, rates,
  clips, strength); the order of the transforms barely moves these statistics, and the two
  tests above pin it: the drawn order is applied, and the orders are uniform."""
  original = original_code.load()
  if original is None:
    pytest.skip('no copy of the original SimCLR (set SIMCLR_ORIGINAL to a checkout)')
  rng = np.random.RandomState(5)
  coarse = rng.uniform(0.05, 0.95, (4, 5, 3)).astype(np.float32)
  image = tf.constant(tf.image.resize(coarse, [40, 50], 'bicubic').numpy().clip(0, 1))
  size = 16
  reference_view = lambda: original.preprocess_for_train(image, size, size, 1.0)
  theirs = many_views(reference_view, N_DRAWS)
  ours = color.batch_random_color_jitter(many_views(
      lambda: augment.preprocess_for_train(image, size, size, True, 1.0, finish=False),
      N_DRAWS), 1.0).numpy()
  a, b = view_statistics(theirs), view_statistics(ours)
  for name in a:
    assert ks_distance(a[name], b[name]) < ks_bound(N_DRAWS, N_DRAWS), name
