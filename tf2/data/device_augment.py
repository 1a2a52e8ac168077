"""Pretraining's augmentations on the accelerator, the first stage of the train step.

Two of SimCLR's augmentations can run per batch on the device, each image
with its own draw: the colour distortion (`--color_jitter_on_device`,
`tf2/data/color.py`) and then the Gaussian blur (`--use_blur`,
`tf2/data/blur.py`; the original blurs on the device too). The train step
applies them once to its batch, before anything else, so every pass over the
batch sees the same views: the online network, the momentum network's keys,
and both passes of the micro-batched step. Fine-tuning and distillation
augment on the host only. Both touch the RGB channels only, never the
`--randbits` channels that follow them.
"""
import tensorflow as tf

from tf2.views import split_views, stack_views
from tf2.data import blur, color


class DeviceAugment:
  """Callable on a batch of stacked views `[B, H, W, c k]`; returns the same layout."""

  def __init__(self, config):
    self.color_jitter = config.color_jitter_on_device
    self.strength = config.color_jitter_strength
    self.impl = config.color_jitter_impl
    self.blur = config.use_blur
    self.image_size = config.image_size
    self.channels = config.view_channels
    self.enabled = config.train_mode == 'pretrain' and (self.blur or self.color_jitter)

  def __call__(self, images):
    """`images` augmented when `enabled`, else unchanged."""
    if not self.enabled:
      return images
    features = split_views(images, self.channels)
    rgb, rest = features[..., :3], features[..., 3:]
    if self.color_jitter:
      rgb = color.batch_random_color_jitter(rgb, self.strength, self.impl)
    if self.blur:
      rgb = blur.batch_random_blur(rgb, self.image_size)
    features = tf.concat([rgb, rest], -1) if self.channels > 3 else rgb
    return stack_views(features, images.shape[-1] // self.channels)
