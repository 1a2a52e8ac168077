"""TFLite conversion of an export: outputs equal the SavedModel's, quantisation, clear errors."""
import numpy as np
import pytest
import tensorflow as tf

from checkpoints import tflite
from tf2 import export
from tf2.config import Config
from tf2.models.model import SimCLRModel


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
  tf.random.set_seed(1)
  config = Config(resnet_depth=18, image_size=32, use_tpu=False, global_bn=False,
                  resnet_base_width=16, train_mode='finetune')
  model = SimCLRModel(config, 5).build_for()
  for v in model.variables:  # Non-trivial BN statistics and logits.
    if 'gamma' in v.path or 'moving_variance' in v.path or 'head_supervised' in v.path:
      v.assign(tf.random.uniform(v.shape, 0.5, 1.5))
    elif 'moving_mean' in v.path or 'beta' in v.path:
      v.assign(tf.random.uniform(v.shape, -0.2, 0.2))
  directory = str(tmp_path_factory.mktemp('run'))
  export.export_saved_model(model, directory, 3)
  return directory


def test_resnet18_outputs_equal_the_saved_model(model_dir, tmp_path):
  dst = str(tmp_path / 'r18.tflite')
  diffs = tflite.main([model_dir, dst])  # A model_dir: its newest export.
  assert tf.io.gfile.exists(dst) and tf.io.gfile.stat(dst).length > 1e6
  assert 'logits_sup' in diffs and 'final_avg_pool' in diffs and 'block_group4' in diffs
  assert max(diffs.values()) < 1e-4, diffs
  # The comparison is not vacuous: the outputs vary across images and features.
  outputs = tf.saved_model.load(model_dir + '/saved_model/3').signatures['serving_default'](
      images=tf.random.uniform([2, 32, 32, 3], seed=0))
  assert float(tf.math.reduce_std(outputs['logits_sup'])) > 1e-2
  assert float(tf.math.reduce_std(outputs['final_avg_pool'])) > 1e-2


def test_float16_halves_the_size_within_1e_2_relative(model_dir):
  full, path = tflite.convert(model_dir)
  half, _ = tflite.convert(model_dir, 'float16')
  assert len(half) < 0.6 * len(full)
  # float16 keeps ~3 significant digits, so its error scales with the output:
  # compare relative to each output's largest value (logits here reach ~10).
  relative = tflite.compare(half, path, relative=True)
  assert max(relative.values()) < 1e-2, relative
  assert max(tflite.compare(full, path, relative=True).values()) < 1e-5


def test_sources_without_the_signature_are_refused(tmp_path):
  with pytest.raises(tflite.TFLiteError, match='neither a SavedModel'):
    tflite.convert(str(tmp_path))
  plain = tf.Module()
  plain.f = tf.function(lambda x: x * 2, input_signature=[tf.TensorSpec([None], tf.float32)])
  tf.saved_model.save(plain, str(tmp_path / 'plain'), signatures={})
  with pytest.raises(tflite.TFLiteError, match='checkpoints.convert'):
    tflite.convert(str(tmp_path / 'plain'))
  with pytest.raises(tflite.TFLiteError, match='quantize'):
    tflite.convert(str(tmp_path / 'plain'), 'int4')
