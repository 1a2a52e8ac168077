"""RandBits: bits fixed per image, appended as constant channels the augmentations leave."""
import numpy as np
import pytest
import tensorflow as tf

from tf2 import export
from tf2.config import Config
from tf2.data import augment, input_pipeline, randbits
from tf2.data.datasets import array_source
from tf2.data.device_augment import DeviceAugment
from tf2.models.model import SimCLRModel

BITS = 12


def digest_bits(image, bits):
  """The bits as this test reads them: the binary digits of the hash bucket, in Python."""
  bucket = int(tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(image), 2 ** bits))
  return np.array([(bucket >> j) & 1 for j in range(bits)], np.float32)


def test_bits_are_the_binary_digits_of_a_hash_of_the_pixels():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
  got = np.stack([randbits.image_bits(tf.constant(image), BITS).numpy() for image in images])
  want = np.stack([digest_bits(tf.constant(image), BITS) for image in images])
  np.testing.assert_array_equal(got, want)
  # The same pixels, the same bits; one pixel changed, other bits (for almost every image).
  np.testing.assert_array_equal(randbits.image_bits(tf.constant(images[0]), BITS), got[0])
  changed = images.copy()
  changed[:, 0, 0, 0] ^= 1
  other = np.stack([randbits.image_bits(tf.constant(image), BITS).numpy() for image in changed])
  assert (other != got).any(axis=1).mean() > 0.99
  # Uniform and unrelated to the content: every bit is set in about half of the images.
  assert np.all(np.abs(got.mean(0) - 0.5) < 0.1), got.mean(0)


def test_append_bits_follows_each_view_with_its_constant_planes():
  rng = np.random.default_rng(1)
  stacked = rng.random((5, 4, 6)).astype(np.float32)
  bits = np.array([1, 0, 1], np.float32)
  out = randbits.append_bits(tf.constant(stacked), tf.constant(bits), 2).numpy()
  planes = np.broadcast_to(bits, (5, 4, 3))
  want = np.concatenate([stacked[..., :3], planes, stacked[..., 3:], planes], -1)
  np.testing.assert_array_equal(out, want)


def config(**fields):
  base = dict(image_size=16, randbits=BITS, train_batch_size=8, color_jitter_strength=1.0,
              use_blur=True, use_tpu=False)
  base.update(fields)
  return Config(**base).validate()


def image_of(seed, size=20):
  return tf.constant(np.random.default_rng(seed).integers(0, 256, (size, size, 1), np.uint8))


@pytest.mark.parametrize('is_training', [True, False])
def test_every_view_carries_the_bits_of_its_image_untouched_by_the_colour_distortion(
    is_training):
  cfg = config()
  preprocess = input_pipeline.preprocess_fn(cfg, is_training)
  views = 2 if is_training else 1
  for seed in range(4):
    image = image_of(seed)
    want = digest_bits(augment.to_rgb(image), BITS)
    out = preprocess(image).numpy()
    assert out.shape == (16, 16, views * (3 + BITS))
    for view in np.split(out, views, axis=-1):
      np.testing.assert_array_equal(view[..., 3:], np.broadcast_to(want, (16, 16, BITS)))


def test_the_device_augmentations_leave_the_bit_channels_and_change_the_rgb_ones():
  cfg = config(color_jitter_on_device=True)
  rng = np.random.default_rng(2)
  rgb = rng.random((6, 16, 16, 3)).astype(np.float32)
  bits = rng.integers(0, 2, (6, 1, 1, BITS)).astype(np.float32) * np.ones((1, 16, 16, 1))
  batch = np.concatenate([rgb[:3], bits[:3], rgb[3:], bits[3:]], -1)  # 3 images, 2 views
  batch = np.concatenate([batch, batch], 0)
  out = DeviceAugment(cfg)(tf.constant(batch, tf.float32)).numpy()
  width = 3 + BITS
  for v in range(2):
    view_in, view_out = batch[..., v * width:(v + 1) * width], out[..., v * width:(v + 1) * width]
    np.testing.assert_array_equal(view_out[..., 3:], view_in[..., 3:])
    assert np.abs(view_out[..., :3] - view_in[..., :3]).mean() > 1e-3


def test_the_export_appends_the_bits_as_the_pipeline_does(tmp_path):
  """serving_bytes of an encoded digit equals the module on the pipeline's eval input."""
  cfg = config(encoder='convnet', image_size=28, global_bn=False)
  model = SimCLRModel(cfg, 10).build_for()
  path = export.export_saved_model(model, str(tmp_path), 1)
  module = tf.saved_model.load(path)
  digits = np.random.default_rng(3).integers(0, 256, (3, 28, 28, 1), np.uint8)
  source = array_source('digits', {'test': (digits, np.zeros(3, np.int64))}, 10)
  inputs, _ = next(iter(input_pipeline.make_input_fn(
      source, cfg, is_training=False, split='test', global_batch_size=3)()))
  assert inputs.shape == (3, 28, 28, 3 + BITS)
  encoded = tf.stack([tf.io.encode_png(np.repeat(d, 3, -1)) for d in digits])
  served = module.signatures['serving_bytes'](image_bytes=encoded)['proj_head_input'].numpy()
  direct = module(inputs, trainable=False)['proj_head_input'].numpy()
  live = model(inputs, training=False)['proj_head_input'].numpy()
  np.testing.assert_allclose(direct, live, atol=1e-5)
  np.testing.assert_allclose(served, direct, atol=1e-5)
  # The bits matter to the features: other bits, other features.
  flipped = inputs.numpy()
  flipped[..., 3:] = 1 - flipped[..., 3:]
  assert np.abs(module(flipped, trainable=False)['proj_head_input'].numpy() - direct).max() > 1e-3


def test_a_teacher_trained_on_other_bits_is_refused_before_any_model_is_built(tmp_path):
  from tf2 import preflight  # pylint: disable=g-import-not-at-top
  from tf2.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from tf2.evaluation import results  # pylint: disable=g-import-not-at-top
  results.write_flags(Config(randbits=3, train_mode='finetune', use_tpu=False), str(tmp_path))
  student = Config(train_mode='distill', teacher_checkpoint=str(tmp_path), use_tpu=False)
  with pytest.raises(ConfigError, match='--randbits=3.*set the same --randbits'):
    preflight.check_teacher(student, source=None)
