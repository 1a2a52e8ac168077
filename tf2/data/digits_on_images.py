"""Digits on images: MNIST digits tiled onto natural images, with two labels.

The DigitOnImageNet data of "Intriguing Properties of Contrastive Losses"
(section 4, Fig. 4b; the original's `digits_on_tf_flowers.ipynb`), on any
dataset (`--digits_on_images=N`): every example read gets one digit, drawn
at random from the first N digits of `--digits_dataset`'s train split, tiled
3 x 3 onto the image by pixel-wise maximum. The digit is drawn when the
example is read, before the views are made, so both views show the same
one. The example's label is the object's or the digit's (`--digits_label`).

Sizes: the notebook puts 28-px digits on 224-px images at offsets of 15%,
45% and 75% of the side. Here a digit is `digit_size(side)` px, 1/8 of the
side as in the notebook but at least a third of it up to 28 px, so that it
stays legible on small images (10 px on CIFAR's 32), at the same offsets,
moved in where a digit would cross the edge (at 32 px: 4, 14 and 22).
At 224 px this is the notebook's composition.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tf2.data import augment
from tf2.errors import DatasetError

OFFSETS = (0.15, 0.45, 0.75)
LABELS = ('object', 'digit')


def digit_size(side):
  """The digit's side in px on an image of `side` px (28 at 224, 10 at 32)."""
  return max(int(round(side / 8)), min(28, side // 3))


def offsets(side):
  """Where the 3 x 3 digits start along a side of `side` px."""
  size = digit_size(side)
  return [min(int(side * ratio), side - size) for ratio in OFFSETS]


def composite(image, digit):
  """`image` (uint8, [H, W, 1-4], H = W) made RGB, with `digit` (uint8 [h, w, 1]) resized to
  `digit_size(H)` and tiled 3 x 3 on it by pixel-wise maximum."""
  side = image.shape[0]
  if side is None or image.shape[1] != side or image.dtype != tf.uint8:
    raise DatasetError(
        f'--digits_on_images needs 8-bit square images of one size known in advance (TFDS '
        f'datasets such as cifar10 or mnist); got {image.dtype.name} images of shape '
        f'{image.shape}.')
  image = augment.to_rgb(image)
  size = digit_size(side)
  digit = tf.image.resize(tf.image.grayscale_to_rgb(digit), [size, size], antialias=True)
  digit = tf.cast(tf.clip_by_value(tf.round(digit), 0, 255), tf.uint8)
  layers = [image]
  for top in offsets(side):
    for left in offsets(side):
      layers.append(tf.pad(digit, [[top, side - size - top], [left, side - size - left],
                                   [0, 0]]))
  return tf.reduce_max(tf.stack(layers), 0)


def wrap(source, digits, digit_labels, unique, label='object'):
  """`source` with a digit from `digits[:unique]` (uint8 [N, h, w, 1]) composited onto every
  image read, and the object's or the digit's label."""
  if label not in LABELS:
    raise DatasetError(f'--digits_label={label!r} is not one of {list(LABELS)}.')
  if not 1 <= unique <= len(digits):
    raise DatasetError(f'--digits_on_images={unique}: the digits dataset has {len(digits)} '
                       f'train digits; use 1 to {len(digits)}.')
  chosen = tf.constant(digits[:unique])
  chosen_labels = tf.constant(np.asarray(digit_labels[:unique], np.int64))

  def add_digit(image, object_label):
    index = tf.random.uniform([], 0, unique, tf.int32)
    image = composite(image, chosen[index])
    return image, object_label if label == 'object' else chosen_labels[index]

  def reader(split, input_context=None, shuffle_files=False, keep=None):
    return source.read(split, input_context, shuffle_files, keep).map(
        add_digit, num_parallel_calls=tf.data.AUTOTUNE)

  num_classes = source.num_classes if label == 'object' else 10
  return dataclasses.replace(
      source, name=f'{source.name} with digits', num_classes=num_classes, reader=reader,
      split_labels=source.split_labels if label == 'object' else None)
