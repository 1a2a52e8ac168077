"""The input layout: the views of each image stacked on the channel axis.

As in the original, a batch of B images with k views each is `[B, H, W, 3k]`
(2 views when pretraining, 1 otherwise): the input pipeline emits it, the
device augmentation distorts it, and the model splits it into a `[k * B, H,
W, 3]` batch (view-major: all first views, then all second views), so that
BatchNorm sees every view together.
"""
import tensorflow as tf


def split_views(images):
  """[B, H, W, 3k] -> [k * B, H, W, 3] (all first views, then all second views...)."""
  channels = images.shape[-1]
  if channels is None or channels % 3:
    raise ValueError('The input channel dimension must be static and a multiple of 3 '
                     f'(views stacked on channels); got input shape {images.shape}.')
  return tf.concat(tf.split(images, channels // 3, axis=-1), 0)


def stack_views(features, views):
  """[k * B, H, W, 3] -> [B, H, W, 3k]: the inverse of `split_views`."""
  return tf.concat(tf.split(features, views, axis=0), -1)
