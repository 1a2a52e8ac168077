"""SimCLR's colour distortion per batch on the accelerator, each image its own draw.

`--color_jitter_on_device` moves the colour distortion out of the input
pipeline, as the original moved the blur: at 224 px it is a large share of
a view's host CPU time (docs/performance.md#input-pipeline-at-224-px), work
that elementwise hardware does in bulk. The distribution is the input
pipeline's (`augment.random_color_jitter`): per image, with probability 0.8,
brightness, contrast, saturation and hue in a random order of its own, each
factor drawn from the same range and each result clipped to [0, 1]; then
grayscale with probability 0.2; then the clip.

tf.image's adjust_* take one factor for a whole batch, so the four
transforms are written here as elementwise ops with a factor per image.
With M and m a pixel's largest and smallest channel and C = M - m:
- brightness: c * f (`simclrv2`) or c + f (`simclrv1`);
- contrast: (c - mean) * f + mean, the mean per image and channel;
- saturation: HSV's s = C / M scaled by f and capped at 1 keeps M and the
  hue, so c' = M - (M - c) * min(f, M / C)   (c' = c where C = 0);
- hue, rotated by f turns, keeps M and C: with the hue in sextants,
  h6 = (g - b) / C, (b - r) / C + 2 or (r - g) / C + 4 where r, g or b is M,
  c_n = M - C * clip(min(k, 4 - k), 0, 1),  k = (h6 + 6 f + n) mod 6,
  n = 5, 3, 1 for R, G, B;
- grayscale: 0.2989 R + 0.5870 G + 0.1140 B on every channel.
tests/test_color.py holds each against tf.image per image. A position in
the random order picks its transform per image among the four computed
(`tf.where`): 4x the arithmetic, but static shapes, and XLA fuses the passes
(`compiled=True`), which unfused would each cross the whole batch in memory.
"""
import tensorflow as tf

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale's
JITTER_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2


def _per_image(factor):
  return tf.reshape(factor, [-1, 1, 1, 1])


def _max_min(images):
  r, g, b = images[..., 0:1], images[..., 1:2], images[..., 2:3]
  return tf.maximum(tf.maximum(r, g), b), tf.minimum(tf.minimum(r, g), b)


def brightness(images, factor, impl='simclrv2'):
  if impl == 'simclrv2':
    return images * _per_image(factor)
  if impl == 'simclrv1':
    return images + _per_image(factor)
  raise ValueError(f'Unknown colour jitter implementation {impl!r}.')


def contrast(images, factor):
  mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  return (images - mean) * _per_image(factor) + mean


def saturation(images, factor):
  high, low = _max_min(images)
  scale = tf.minimum(_per_image(factor), tf.math.divide_no_nan(high, high - low))
  return high - (high - images) * scale


def hue(images, delta):
  r, g, b = images[..., 0:1], images[..., 1:2], images[..., 2:3]
  high, low = _max_min(images)
  chroma = high - low
  inverse = tf.math.divide_no_nan(tf.ones_like(chroma), chroma)
  sextant = tf.where(high == r, (g - b) * inverse,
                     tf.where(high == g, (b - r) * inverse + 2.0, (r - g) * inverse + 4.0))
  sextant += 6.0 * _per_image(delta)
  k = sextant + tf.constant([5.0, 3.0, 1.0], images.dtype)
  k -= 6.0 * tf.floor(k / 6.0)  # mod 6 (floormod is far slower on CPUs)
  return high - chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)


def grayscale(images):
  weights = tf.constant(GRAY_WEIGHTS, images.dtype)
  return tf.reduce_sum(images * weights, axis=-1, keepdims=True) * tf.ones_like(images)


def sample_jitter(batch, strength, impl='simclrv2', dtype=tf.float32):
  """Per-image draws: factors of the four transforms, their order, and the two coins.

  The ranges are tf.image's random_brightness/contrast/saturation/hue's for
  the original's strengths; `order` [batch, 4] holds a uniform random
  permutation of (brightness, contrast, saturation, hue) per image.
  """
  amount = 0.8 * strength
  low = max(1.0 - amount, 0.0) if impl == 'simclrv2' else -amount
  high = 1.0 + amount if impl == 'simclrv2' else amount
  uniform = lambda lo, hi: tf.random.uniform([batch], lo, hi, dtype=dtype)
  return {
      'brightness': uniform(low, high),
      'contrast': uniform(1.0 - amount, 1.0 + amount),
      'saturation': uniform(1.0 - amount, 1.0 + amount),
      'hue': uniform(-0.2 * strength, 0.2 * strength),
      'order': tf.argsort(tf.random.uniform([batch, 4]), axis=1, stable=True),
      'jitter': tf.random.uniform([batch]) < JITTER_PROBABILITY,
      'grayscale': tf.random.uniform([batch]) < GRAYSCALE_PROBABILITY,
  }


def apply_jitter(images, draws, impl='simclrv2'):
  """The colour distortion of `sample_jitter`'s draws, then the final clip."""
  jittered = images
  for position in range(4):
    candidates = (brightness(jittered, draws['brightness'], impl),
                  contrast(jittered, draws['contrast']),
                  saturation(jittered, draws['saturation']),
                  hue(jittered, draws['hue']))
    which = _per_image(draws['order'][:, position])
    picked = candidates[3]
    for index in (2, 1, 0):
      picked = tf.where(which == index, candidates[index], picked)
    jittered = tf.clip_by_value(picked, 0.0, 1.0)
  images = tf.where(_per_image(draws['jitter']), jittered, images)
  images = tf.where(_per_image(draws['grayscale']), grayscale(images), images)
  return tf.clip_by_value(images, 0.0, 1.0)


_COMPILED = {impl: tf.function(lambda images, draws, impl=impl: apply_jitter(images, draws, impl),
                               jit_compile=True)
             for impl in ('simclrv2', 'simclrv1')}


def batch_random_color_jitter(images, strength, impl='simclrv2', compiled=True):
  """[N, H, W, 3] views, each distorted with its own draw (strength 0: only clipped).

  `compiled`: `apply_jitter` through XLA, which fuses its elementwise passes
  into a few loops; the draws are made outside, with TensorFlow's random ops.
  """
  if strength <= 0:
    return tf.clip_by_value(images, 0.0, 1.0)
  draws = sample_jitter(tf.shape(images)[0], strength, impl, images.dtype)
  return (_COMPILED[impl] if compiled else apply_jitter)(images, draws)
