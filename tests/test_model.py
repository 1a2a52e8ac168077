"""SimCLRModel: view layout, outputs per mode, linear eval isolation, no augmentation."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.config import Config
from tf2.models.model import SimCLRModel
from tf2.views import split_views

CFG = Config(resnet_depth=18, image_size=8, use_blur=False, global_bn=False).validate()


def test_split_views_is_view_major(rng):
  x = rng.rand(3, 2, 2, 6).astype(np.float32)
  out = split_views(tf.constant(x)).numpy()
  np.testing.assert_array_equal(out[:3], x[..., :3])
  np.testing.assert_array_equal(out[3:], x[..., 3:])
  with pytest.raises(ValueError, match='multiple of 3'):
    split_views(tf.zeros([1, 2, 2, 4]))


def test_pretrain_outputs_and_linear_eval_isolation(rng):
  model = SimCLRModel(CFG, num_classes=7).build_for()
  x = tf.constant(rng.rand(4, 8, 8, 6).astype(np.float32))
  with tf.GradientTape(persistent=True) as tape:
    out = model(x, training=True)
    sup = tf.reduce_sum(out['logits_sup'] * tf.random.normal(out['logits_sup'].shape))
    con = tf.reduce_sum(out['proj_head_output'] ** 2)
  assert out['proj_head_output'].shape == (8, 128)
  assert out['proj_head_input'].shape == (8, 512)
  assert out['logits_sup'].shape == (8, 7)
  # Label information never reaches the encoder or the projection head...
  encoder_and_proj = model.resnet_model.trainable_variables + model.projection_head.trainable_variables
  assert all(g is None for g in tape.gradient(sup, encoder_and_proj))
  # ...while the supervised head and (through the contrastive loss) the encoder learn.
  assert all(g is not None for g in tape.gradient(sup, model.supervised_head.trainable_variables))
  assert any(g is not None and np.abs(g.numpy()).sum() > 0
             for g in tape.gradient(con, model.resnet_model.trainable_variables))


def test_finetune_mode_and_endpoints(rng):
  cfg = CFG.replace(train_mode='finetune', fine_tune_after_block=-1, ft_proj_selector=1)
  model = SimCLRModel(cfg, num_classes=5).build_for()
  out = model(tf.constant(rng.rand(2, 8, 8, 3).astype(np.float32)), return_endpoints=True)
  assert out['logits_sup'].shape == (2, 5)
  for name in ('initial_conv', 'initial_max_pool', 'block_group1', 'block_group4',
               'final_avg_pool'):
    assert name in out
  # The supervised head reads the first projection layer's output (width 512).
  assert model.supervised_head.linear_layer.dense.kernel.shape == (512, 5)


def test_no_supervised_head_without_linear_eval():
  model = SimCLRModel(CFG.replace(lineareval_while_pretraining=False), 3).build_for()
  assert model.supervised_head is None
  assert 'logits_sup' not in model(tf.zeros([1, 8, 8, 6]))


def test_blur_only_when_training_a_pretraining_model(rng):
  x = tf.constant(rng.rand(4, 8, 8, 6).astype(np.float32))
  plain = SimCLRModel(CFG, 3).build_for()
  blurred = SimCLRModel(CFG.replace(use_blur=True, image_size=20), 3)
  blurred.build_for(image_size=8)
  blurred.set_weights(plain.get_weights())
  a = plain(x, training=False)['proj_head_output'].numpy()
  b = blurred(x, training=False)['proj_head_output'].numpy()
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mixed_bfloat16_runs_in_bf16_with_float32_outputs():
  model = SimCLRModel(CFG.replace(precision='mixed_bfloat16'), 3).build_for()
  assert model.resnet_model.stem.conv_0.conv2d.compute_dtype == 'bfloat16'
  assert all(v.dtype == 'float32' for v in model.variables)
  out = model(tf.zeros([2, 8, 8, 6]), training=True)
  assert all(v.dtype == tf.float32 for v in out.values())


@pytest.mark.parametrize('selector', [0, 1, 2, 3, -1, -4])
def test_fine_tuning_keeps_the_projection_layers_below_the_selector(selector):
  """As the original (hiddens_list[ft_proj_selector], hiddens_list = [encoder output, nl_0,
  nl_1, nl_2 outputs]): the supervised head reads the selected hidden, so the layers below it
  are kept (trained by the supervised loss) and those above it are dropped (no gradient)."""
  config = Config(train_mode='finetune', resnet_depth=18, resnet_base_width=8, image_size=16,
                  num_proj_layers=3, ft_proj_selector=selector, use_tpu=False, global_bn=False,
                  proj_out_dim=8)
  model = SimCLRModel(config, 5).build_for()
  kept = range(selector % 4)  # Layers nl_0 .. nl_{k-1} feed the selected hidden.
  images = tf.random.uniform([4, 16, 16, 3], seed=1)
  with tf.GradientTape() as tape:
    logits = model(images, training=True)['logits_sup']
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.constant([0, 1, 2, 3]), logits))
  grads = tape.gradient(loss, model.trainable_variables)
  trained = {v.path.split('/')[2] for v, g in zip(model.trainable_variables, grads)
             if v.path.startswith('simclr/head_contrastive/') and g is not None
             and float(tf.reduce_max(tf.abs(g))) > 0}
  assert trained == {f'nl_{j}' for j in kept}
  width = 8 if selector % 4 == 3 else 64  # Middle layers keep the encoder width (8 * 8).
  assert model.supervised_head.variables[0].shape == (width, 5)
