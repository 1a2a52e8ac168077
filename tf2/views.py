"""The input layout: the views of each image stacked on the channel axis.

As in the original, a batch of B images with k views each is `[B, H, W, 3k]`
(2 views when pretraining, 1 otherwise): the input pipeline emits it, the
device augmentation distorts it, and the model splits it into a `[k * B, H,
W, 3]` batch (view-major: all first views, then all second views), so that
BatchNorm sees every view together. With `--randbits` a view has 3 + bits
channels (RGB first).
"""
import tensorflow as tf


def split_views(images, channels=3):
  """[B, H, W, c k] -> [k * B, H, W, c] (all first views, then all second views...), for
  views of `channels` channels c (3, or 3 + the --randbits channels)."""
  total = images.shape[-1]
  if total is None or total % channels:
    raise ValueError(f'The input channel dimension must be static and a multiple of '
                     f'{channels} (views of {channels} channels stacked on channels); got '
                     f'input shape {images.shape}.')
  return tf.concat(tf.split(images, total // channels, axis=-1), 0)


def stack_views(features, views):
  """[k * B, H, W, c] -> [B, H, W, c k]: the inverse of `split_views`."""
  return tf.concat(tf.split(features, views, axis=0), -1)
