"""Initialising from a checkpoint: schema selection, zero-init logits, mismatch errors."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.config import Config, compile_schema
from tf2.errors import CheckpointMismatchError, ConfigError
from tf2.models import warm_start
from tf2.models.model import SimCLRModel

BASE = Config(resnet_depth=18, image_size=32, use_tpu=False, global_bn=False)
FINETUNE_SCHEMA = '(?!global_step|(?:.*/|^)Momentum|head)'


def model_for(config, num_classes=10):
  return SimCLRModel(config, num_classes).build_for()


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
  """A pretraining model with random (non-initial) values in every variable, saved."""
  tf.random.set_seed(1)
  model = model_for(BASE)
  for v in model.variables:
    v.assign(tf.random.normal(v.shape, dtype=v.dtype) * 0.1 + 1.0)
  step = tf.Variable(7, dtype=tf.int64)
  directory = str(tmp_path_factory.mktemp('pretrained'))
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model, global_step=step), directory,
                             max_to_keep=1).save()
  return model, directory


def values(model, prefix):
  return {warm_start.schema_name(v): v.numpy() for v in model.variables
          if warm_start.schema_name(v).startswith(prefix)}


def test_schema_names_are_the_originals():
  names = [warm_start.schema_name(v) for v in model_for(BASE).variables]
  assert names[0] == 'base_model/stem/conv_0/conv2d/kernel'
  assert 'head_supervised/linear_layer/dense/kernel' in names
  assert any(n.startswith('head_contrastive/nl_0/') for n in names)
  assert {n.split('/')[0] for n in names} == {'base_model', 'head_contrastive',
                                              'head_supervised'}


def test_default_schema_of_the_original_is_read_as_a_lookahead():
  pattern = compile_schema('?!global_step')
  assert pattern.match('base_model/stem/conv_0/conv2d/kernel')
  assert not pattern.match('global_step')
  with pytest.raises(ConfigError, match='variable_schema'):
    compile_schema('(unclosed')


def test_finetune_schema_restores_the_encoder_and_not_the_heads(pretrained):
  source, directory = pretrained
  config = BASE.replace(train_mode='finetune', zero_init_logits_layer=True)
  model = model_for(config)
  step = tf.Variable(0, dtype=tf.int64)
  fresh_heads = values(model, 'head_contrastive')
  restored = warm_start.initialize_from_checkpoint(model, directory, FINETUNE_SCHEMA,
                                                      global_step=step)
  warm_start.zero_init_logits(model)
  assert restored and all(n.startswith('base_model/') for n in restored)
  want, got = values(source, 'base_model/'), values(model, 'base_model/')
  assert want.keys() == got.keys()
  for name in want:
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
  for name, value in values(model, 'head_contrastive').items():
    np.testing.assert_array_equal(value, fresh_heads[name])
    assert not np.allclose(value, values(source, 'head_contrastive')[name])
  for value in values(model, 'head_supervised').values():
    assert not value.any()
  assert int(step.numpy()) == 0  # global_step excluded by the schema.


def test_everything_and_the_step_with_a_catch_all_schema(pretrained):
  source, directory = pretrained
  model = model_for(BASE)
  step = tf.Variable(0, dtype=tf.int64)
  warm_start.initialize_from_checkpoint(model, directory, '.*', global_step=step)
  for a, b in zip(source.variables, model.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert int(step.numpy()) == 7


def test_a_checkpoint_prefix_and_a_saved_model_are_accepted(pretrained, tmp_path):
  source, directory = pretrained
  prefix = tf.train.latest_checkpoint(directory)
  model = model_for(BASE)
  warm_start.initialize_from_checkpoint(model, prefix, '.*')
  np.testing.assert_array_equal(model.variables[0].numpy(), source.variables[0].numpy())
  from tf2 import export  # pylint: disable=g-import-not-at-top
  saved = export.export_saved_model(source, str(tmp_path), 3)
  model = model_for(BASE)
  warm_start.initialize_from_checkpoint(model, saved, FINETUNE_SCHEMA)
  np.testing.assert_array_equal(model.variables[0].numpy(), source.variables[0].numpy())


@pytest.mark.parametrize('change, message', [
    (dict(width_multiplier=2), r'base_model/stem/conv_0/conv2d/kernel has shape .*width_multiplier'),
    (dict(resnet_depth=34), r'no variable for base_model/block_group1/block_2/.*resnet_depth'),
    (dict(resnet_depth=50), r'base_model/block_group1/block_0/.*--resnet_depth'),
    (dict(proj_out_dim=64), r'head_contrastive/nl_2/.*--proj_out_dim'),
])
def test_mismatch_names_the_first_bad_variable_and_the_flag(pretrained, change, message):
  _, directory = pretrained
  model = model_for(BASE.replace(**change))
  before = [v.numpy() for v in model.variables]
  with pytest.raises(CheckpointMismatchError, match=message):
    warm_start.initialize_from_checkpoint(model, directory, '.*')
  for a, b in zip(before, model.variables):  # Nothing assigned.
    np.testing.assert_array_equal(a, b.numpy())


def test_a_shallower_model_is_told_about_the_extra_encoder_tensors(tmp_path):
  deep = model_for(BASE.replace(resnet_depth=34))
  tf.train.Checkpoint(model=deep).save(str(tmp_path / 'ckpt'))
  with pytest.raises(CheckpointMismatchError, match='resnet_depth'):
    warm_start.initialize_from_checkpoint(model_for(BASE), str(tmp_path), FINETUNE_SCHEMA)


def test_selective_kernels_are_detected(tmp_path):
  plain = BASE.replace(resnet_depth=50, image_size=64, resnet_base_width=8)
  tf.train.Checkpoint(model=model_for(plain)).save(str(tmp_path / 'ckpt'))
  with pytest.raises(CheckpointMismatchError, match='stem.*--sk_ratio'):
    warm_start.initialize_from_checkpoint(model_for(plain.replace(sk_ratio=0.0625)),
                                             str(tmp_path), '.*')


def test_class_count_mismatch_points_at_the_schema(pretrained):
  _, directory = pretrained
  model = model_for(BASE.replace(train_mode='finetune'), num_classes=100)
  with pytest.raises(CheckpointMismatchError, match='head_supervised'):
    warm_start.initialize_from_checkpoint(model, directory, '?!global_step')


def test_missing_checkpoint_says_what_to_pass(tmp_path):
  with pytest.raises(FileNotFoundError, match='checkpoint prefix'):
    warm_start.resolve_checkpoint_path(str(tmp_path))
  with pytest.raises(FileNotFoundError, match='no such checkpoint'):
    warm_start.resolve_checkpoint_path(str(tmp_path / 'ckpt-3'))
