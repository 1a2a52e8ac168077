"""The device augmentations: the train step's first stage, on stacked views."""
import numpy as np
import tensorflow as tf

from tf2.config import Config
from tf2.data import color
from tf2.data.device_augment import DeviceAugment
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer
from tf2.training.train_step import TrainStep
from tf2.views import split_views

CFG = Config(resnet_depth=18, image_size=8, use_blur=False, global_bn=False,
             train_batch_size=4).validate()


class RecordingModel(SimCLRModel):
  """A SimCLRModel that keeps the projections of its training-mode calls (run eagerly)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.seen = []

  def call(self, inputs, training=False, return_endpoints=False):
    outputs = super().call(inputs, training=training, return_endpoints=return_endpoints)
    if training:
      self.seen.append(outputs['proj_head_output'].numpy())
    return outputs


def test_device_colour_distortion_runs_when_training_a_pretraining_model():
  """--color_jitter_on_device: `DeviceAugment` distorts every view with its own draw (under
  one seed, `batch_random_color_jitter` of the split views), and the train step feeds the
  model exactly it; fine-tuning does not augment on the device."""
  cfg = CFG.replace(color_jitter_on_device=True, use_blur=False)
  augment = DeviceAugment(cfg)
  model = RecordingModel(cfg, 3).build_for()
  x = tf.random.stateless_uniform([4, 8, 8, 6], [1, 2], -0.05, 1.05)
  strategy = tf.distribute.get_strategy()
  step = TrainStep(cfg, model, build_optimizer(cfg, 0.1), strategy)
  step.build_optimizer_state()
  try:
    tf.random.set_seed(7)
    got = augment(x).numpy()
    tf.random.set_seed(7)
    want = color.batch_random_color_jitter(split_views(x), cfg.color_jitter_strength).numpy()
    given = model(tf.constant(got), training=True)
    plain = model(x, training=True)['proj_head_output'].numpy()
    model.seen.clear()
    tf.random.set_seed(7)
    strategy.run(step.replica_step, (x, tf.zeros([4], tf.int64)))  # Eager: one model call.
    trained = model.seen[0]
  finally:
    tf.random.set_seed(None)
  np.testing.assert_array_equal(got, np.concatenate([want[:4], want[4:]], -1))
  assert not np.allclose(got, np.clip(x.numpy(), 0, 1), atol=0.05)
  np.testing.assert_allclose(trained, given['proj_head_output'].numpy(), rtol=1e-5, atol=1e-6)
  assert not np.allclose(trained, plain, atol=1e-4)
  assert augment.enabled
  assert not DeviceAugment(cfg.replace(train_mode='finetune')).enabled


def test_without_device_augmentations_the_batch_is_unchanged():
  x = tf.random.stateless_uniform([2, 8, 8, 6], [3, 4])
  augment = DeviceAugment(CFG.replace(use_blur=False, color_jitter_on_device=False))
  assert not augment.enabled
  assert augment(x) is x
