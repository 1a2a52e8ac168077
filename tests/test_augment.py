"""SimCLR augmentations: crop statistics, jitter/grayscale rates, ranges, eval crop."""
import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests import original_code
from tests.distribution import clipped_jitter, ks_bound, ks_distance, many_views
from tf2.data import augment, color

N_DRAWS = 2000


def colourful(h=40, w=48, seed=0):
  rng = np.random.RandomState(seed)
  return tf.constant(rng.uniform(0.1, 0.9, (h, w, 3)).astype(np.float32))


def within(rate, p, n, sigmas=4):
  return abs(rate - p) <= sigmas * np.sqrt(p * (1 - p) / n)


def test_crop_area_and_aspect_ranges():
  shape = tf.constant([240, 240, 3])
  sample = tf.function(lambda: augment.sample_crop_box(shape))
  areas, aspects = [], []
  for _ in range(N_DRAWS):
    _, size = sample()
    h, w = size.numpy()
    areas.append(h * w / (240 * 240))
    aspects.append(w / h)
  areas, aspects = np.array(areas), np.array(aspects)
  # Integer rounding of the box allows a hair outside the nominal ranges.
  assert areas.min() >= 0.08 - 0.005 and areas.max() <= 1.0
  assert aspects.min() >= 0.75 * 0.97 and aspects.max() <= 4 / 3 * 1.03
  # Areas spread over the range (area drawn uniformly, minus the boxes that do
  # not fit the image at the drawn aspect ratio, which skews it low).
  assert 0.25 < np.median(areas) < 0.6
  assert (areas < 0.2).mean() > 0.05 and (areas > 0.8).mean() > 0.02


def test_colour_jitter_and_grayscale_rates():
  image = colourful()
  jitter = tf.function(lambda: augment.random_color_jitter(image, strength=1.0))
  unchanged = gray = 0
  for _ in range(N_DRAWS):
    out = jitter().numpy()
    assert out.min() >= 0 and out.max() <= 1
    if np.array_equal(out, image.numpy()):
      unchanged += 1
    elif np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2]):
      gray += 1
  # Untouched iff neither jitter (p 0.8) nor grayscale (p 0.2) applied.
  assert within(unchanged / N_DRAWS, 0.2 * 0.8, N_DRAWS)
  assert within(gray / N_DRAWS, 0.2, N_DRAWS)


def overshooting(seed=0):
  """A bicubic upsampling of random colours (values a little outside [0, 1], as a
  resized crop hands them to the colour distortion), plus black, white, gray and
  primary pixels."""
  coarse = np.random.RandomState(seed).uniform(0, 1, (5, 6, 3)).astype(np.float32)
  image = tf.image.resize(coarse, [20, 24], 'bicubic').numpy()
  image[0, :6] = [[0, 0, 0], [1, 1, 1], [0.4, 0.4, 0.4], [1, 0, 0], [0, 1, 0], [0.7, 0.7, 0.2]]
  assert image.min() < 0 and image.max() > 1
  return tf.constant(image)


def factor_sets(impl):
  """Extreme and middle draws of strength 1 (brightness 0 is strength 1.25's)."""
  bright = [0.0, 1.8, 0.9] if impl == 'simclrv2' else [-0.8, 0.8, 0.1]
  return [dict(brightness=b, contrast=c, saturation=s, hue=h) for b, c, s, h in
          zip(bright, [0.2, 1.8, 1.1], [1.8, 0.2, 0.6], [-0.2, 0.2, 0.07])]


def traced_distort_color(impl):
  """augment.distort_color traced once, called with draws of Python values."""
  distort = tf.function(lambda x, draws: augment.distort_color(x, draws, impl))
  return lambda image, draws: distort(image, {
      k: tf.constant(v, tf.int32 if k == 'order' else tf.float32) for k, v in draws.items()})


@pytest.mark.parametrize('impl', ['simclrv2', 'simclrv1'])
def test_distort_color_is_the_clipped_tf_image_composition_bit_for_bit(impl):
  """Every order, extreme factors, an input outside [0, 1] (the first clip matters)."""
  image = overshooting()
  distort = traced_distort_color(impl)
  for factors in factor_sets(impl):
    for order in itertools.permutations(range(4)):
      draws = dict(factors, order=order)
      got = distort(image, draws)
      np.testing.assert_array_equal(got.numpy(), clipped_jitter(image, draws, impl).numpy(),
                                    err_msg=str(draws))


@pytest.mark.parametrize('impl', ['simclrv2', 'simclrv1'])
@pytest.mark.parametrize('jitter,grayscale', itertools.product([True, False], repeat=2))
def test_random_color_jitter_applies_its_draws(monkeypatch, impl, jitter, grayscale):
  """The jitter's coin (p 0.8), its factors and order, then the grayscale coin (p 0.2):
  `color.sample_jitter`'s draws for one image, of the strength and brightness asked."""
  image = overshooting(1)
  draws = dict(factor_sets(impl)[1], order=(2, 3, 0, 1), jitter=jitter, grayscale=grayscale)

  def sample(*args):
    assert args == (1, 0.7, impl)
    return {k: tf.constant([v]) for k, v in draws.items()}

  monkeypatch.setattr(color, 'sample_jitter', sample)
  want = clipped_jitter(image, draws, impl) if jitter else image
  if grayscale:
    want = tf.tile(tf.image.rgb_to_grayscale(want), [1, 1, 3])
  np.testing.assert_array_equal(augment.random_color_jitter(image, 0.7, impl).numpy(),
                                want.numpy())


def test_train_views_shape_range_and_independence():
  image = tf.cast(colourful(60, 80) * 255, tf.uint8)
  views = augment.pretrain_views(image, 32, strength=0.5).numpy()
  assert views.shape == (32, 32, 6) and views.dtype == np.float32
  assert views.min() >= 0 and views.max() <= 1
  assert not np.allclose(views[..., :3], views[..., 3:])


def test_zero_jitter_strength_skips_colour_distortion_and_grayscale():
  """As the original (colour distortion only for strength > 0): crops, resizes and flips of
  a solid colour keep that colour exactly, so no view may change it; at strength 0.5 the
  jitter (p 0.8) and grayscale (p 0.2) change most views."""
  colour = np.array([0.9, 0.3, 0.1], np.float32)
  image = tf.constant(np.broadcast_to(colour, (40, 48, 3)).copy())
  changed = {}
  for strength in (0.0, 0.5):
    views = tf.function(lambda s=strength: augment.pretrain_views(image, 16, s, views=4))
    out = np.concatenate([views().numpy() for _ in range(50)], -1)
    pixels = out.reshape(-1, out.shape[-1] // 3, 3)
    changed[strength] = int(np.sum(np.abs(pixels - colour).max(axis=(0, 2)) > 1e-4))
  assert changed[0.0] == 0
  assert changed[0.5] > 100  # Of 200 views: about 0.8 + 0.2 * 0.2 of them.


def test_eval_center_crop_matches_independent_computation():
  rng = np.random.RandomState(1)
  image = rng.rand(100, 60, 3).astype(np.float32)
  out = augment.preprocess(tf.constant(image), 48, is_training=False, color_distort=False)
  # Square target on a portrait image: limited by width -> 0.875 * 60 = 52.5 -> 52
  # (round half to even), centred with offset rounded up.
  crop = 52
  oy, ox = (100 - crop + 1) // 2, (60 - crop + 1) // 2
  expected = tf.image.resize(image[oy:oy + crop, ox:ox + crop], [48, 48], method='bicubic')
  np.testing.assert_allclose(out.numpy(), np.clip(expected.numpy(), 0, 1), atol=1e-6)
  # CIFAR-sized images are not cropped at evaluation.
  small = rng.rand(32, 32, 3).astype(np.float32)
  np.testing.assert_allclose(
      augment.preprocess(tf.constant(small), 32, False, False).numpy(), small, atol=1e-6)


@pytest.mark.parametrize('channels,dtype', [(1, np.uint8), (2, np.uint8), (4, np.uint8),
                                            (3, np.uint16), (3, np.float32)])
def test_to_float_rgb(channels, dtype):
  rng = np.random.RandomState(2)
  maximum = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
  raw = (rng.rand(5, 6, channels) * maximum).astype(dtype)
  out = augment.to_float_rgb(tf.constant(raw)).numpy()
  assert out.shape == (5, 6, 3) and out.dtype == np.float32
  scaled = raw.astype(np.float64) / maximum
  expected = np.repeat(scaled[..., :1], 3, -1) if channels < 3 else scaled[..., :3]
  np.testing.assert_allclose(out, expected, atol=1e-6)


ORIGINAL = original_code.load()
needs_original = pytest.mark.skipif(ORIGINAL is None, reason='no copy of the original SimCLR '
                                    '(set SIMCLR_ORIGINAL to a checkout)')


def crop_and_flip_statistics(views, height, width):
  """Per view of a coordinate image (R = x, G = y): area and aspect of the crop, flipped."""
  views = np.asarray(views, np.float64)
  across = views[:, :, -1, 0].mean(1) - views[:, :, 0, 0].mean(1)  # R, right minus left
  down = views[:, -1, :, 1].mean(1) - views[:, 0, :, 1].mean(1)  # G, bottom minus top
  return {'area': np.abs(across * down), 'aspect': np.abs(across) * width / (down * height),
          'flipped': (across < 0).astype(float)}


@needs_original
def test_crop_and_flip_distribution_matches_the_original():
  height, width, size, n = 60, 90, 16, 1500
  x, y = np.meshgrid((np.arange(width) + 0.5) / width, (np.arange(height) + 0.5) / height)
  image = tf.constant(np.stack([x, y, np.full_like(x, 0.5)], -1).astype(np.float32))

  theirs = crop_and_flip_statistics(
      many_views(lambda: ORIGINAL.preprocess_for_train(image, size, size, 0.0), n), height,
      width)
  ours = crop_and_flip_statistics(
      many_views(lambda: augment.preprocess_for_train(image, size, size, color_distort=False),
                 n), height, width)
  for name in ('area', 'aspect'):
    assert ks_distance(theirs[name], ours[name]) < ks_bound(n, n), name
  # The tail of small crops, which the KS distance hardly sees.
  smallest = np.percentile(theirs['area'], 3)
  assert within((ours['area'] < smallest).mean(), 0.03, n)
  assert within(ours['flipped'].mean(), 0.5, n) and within(theirs['flipped'].mean(), 0.5, n)


@needs_original
@pytest.mark.parametrize('impl', ['simclrv2', 'simclrv1'])
def test_distort_color_equals_the_originals_color_jitter_rand(monkeypatch, impl):
  """The original's own `color_jitter_rand` at strength 1, TensorFlow's random draws in
  it replaced by given ones (checking the ranges it asks for): every order, bit for bit."""
  image = overshooting(2)
  distort = traced_distort_color(impl)
  theirs_tf = ORIGINAL.tf
  for factors in factor_sets(impl)[1:]:
    for order in itertools.permutations(range(4)):
      def uniform(shape, lo, hi):  # simclrv2's brightness factor
        assert list(shape) == [] and np.isclose(lo, 0.2) and np.isclose(hi, 1.8)
        return tf.constant(factors['brightness'])

      def given(name, expected, adjust):
        def draw(x, *bounds, **named):
          named.pop('seed', None)
          np.testing.assert_allclose(bounds + tuple(named.values()), expected, err_msg=name)
          return adjust(x, factors[name])
        return draw

      with monkeypatch.context() as patch:
        patch.setattr(theirs_tf.random, 'shuffle', lambda x, **_: tf.constant(order, x.dtype))
        patch.setattr(theirs_tf.random, 'uniform', uniform)
        patch.setattr(theirs_tf.image, 'random_brightness',
                      given('brightness', [0.8], tf.image.adjust_brightness))
        patch.setattr(theirs_tf.image, 'random_contrast',
                      given('contrast', [0.2, 1.8], tf.image.adjust_contrast))
        patch.setattr(theirs_tf.image, 'random_saturation',
                      given('saturation', [0.2, 1.8], tf.image.adjust_saturation))
        patch.setattr(theirs_tf.image, 'random_hue', given('hue', [0.2], tf.image.adjust_hue))
        theirs = ORIGINAL.color_jitter_rand(image, 0.8, 0.8, 0.8, 0.2, impl=impl).numpy()
      draws = dict(factors, order=order)
      ours = distort(image, draws)
      np.testing.assert_array_equal(ours.numpy(), theirs, err_msg=str(draws))


@needs_original
@pytest.mark.parametrize('shape', [(75, 100, 3), (100, 60, 1), (32, 32, 3)])
def test_eval_preprocessing_equals_the_originals_on_uint8_images(shape):
  """Cropping before the float conversion gives the original's numbers, bit for bit."""
  raw = np.random.RandomState(4).randint(0, 256, shape).astype(np.uint8)
  size = 48 if shape[0] > 32 else 32
  ours = augment.preprocess(tf.constant(raw), size, is_training=False, color_distort=False)
  image = tf.constant(np.repeat(raw, 3, -1) if shape[-1] == 1 else raw)
  theirs = ORIGINAL.preprocess_image(image, size, size, is_training=False,
                                     test_crop=size > 32)
  np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
