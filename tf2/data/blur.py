"""Gaussian blur (SimCLR appendix A) of a batch on the accelerator, a sigma per image.

The kernel follows the original: `kernel_size = image_size // 10`, radius
`kernel_size // 2`, taps `2 * radius + 1`, weights exp(-x^2 / (2 sigma^2))
normalised to sum 1, applied separably (horizontal then vertical) with zero
SAME padding.

`batch_random_blur` blurs each image of a batch with probability 0.5 and its
own sigma ~ U[0.1, 2.0] (the original draws one sigma per batch; the paper
describes per-image blur). Per-image kernels are one depthwise convolution:
the batch is moved into the channel axis, so every (image, channel) pair gets
its own filter, with static shapes for XLA/TPU.
"""
import tensorflow as tf

SIGMA_RANGE = (0.1, 2.0)


def kernel_radius(image_size):
  return int(image_size // 10) // 2


def gaussian_weights(sigma, radius):
  """[..., 2r+1] normalised Gaussian taps for sigma of shape [...]."""
  x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
  sigma = tf.cast(sigma, tf.float32)[..., None]
  w = tf.exp(-tf.square(x) / (2.0 * tf.square(sigma)))
  return w / tf.reduce_sum(w, -1, keepdims=True)


def _separable_depthwise(images, taps):
  """images [N, H, W, C]; taps [C, k]: a different 1-D kernel per channel."""
  channels, k = taps.shape[0], taps.shape[1]
  taps = tf.cast(tf.transpose(taps), images.dtype)  # [k, C]
  horizontal = tf.reshape(taps, [1, k, channels, 1])
  vertical = tf.reshape(taps, [k, 1, channels, 1])
  x = tf.nn.depthwise_conv2d(images, horizontal, [1, 1, 1, 1], 'SAME')
  return tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], 'SAME')


def gaussian_blur(image, kernel_size, sigma):
  """Blurs one [H, W, C] image (or every image of a batch) with one sigma.

  `kernel_size` is the original's argument (image_size // 10); the filter has
  2 * (kernel_size // 2) + 1 taps.
  """
  radius = int(kernel_size) // 2
  if radius == 0:
    return image
  batched = image.shape.rank == 4
  x = image if batched else image[None]
  taps = tf.tile(gaussian_weights(sigma, radius)[None], [x.shape[-1], 1])
  x = _separable_depthwise(x, taps)
  return x if batched else x[0]


def batch_blur(images, sigmas, image_size):
  """Blurs image b of [B, H, W, C] with its own sigmas[b] (one depthwise conv)."""
  radius = kernel_radius(image_size)
  if radius == 0:
    return images
  batch, height, width, channels = images.shape
  if batch is None:
    raise ValueError('batch_blur needs a static batch size (XLA/TPU friendly).')
  x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, batch * channels])
  taps = tf.repeat(gaussian_weights(sigmas, radius), channels, axis=0)  # [B*C, k]
  x = _separable_depthwise(x, taps)
  return tf.transpose(tf.reshape(x, [height, width, batch, channels]), [2, 0, 1, 3])


def batch_random_blur(images, image_size, blur_probability=0.5):
  """Blurs each image with probability `blur_probability`; clips to [0, 1]."""
  batch = images.shape[0]
  sigmas = tf.random.uniform([batch], *SIGMA_RANGE)
  blurred = batch_blur(images, sigmas, image_size)
  selector = tf.cast(tf.random.uniform([batch, 1, 1, 1]) < blur_probability, images.dtype)
  return tf.clip_by_value(blurred * selector + images * (1 - selector), 0.0, 1.0)
