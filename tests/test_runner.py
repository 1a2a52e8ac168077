"""run.py's modes end to end: the README's CIFAR-10 commands (shortened), eval, export, probe."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from test_run import README_COMMANDS, parse
from tf2.training import checkpointing
from tf2 import plot
from tf2 import runner
from tf2.models.model import SimCLRModel

# Shortening: few steps, small batches, a narrow ResNet-18 (same depth, stem and heads).
SHORT = (' --train_steps=2 --train_batch_size=8 --eval_batch_size=16 --resnet_base_width=8'
         ' --checkpoint_steps=1 --train_summary_steps=1')


def pretrain_then_finetune(tmp_path, data_dir):
  pre, ft = str(tmp_path / 'pre'), str(tmp_path / 'ft')
  pre_config = parse(README_COMMANDS[0].replace('/tmp/simclr_test', pre) + SHORT +
                     f' --data_dir={data_dir}')
  assert runner.run(pre_config) is None  # --mode=train: no evaluation.
  ft_command = README_COMMANDS[1].replace('/tmp/simclr_test_ft', ft).replace(
      '/tmp/simclr_test', pre)
  ft_config = parse(ft_command + SHORT + f' --data_dir={data_dir}')
  result = runner.run(ft_config)
  return pre_config.replace(model_dir=pre), ft_config, result


def load(config, num_classes, path):
  model = SimCLRModel(config, num_classes).build_for()
  tf.train.Checkpoint(model=model).restore(path).expect_partial()
  return model


def check_outputs(pre_config, ft_config, result, num_eval):
  pre_dir, ft_dir = pre_config.model_dir, ft_config.model_dir
  assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(
      pre_dir).all_model_checkpoint_paths] == ['ckpt-1', 'ckpt-2']
  with open(os.path.join(pre_dir, 'flags.json')) as f:
    assert json.load(f)['temperature'] == 0.5
  # Fine-tuning run: result files, flags, SavedModel.
  assert result['global_step'] == 2 and result['eval/num_examples'] == num_eval
  for name in ('result.json', 'result_2.json'):
    with open(os.path.join(ft_dir, name)) as f:
      saved = json.load(f)
    assert saved['eval/label_top_1_accuracy'] == result['eval/label_top_1_accuracy']
    assert 0 <= saved['eval/label_top_1_accuracy'] <= saved['eval/label_top_5_accuracy'] <= 1
  with open(os.path.join(ft_dir, 'flags.json')) as f:
    flags = json.load(f)
  assert flags['variable_schema'] == '(?!global_step|(?:.*/|^)Momentum|head)'
  assert flags['checkpoint'] == pre_dir

  pre_model = load(pre_config, 10, tf.train.latest_checkpoint(pre_dir))
  ft_model = load(ft_config, 10, tf.train.latest_checkpoint(ft_dir))
  named = lambda m: {checkpointing.schema_name(v): v.numpy() for v in m.variables}
  pre_vars, ft_vars = named(pre_model), named(ft_model)
  # The encoder came from pretraining (and is frozen: fine_tune_after_block=4)...
  encoder = [n for n in ft_vars if n.startswith('base_model/')]
  assert encoder
  for name in encoder:
    np.testing.assert_array_equal(ft_vars[name], pre_vars[name], err_msg=name)
  # ...the heads did not (a fresh projection head; the supervised head was zeroed then trained).
  kernels = [n for n in ft_vars if n.startswith('head_contrastive') and 'kernel' in n]
  assert kernels and all(not np.allclose(ft_vars[n], pre_vars[n]) for n in kernels)

  exported = tf.saved_model.load(os.path.join(ft_dir, 'saved_model', '2'))
  images = tf.random.uniform([4, 32, 32, 3], seed=2)
  out, ref = exported(images, trainable=False), ft_model(images, return_endpoints=True)
  assert 'logits_sup' in out
  for key in ref:
    np.testing.assert_allclose(out[key].numpy(), ref[key].numpy(), atol=1e-5, err_msg=key)


def test_cifar10_commands_on_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=20):
    pre, ft, result = pretrain_then_finetune(tmp_path, str(tmp_path / 'tfds'))
  check_outputs(pre, ft, result, num_eval=20)


def test_cifar10_commands_on_real_cifar10(tmp_path, real_cifar10):
  pre, ft, result = pretrain_then_finetune(tmp_path, real_cifar10)
  check_outputs(pre, ft, result, num_eval=10000)


def test_eval_mode_evaluates_the_finished_run(tmp_path):
  with tfds.testing.mock_data(num_examples=20):
    command = (README_COMMANDS[0].replace('/tmp/simclr_test', str(tmp_path)) + SHORT +
               f' --data_dir={tmp_path}')
    runner.run(parse(command))
    result = runner.run(parse(command + ' --mode=eval --eval_name=test_eval'))
  assert result['global_step'] == 2
  assert os.path.isdir(tmp_path / 'test_eval') and os.path.isdir(tmp_path / 'saved_model' / '2')


def test_quickstart_plumbing_prints_both_probe_accuracies(tmp_path, capsys):
  config = parse(f'run.py --dataset=shapes --eval_split=test --image_size=16 '
                 f'--resnet_depth=18 --resnet_base_width=8 --train_batch_size=16 '
                 f'--train_steps=2 --use_tpu=False --mode=train_then_eval '
                 f'--linear_probe=True --eval_batch_size=500 --model_dir={tmp_path} '
                 f'--knn_eval=True --knn_bank_size=600 --checkpoint_steps=1')
  result = runner.run(config)
  printed = capsys.readouterr().out
  assert 'pretrained encoder' in printed and 'randomly initialised encoder' in printed
  for key in ('linear_probe/trained_encoder_top_1', 'linear_probe/random_encoder_top_1',
              'eval/label_top_1_accuracy', 'eval/knn_top_1', 'eval/knn_top_1_initial'):
    assert 0 <= result[key] <= 1
  assert result['eval/knn_bank_size'] == 600 and result['eval/knn_num_queries'] == 2000
  with open(tmp_path / 'result.json') as f:
    saved = json.load(f)
  assert saved['linear_probe/random_encoder_top_1'] == result['linear_probe/random_encoder_top_1']
  assert saved['eval/knn_top_1'] == result['eval/knn_top_1']
  # The kNN monitor ran at the start and at each checkpoint; curves plot from the events.
  scalars = plot.read_scalars(str(tmp_path))
  assert [step for step, _ in scalars['eval/knn_top_1']] == [0, 1, 2]
  assert scalars['eval/knn_top_1'][-1][1] == pytest.approx(result['eval/knn_top_1'])
  assert [step for step, _ in scalars['train/total_loss']] == [1, 2]
  drawn = plot.main([str(tmp_path), str(tmp_path), '--out', str(tmp_path / 'curves.png')])
  assert drawn == {'training loss': 2, 'contrastive accuracy': 2, 'learning rate': 2,
                   'eval accuracy': 4}  # One line per run (two runs; kNN and top-1 each).
  assert (tmp_path / 'curves.png').stat().st_size > 10000


def test_unlabelled_folder_pretrains_without_linear_eval(tmp_path, rng):
  root = tmp_path / 'images'
  root.mkdir()
  for i in range(6):
    tf.io.write_file(str(root / f'{i}.png'), tf.io.encode_png(
        rng.randint(0, 256, [20, 20, 3]).astype(np.uint8)))
  config = parse(f'run.py --dataset={root} --image_size=16 --resnet_depth=18 '
                 f'--resnet_base_width=8 --train_batch_size=4 --train_steps=1 --use_tpu=False '
                 f'--model_dir={tmp_path / "model"}')
  runner.run(config)
  with open(tmp_path / 'model' / 'flags.json') as f:
    assert json.load(f)['lineareval_while_pretraining'] is False
  with pytest.raises(Exception, match='no labels'):
    runner.run(config.replace(train_mode='finetune', model_dir=str(tmp_path / 'ft')))
  with pytest.raises(Exception, match='kNN monitor needs labelled'):
    runner.run(config.replace(knn_eval=True, eval_split=config.train_split,
                              model_dir=str(tmp_path / 'knn')))


def test_strict_precision_refuses_emulated_bf16_before_anything_is_written(tmp_path, monkeypatch):
  from tf2.hardware import Hardware  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(runner.hardware, 'detect',
                      lambda strategy=None: Hardware('cpu', 'AMD EPYC', frozenset({'avx2'})))
  model_dir = tmp_path / 'run'
  config = parse(f'python run.py --dataset=shapes --precision=mixed_bfloat16 --strict_precision=True '
                 f'--use_tpu=False --model_dir={model_dir}')
  with pytest.raises(runner.ConfigError, match='CPU AMD EPYC without avx512_bf16'):
    runner.run(config)
  assert not model_dir.exists()
