"""SavedModel export: outputs equal the live model's, fine-tunable, hub.load, retention,
serving signatures read by saved_model_cli, TFSMLayer and hub.KerasLayer."""
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from tf2 import export
from tf2.config import Config
from tf2.models.model import SimCLRModel

CONFIG = Config(resnet_depth=18, image_size=32, use_tpu=False, global_bn=False,
                resnet_base_width=16)
ENDPOINTS = {'initial_conv', 'initial_max_pool', 'block_group1', 'block_group2',
             'block_group3', 'block_group4', 'final_avg_pool', 'logits_sup',
             'proj_head_input', 'proj_head_output'}


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  tf.random.set_seed(3)
  model = SimCLRModel(CONFIG, 10).build_for()
  for v in model.variables:  # Random gammas/statistics so that every variable matters.
    if 'gamma' in v.path or 'moving_variance' in v.path:
      v.assign(tf.random.uniform(v.shape, 0.5, 1.5))
    elif 'moving_mean' in v.path or 'beta' in v.path:
      v.assign(tf.random.uniform(v.shape, -0.2, 0.2))
  directory = str(tmp_path_factory.mktemp('export'))
  path = export.export_saved_model(model, directory, 12)
  return model, directory, path


@pytest.mark.parametrize('loader', [tf.saved_model.load, hub.load])
def test_outputs_equal_the_live_model(exported, loader):
  model, _, path = exported
  module = loader(path)
  images = tf.random.uniform([3, 32, 32, 3], seed=4)
  out = module(images, trainable=False)
  ref = model(images, training=False, return_endpoints=True)
  assert set(out) == ENDPOINTS
  for key in ENDPOINTS:
    assert float(tf.math.reduce_std(ref[key])) > 1e-3, key  # Not a vacuous comparison.
    np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), atol=1e-5, err_msg=key)
  assert len(module.variables) == len(model.variables)
  assert len(module.trainable_variables) == len(model.trainable_variables)


def test_gradients_flow_to_every_trainable_variable(exported):
  _, _, path = exported
  module = hub.load(path)
  images = tf.random.uniform([4, 32, 32, 3], seed=5)
  labels = tf.constant([0, 1, 2, 3])
  with tf.GradientTape() as tape:
    out = module(images, trainable=True)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels, out['logits_sup'])) + tf.reduce_mean(out['proj_head_output'] ** 2)
  grads = tape.gradient(loss, module.trainable_variables)
  # Pretraining model: the supervised head sees a stop-gradient, the encoder
  # learns from the projection; every variable gets a non-zero gradient.
  for grad, variable in zip(grads, module.trainable_variables):
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, variable.name


def test_training_mode_uses_batch_statistics(exported):
  model, _, path = exported
  module = tf.saved_model.load(path)
  images = tf.random.uniform([4, 32, 32, 3], seed=6)
  moving = [v.numpy() for v in module.variables if 'moving_mean' in v.name]
  train_out = module(images, trainable=True)['final_avg_pool']
  eval_out = module(images, trainable=False)['final_avg_pool']
  assert not np.allclose(train_out.numpy(), eval_out.numpy())
  after = [v.numpy() for v in module.variables if 'moving_mean' in v.name]
  assert any(not np.allclose(a, b) for a, b in zip(moving, after))
  del model


def test_serving_default_signature_equals_the_module_call(exported):
  _, _, path = exported
  module = tf.saved_model.load(path)
  assert set(module.signatures) == {export.SERVING_DEFAULT, export.SERVING_BYTES}
  images = tf.random.uniform([2, 40, 48, 3], seed=7)  # Any size is accepted.
  out = module.signatures['serving_default'](images=images)
  ref = module(images, trainable=False)
  assert set(out) == ENDPOINTS
  for key in ENDPOINTS:
    np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), atol=1e-6, err_msg=key)
  assert int(module.image_size()) == CONFIG.image_size


def test_saved_model_cli_lists_the_signature(exported):
  _, _, path = exported
  shown = subprocess.run(
      ['saved_model_cli', 'show', '--dir', path, '--tag_set', 'serve',
       '--signature_def', 'serving_default'], capture_output=True, text=True, check=True).stdout
  assert "inputs['images']" in shown and 'shape: (-1, -1, -1, 3)' in shown
  for key in ENDPOINTS:
    assert f"outputs['{key}']" in shown


def test_bytes_signature_applies_the_eval_preprocessing(exported):
  _, _, path = exported
  module = tf.saved_model.load(path)
  pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  encoded = tf.stack([tf.io.encode_png(p) for p in pixels])
  out = module.signatures['serving_bytes'](image_bytes=encoded)
  ref = module(tf.constant(pixels, tf.float32) / 255.0, trainable=False)  # 32 px: no crop.
  np.testing.assert_allclose(out['final_avg_pool'].numpy(), ref['final_avg_pool'].numpy(),
                             atol=1e-5)


def test_keras3_tfsm_layer_gives_the_module_features(exported):
  _, _, path = exported
  module = tf.saved_model.load(path)
  layer = keras.layers.TFSMLayer(path, call_endpoint='serving_default', trainable=True)
  images = tf.random.uniform([3, 32, 32, 3], seed=8)
  np.testing.assert_allclose(layer(images)['final_avg_pool'].numpy(),
                             module(images, trainable=False)['final_avg_pool'].numpy(), atol=1e-5)
  # Trainable in Keras 3 (BatchNorm in inference mode): every encoder weight gets a gradient.
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(images)['final_avg_pool'] ** 2)
  grads = tape.gradient(loss, layer.trainable_weights)
  nonzero = sum(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
  assert nonzero == len(exported[0].resnet_model.trainable_variables)


def test_hub_keras_layer_under_tf_keras(exported):
  _, _, path = exported
  import tf_keras  # pylint: disable=g-import-not-at-top
  module = tf.saved_model.load(path)
  inputs = tf_keras.Input([32, 32, 3])
  features = hub.KerasLayer(path, signature='serving_default',
                            output_key='final_avg_pool')(inputs)
  classifier = tf_keras.Model(inputs, tf_keras.layers.Dense(3)(features))
  images = tf.random.uniform([3, 32, 32, 3], seed=9)
  np.testing.assert_allclose(tf_keras.Model(inputs, features)(images).numpy(),
                             module(images, trainable=False)['final_avg_pool'].numpy(), atol=1e-5)
  assert classifier(images).shape == (3, 3)


def test_keeps_the_newest_exports(exported):
  model, directory, _ = exported
  export.export_saved_model(model, directory, 20, keep_max=2)
  export.export_saved_model(model, directory, 30, keep_max=2)
  assert sorted(tf.io.gfile.listdir(directory + '/saved_model')) == ['20', '30']


def test_a_failed_export_leaves_the_earlier_ones_and_no_half_export(exported, tmp_path,
                                                                   monkeypatch):
  """The disk fills in the middle of writing export 40: ExportError says what happened;
  export 12 is untouched and no directory named 40 (or scratch) remains."""
  model = exported[0]
  directory = str(tmp_path)
  first = export.export_saved_model(model, directory, 12)
  real_save = tf.saved_model.save

  def save_then_fill_the_disk(obj, export_dir, signatures=None):
    real_save(obj, export_dir, signatures=signatures)
    with open(os.path.join(export_dir, 'variables', 'variables.index'), 'wb') as f:
      f.write(b'cut')  # Partly written...
    raise OSError(28, 'No space left on device')  # ...when the disk filled.

  monkeypatch.setattr(tf.saved_model, 'save', save_then_fill_the_disk)
  with pytest.raises(export.ExportError, match=r'step 40 .* No space left on device.*disk full'):
    export.export_saved_model(model, directory, 40, keep_max=1)
  assert tf.io.gfile.listdir(os.path.join(directory, 'saved_model')) == ['12']
  monkeypatch.undo()
  images = tf.random.uniform([2, 32, 32, 3], seed=1)
  np.testing.assert_allclose(tf.saved_model.load(first)(images, trainable=False)['final_avg_pool'],
                             model(images, training=False, return_endpoints=True)['final_avg_pool'],
                             atol=1e-5)
