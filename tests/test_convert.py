"""Converting original checkpoints: TF1 and tf2 layouts, outputs equal, mismatches named."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from checkpoints import convert
from checkpoints import layouts
from conftest import SHARED_DIR, mock_tfds
from tf2.config import Config
from tf2.models.model import SimCLRModel

REFERENCE = os.path.join(SHARED_DIR, 'reference')
IMAGES = tf.random.uniform([2, 64, 64, 3], seed=11)
TF2_REFERENCES = [  # listing of the original tf2 code, the matching config, classes
    ('upstream_tf2_r18_1x_sk0_cifar_variables.txt',
     Config(resnet_depth=18, image_size=32, use_tpu=False), 10),
    ('upstream_tf2_r50_1x_sk1_variables.txt',
     Config(resnet_depth=50, image_size=224, sk_ratio=0.0625, use_tpu=False), 1000)]


def randomised(config, num_classes, image_size=64):
  """A model whose every variable (BN statistics included) holds a random value."""
  model = SimCLRModel(config, num_classes).build_for(image_size=image_size)
  for v in model.variables:
    low = 0.5 if ('gamma' in v.path or 'variance' in v.path) else -0.05
    v.assign(tf.random.uniform(v.shape, low, low + 0.1 if low < 0 else 1.5, seed=1))
  return model


def save_tensors(prefix, names, tensors):
  """A checkpoint holding exactly these names (as other programs write them)."""
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                    tensors=tensors)
  return prefix


def check_converted(path, source, config):
  """Converting `path` recovers `config`'s architecture and `source`'s outputs."""
  model, inferred = convert.convert(path)
  assert (inferred.resnet_depth, inferred.sk_ratio, inferred.image_size) == (
      config.resnet_depth, config.sk_ratio, config.image_size)
  images = IMAGES[:, :32, :32] if config.image_size == 32 else IMAGES
  assert_same_outputs(source, model, images)


def write_tf1(model, prefix, ema=False, extras=True):
  """A name-based checkpoint as TF1 SimCLR writes it (plus optimizer slots and step)."""
  names = layouts.tf1_names(model)
  tensors = [v.numpy() for v in model.variables]
  if ema:  # EMA copies of the encoder (the heads have none).
    ema_names = layouts.tf1_names(model, 'ema_model')
    encoder = [i for i, n in enumerate(ema_names) if n.startswith('ema_model/')]
    names += [ema_names[i] for i in encoder]
    tensors += [tensors[i] * 0.5 for i in encoder]
  if extras:
    names += ['global_step', names[0] + '/Momentum']
    tensors += [np.int64(1234), np.zeros_like(tensors[0])]
  return save_tensors(prefix, names, tensors)


def assert_same_outputs(source, converted, images=IMAGES):
  a = source(images, training=False)
  b = converted(images, training=False)
  for key in ('proj_head_input', 'logits_sup', 'proj_head_output'):
    if key in a:
      np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=1e-5, err_msg=key)


@pytest.mark.parametrize('sk_ratio, reference', [
    (0.0, 'upstream_tf1_r50_1x_sk0_variables.txt'),
    (0.0625, 'upstream_tf1_r50_1x_sk1_variables.txt')])
def test_tf1_round_trip(tmp_path, sk_ratio, reference):
  config = Config(resnet_depth=50, image_size=224, sk_ratio=sk_ratio, use_tpu=False)
  source = randomised(config, 1000)
  if os.path.isdir(REFERENCE):  # Exactly the names, shapes and order of the real thing.
    with open(os.path.join(REFERENCE, reference)) as f:
      listed = [line.split(' ', 1) for line in f.read().splitlines()]
    assert [(n, json.loads(s)) for n, s in listed if n != 'global_step'] == [
        (n, list(v.shape)) for n, v in zip(layouts.tf1_names(source), source.variables)]
  prefix = write_tf1(source, str(tmp_path / 'model.ckpt-1234'))
  model, inferred = convert.convert(prefix)
  assert (inferred.resnet_depth, inferred.width_multiplier, inferred.sk_ratio,
          inferred.num_proj_layers, inferred.proj_out_dim) == (50, 1, sk_ratio, 3, 128)
  assert_same_outputs(source, model)


def test_tf1_ema_weights_and_written_outputs(tmp_path):
  config = Config(resnet_depth=18, image_size=224, use_tpu=False, train_mode='finetune')
  source = randomised(config, 7)
  prefix = write_tf1(source, str(tmp_path / 'src' / 'model.ckpt-5'), ema=True)
  model, _ = convert.convert(prefix, ema=True)
  ema_value = model.variables[0].numpy()
  np.testing.assert_allclose(ema_value, source.variables[0].numpy() * 0.5)
  dst = str(tmp_path / 'dst')
  convert.main([os.path.dirname(prefix), dst])
  with open(os.path.join(dst, 'flags.json')) as f:
    flags = json.load(f)
  assert flags['resnet_depth'] == 18 and flags['num_classes'] == 7
  exported = tf.saved_model.load(os.path.join(dst, 'saved_model', '0'))
  np.testing.assert_allclose(exported(IMAGES, trainable=False)['logits_sup'].numpy(),
                             source(IMAGES)['logits_sup'].numpy(), atol=1e-5)
  assert tf.train.latest_checkpoint(dst)


def read_reference_section(name, header):
  with open(os.path.join(REFERENCE, name)) as f:
    lines = f.read().splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith(header))
  keys = {}
  for line in lines[start + 1:]:
    if line.startswith('#'):
      break
    key, shape = line.split(' ', 1)
    keys[key] = json.loads(shape)
  return keys


@pytest.mark.skipif(not os.path.isdir(REFERENCE), reason='../shared is absent')
@pytest.mark.parametrize('reference, config, num_classes', TF2_REFERENCES)
def test_tf2_object_layout_round_trip(tmp_path, reference, config, num_classes):
  keys = read_reference_section(reference, '# [checkpoint]')
  source = randomised(config, num_classes, image_size=min(config.image_size, 64))
  ordered = layouts.tf2_keys_in_order(keys)
  assert [keys[k] for k in ordered] == [list(v.shape) for v in source.variables]
  names = ordered + [k for k in keys if k not in ordered and 'VARIABLE_VALUE' in k]
  values = [v.numpy() for v in source.variables]
  values += [np.zeros(keys[k], np.float32) if keys[k] else np.int64(2)
             for k in names[len(ordered):]]
  prefix = save_tensors(str(tmp_path / 'ckpt-2'), names, values)
  check_converted(prefix, source, config)


@pytest.fixture(scope='module')
def r18_tf1(tmp_path_factory):
  config = Config(resnet_depth=18, image_size=224, use_tpu=False)
  source = randomised(config, 10)
  return write_tf1(source, str(tmp_path_factory.mktemp('r18') / 'model.ckpt-1'))


@pytest.mark.parametrize('change, first_bad', [
    (dict(width_multiplier=2), 'base_model/conv2d/kernel'),
    (dict(sk_ratio=0.0625), 'base_model/conv2d/kernel'),
    (dict(resnet_depth=34), 'base_model/conv2d_'),
])
def test_mismatch_names_the_first_bad_tensor(r18_tf1, change, first_bad):
  config = Config(resnet_depth=18, image_size=224, use_tpu=False).replace(**change)
  model = SimCLRModel(config, 10).build_for(image_size=64)
  before = model.variables[0].numpy()
  reader, fmt = convert.open_reader(r18_tf1)
  with pytest.raises(convert.ConversionError, match=first_bad):
    convert.plan_assignment(model, reader, fmt)
  np.testing.assert_array_equal(model.variables[0].numpy(), before)


def test_extra_tensors_are_reported(r18_tf1, tmp_path):
  reader, _ = convert.open_reader(r18_tf1)
  names = list(reader.get_variable_to_shape_map()) + ['base_model/batch_normalization_99/gamma']
  tensors = [reader.get_tensor(n) for n in names[:-1]] + [np.zeros([4], np.float32)]
  prefix = save_tensors(str(tmp_path / 'model.ckpt-1'), names, tensors)
  with pytest.raises(convert.ConversionError, match='batch_normalization_99'):
    convert.convert(prefix, str(tmp_path / 'never'))
  assert not os.path.exists(tmp_path / 'never')  # Nothing written.
  with pytest.raises(convert.ConversionError, match='22 encoder kernels.*21 \\(ResNet-18\\)'):
    convert.infer_config(convert.source_tensors(reader, 'tf1') + [
        ('base_model/conv2d_99/kernel', [1, 1, 1, 1])], 'tf1')


def test_converted_model_fine_tunes(tmp_path):
  """Gradients reach every variable after fine_tune_after_block; run.py takes the result."""
  from test_run import parse  # pylint: disable=g-import-not-at-top
  from tf2 import runner  # pylint: disable=g-import-not-at-top
  cifar = Config(resnet_depth=18, image_size=32, use_tpu=False, resnet_base_width=8)
  source = randomised(cifar, 10, image_size=32)
  prefix = write_tf1(source, str(tmp_path / 'model.ckpt-1'))
  reader, fmt = convert.open_reader(prefix)
  config, classes = convert.infer_config(convert.source_tensors(reader, fmt), fmt,
                                         base_width=8)
  finetune = config.replace(train_mode='finetune', fine_tune_after_block=2)
  model = SimCLRModel(finetune, classes).build_for()
  convert.assign(convert.plan_assignment(model, reader, fmt), reader)
  with tf.GradientTape() as tape:
    logits = model(IMAGES[:, :32, :32], training=True)['logits_sup']
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits([1, 2], logits))
  grads = tape.gradient(loss, model.trainable_variables)
  names = [v.path for v in model.trainable_variables]
  assert names and not any('block_group1' in n or 'block_group2' in n or 'stem' in n
                           for n in names)
  for grad, name in zip(grads, names):
    if 'head_contrastive' in name:
      continue  # Not on the path to logits_sup with ft_proj_selector=0.
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, name

  dst = str(tmp_path / 'converted')
  convert.convert(prefix, dst, base_width=8)
  with mock_tfds(8):
    result = runner.run(parse(
        f'run.py --train_mode=finetune --mode=train_then_eval --dataset=cifar10 '
        f'--data_dir={tmp_path} --image_size=32 --resnet_depth=18 --resnet_base_width=8 '
        f'--train_steps=1 --train_batch_size=4 --eval_batch_size=8 --use_tpu=False '
        f'--fine_tune_after_block=2 --checkpoint={dst} --model_dir={tmp_path / "ft"} '
        "--variable_schema='(?!global_step|(?:.*/|^)Momentum|head_supervised)'"))
  assert result['global_step'] == 1


@pytest.mark.skipif(not os.path.isdir(REFERENCE), reason='../shared is absent')
@pytest.mark.parametrize('reference, config, num_classes', TF2_REFERENCES)
def test_original_tf2_saved_model_round_trip(tmp_path, reference, config, num_classes):
  listed = read_reference_section(reference, '# [saved_model] tf.train.list_variables')
  source = randomised(config, num_classes, image_size=min(config.image_size, 64))
  pairs = layouts.saved_model_keys(source)
  # Exactly the keys and shapes of the original's SavedModel variables file.
  assert {k: list(v.shape) for v, k in pairs} == {
      k: s for k, s in listed.items() if k != '_CHECKPOINTABLE_OBJECT_GRAPH'}
  export_dir = tmp_path / 'saved_model'
  (export_dir / 'variables').mkdir(parents=True)
  (export_dir / 'saved_model.pb').write_bytes(b'')  # Marks the directory as a SavedModel.
  names = [k for _, k in pairs]
  save_tensors(str(export_dir / 'variables' / 'variables'), names, [v.numpy() for v, _ in pairs])
  check_converted(str(export_dir), source, config)
