"""SavedModel export: outputs equal the live model's, fine-tunable, hub.load, retention."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from tf2 import export
from tf2.config import Config
from tf2.model import SimCLRModel

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
    if 'gamma' in v.path or 'moving' in v.path:
      v.assign(tf.random.uniform(v.shape, 0.5, 1.5))
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


def test_keeps_the_newest_exports(exported):
  model, directory, _ = exported
  export.export_saved_model(model, directory, 20, keep_max=2)
  export.export_saved_model(model, directory, 30, keep_max=2)
  assert sorted(tf.io.gfile.listdir(directory + '/saved_model')) == ['20', '30']
