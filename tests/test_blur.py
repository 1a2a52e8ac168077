"""Gaussian blur: numpy separable convolution, per-image sigmas, probability."""
import numpy as np
import tensorflow as tf

from tf2.data import blur


def numpy_blur(image, sigma, radius):
  x = np.arange(-radius, radius + 1)
  w = np.exp(-x ** 2 / (2 * sigma ** 2))
  w /= w.sum()
  h, wd, c = image.shape
  padded = np.pad(image, [(radius, radius), (radius, radius), (0, 0)])
  horizontal = sum(w[k] * padded[:, k:k + wd] for k in range(2 * radius + 1))
  return sum(w[k] * horizontal[k:k + h] for k in range(2 * radius + 1))[:, :, :c]


def test_kernel_size_follows_original():
  assert blur.kernel_radius(32) == 1 and blur.kernel_radius(224) == 11
  w = blur.gaussian_weights(tf.constant(1.0), 3).numpy()
  assert w.shape == (7,) and abs(w.sum() - 1) < 1e-6 and w[3] == w.max()


def test_single_image_blur_matches_numpy(rng):
  image = rng.rand(20, 17, 3).astype(np.float32)
  got = blur.gaussian_blur(tf.constant(image), kernel_size=6, sigma=1.3).numpy()
  np.testing.assert_allclose(got, numpy_blur(image, 1.3, 3), atol=1e-5)


def test_batch_blur_uses_each_images_sigma(rng):
  images = rng.rand(5, 30, 30, 3).astype(np.float32)
  sigmas = np.array([0.1, 0.5, 1.0, 1.5, 2.0], np.float32)
  got = blur.batch_blur(tf.constant(images), tf.constant(sigmas), image_size=30).numpy()
  for b in range(5):
    np.testing.assert_allclose(got[b], numpy_blur(images[b], sigmas[b], 1), atol=1e-5)


def test_batch_random_blur_rate_and_range(rng):
  tf.random.set_seed(5)
  images = tf.constant(rng.rand(800, 20, 20, 3).astype(np.float32))
  out = blur.batch_random_blur(images, image_size=20).numpy()
  changed = np.abs(out - images.numpy()).reshape(800, -1).max(1) > 1e-6
  # A blur changes some pixel by more than 1e-6 only if the neighbour weight
  # exp(-1 / (2 sigma^2)) exceeds ~1e-6, i.e. sigma > 0.19: blurs with a smaller
  # sigma (drawn from U[0.1, 2.0]) are invisible.
  visible_sigma = np.sqrt(1.0 / (2.0 * np.log(1e6)))
  low, high = blur.SIGMA_RANGE
  expected = 0.5 * (high - visible_sigma) / (high - low)
  assert abs(changed.mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / 800)
  assert out.min() >= 0 and out.max() <= 1
