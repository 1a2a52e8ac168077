"""SimCLR data augmentation (paper appendix A; the original `data_util.py` policy).

Training views: random resized crop (area 8%-100%, `--crop_min_area`; aspect
ratio 3/4-4/3, bicubic resize), horizontal flip, then (pretraining only) colour distortion
of strength s: with probability 0.8 brightness 0.8s, contrast 0.8s,
saturation 0.8s and hue 0.2s in random order, each result clipped to [0, 1],
then grayscale with probability 0.2. Brightness is multiplicative
(`simclrv2`, factor in [max(0, 1 - 0.8s), 1 + 0.8s]) or additive
(`simclrv1`). Gaussian blur is applied batched on the accelerator by the
model (`tf2/data/blur.py`).

Evaluation: a centre crop keeping 87.5% of the shorter side at the target
aspect ratio, bicubic resize; no crop for images of 32 px or less.

The same functions as the original's, computed with less work: an image
becomes 3-channel (`to_rgb`) in its own dtype, is cropped there, and only the
crop is converted to float32 in [0, 1] (the original converts the whole
image first, to the same values). The colour distortion's draws are
`color.sample_jitter`'s, which the per-batch colour distortion on the
accelerator (`--color_jitter_on_device`, `tf2/data/color.py`) makes too.
"""
import functools

import tensorflow as tf

from tf2.data import color


CROP_PROPORTION = 0.875
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)


def to_rgb(image):
  """Any decoded image (1, 2, 3 or 4 channels) -> 3 channels, in its own dtype."""
  channels = image.shape[-1]
  if channels == 1:
    image = tf.tile(image, [1, 1, 3])
  elif channels == 2:  # gray + alpha
    image = tf.tile(image[..., :1], [1, 1, 3])
  elif channels == 4:  # RGBA: drop alpha
    image = image[..., :3]
  elif channels is None:
    image = tf.cond(tf.shape(image)[-1] < 3,
                    lambda: tf.tile(image[..., :1], [1, 1, 3]),
                    lambda: image[..., :3])
  image.set_shape([None, None, 3])
  return image


def to_float(image):
  """uint8/uint16/float -> float32 in [0, 1]."""
  return tf.image.convert_image_dtype(image, tf.float32)


def to_float_rgb(image):
  """Any decoded image (uint8/uint16/float; 1, 2, 3 or 4 channels) -> float32 RGB [0, 1]."""
  return to_float(to_rgb(image))


def sample_crop_box(image_shape, aspect_ratio=1.0, min_area=AREA_RANGE[0]):
  """(offset [y, x], size [h, w]) of a random crop: area `min_area` (8%)-100%, aspect
  3/4-4/3."""
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
  begin, size, _ = tf.image.sample_distorted_bounding_box(
      image_shape, bounding_boxes=bbox, min_object_covered=0.1,
      aspect_ratio_range=(ASPECT_RATIO_RANGE[0] * aspect_ratio,
                          ASPECT_RATIO_RANGE[1] * aspect_ratio),
      area_range=(min_area, AREA_RANGE[1]), max_attempts=100, use_image_if_no_bounding_boxes=True)
  return begin[:2], size[:2]


def random_crop_with_resize(image, height, width, min_area=AREA_RANGE[0]):
  """A random crop (any dtype), converted to float and resized bicubically."""
  offset, size = sample_crop_box(tf.shape(image), width / height, min_area)
  image = tf.image.crop_to_bounding_box(image, offset[0], offset[1], size[0], size[1])
  return tf.image.resize(to_float(image), [height, width], method='bicubic')


def to_grayscale(image):
  return tf.tile(tf.image.rgb_to_grayscale(image), [1, 1, 3])


def distort_color(image, draws, impl='simclrv2'):
  """Brightness, contrast, saturation and hue with `draws` (`color.sample_jitter`'s, of
  one image) in `draws['order']`, each result clipped to [0, 1]: the original's
  `color_jitter_rand` with tf.image's kernels, for strengths in (0, 1.25] (the
  original skips a transform of strength 0 and refuses strengths above 1.25)."""
  transforms = (
      lambda x: color.brightness(x[tf.newaxis], draws['brightness'], impl)[0],
      lambda x: tf.image.adjust_contrast(x, draws['contrast']),
      lambda x: tf.image.adjust_saturation(x, draws['saturation']),
      lambda x: tf.image.adjust_hue(x, draws['hue']))
  for position in range(4):
    image = tf.switch_case(draws['order'][position],
                           [functools.partial(t, image) for t in transforms])
    image = tf.clip_by_value(image, 0.0, 1.0)
  return image


def random_color_jitter(image, strength, impl='simclrv2'):
  """`distort_color` with probability 0.8, then grayscale with probability 0.2; the draws
  are those the per-batch version on the accelerator makes (`color.sample_jitter`)."""
  draws = {name: value[0] for name, value in color.sample_jitter(1, strength, impl).items()}
  image = tf.cond(draws['jitter'], lambda: distort_color(image, draws, impl), lambda: image)
  return tf.cond(draws['grayscale'], lambda: to_grayscale(image), lambda: image)


def center_crop(image, height, width, crop_proportion=CROP_PROPORTION):
  """Centre crop keeping `crop_proportion` of the image at the target aspect (any dtype),
  converted to float; bicubic resize."""
  shape = tf.shape(image)
  image_h = tf.cast(shape[0], tf.float32)
  image_w = tf.cast(shape[1], tf.float32)
  aspect = width / height

  def wider_request():  # target wider than the image: limited by width
    return (tf.cast(tf.math.rint(crop_proportion / aspect * image_w), tf.int32),
            tf.cast(tf.math.rint(crop_proportion * image_w), tf.int32))

  def taller_request():  # limited by height
    return (tf.cast(tf.math.rint(crop_proportion * image_h), tf.int32),
            tf.cast(tf.math.rint(crop_proportion * aspect * image_h), tf.int32))

  crop_h, crop_w = tf.cond(aspect > image_w / image_h, wider_request, taller_request)
  offset_h = (shape[0] - crop_h + 1) // 2
  offset_w = (shape[1] - crop_w + 1) // 2
  image = tf.image.crop_to_bounding_box(image, offset_h, offset_w, crop_h, crop_w)
  return tf.image.resize(to_float(image), [height, width], method='bicubic')


def preprocess_for_train(image, height, width, color_distort=True, strength=1.0,
                         impl='simclrv2', crop=True, flip=True, finish=True,
                         crop_min_area=AREA_RANGE[0]):
  """One training view of an RGB image of any dtype, float32.

  `finish=False` stops before the colour distortion and the final clip, which
  `color.batch_random_color_jitter` then applies on the accelerator.
  """
  image = (random_crop_with_resize(image, height, width, crop_min_area) if crop
           else to_float(image))
  if flip:
    image = tf.image.random_flip_left_right(image)
  if color_distort and finish:
    image = random_color_jitter(image, strength, impl)
  image = tf.reshape(image, [height, width, 3])
  return tf.clip_by_value(image, 0.0, 1.0) if finish else image


def preprocess_for_eval(image, height, width, crop=True):
  """Centre crop + resize; without crop, images of another size are resized."""
  if crop:
    image = center_crop(image, height, width)
  else:
    image = to_float(image)
    shape = tf.shape(image)
    image = tf.cond(tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width)),
                    lambda: image,
                    lambda: tf.image.resize(image, [height, width], method='bicubic'))
  image = tf.reshape(image, [height, width, 3])
  return tf.clip_by_value(image, 0.0, 1.0)


def preprocess(image, image_size, is_training, color_distort, strength=1.0,
               impl='simclrv2', crop_min_area=AREA_RANGE[0]):
  """The original's `preprocess_image` for a decoded image of any dtype/channels.

  Test-time cropping is off for images of 32 px or less (CIFAR).
  """
  image = to_rgb(image)
  if is_training:
    return preprocess_for_train(image, image_size, image_size, color_distort, strength, impl,
                                crop_min_area=crop_min_area)
  return preprocess_for_eval(image, image_size, image_size, crop=image_size > 32)


def pretrain_views(image, image_size, strength=1.0, impl='simclrv2', views=2,
                   color_on_device=False, crop_min_area=AREA_RANGE[0]):
  """`views` independent augmentations stacked on the channel axis: [H, W, 3 * views].

  Strength 0 skips colour distortion altogether, random grayscale included
  (the original's `preprocess_for_train` tests `color_jitter_strength > 0`).
  `color_on_device`: crop, resize and flip only, unclipped; the model applies
  the colour distortion and the clip per batch (`--color_jitter_on_device`).
  """
  image = to_rgb(image)
  return tf.concat([preprocess_for_train(image, image_size, image_size, strength > 0, strength,
                                         impl, finish=not color_on_device,
                                         crop_min_area=crop_min_area)
                    for _ in range(views)], -1)
