"""run.py's modes end to end: the README's CIFAR-10 commands (shortened), eval, export, probe."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_RUN, mock_tfds
from test_run import README_COMMANDS, parse
from tf2.errors import CheckpointMismatchError, ConfigError
from tf2.evaluation import knn
from tf2.evaluation import watcher
from tf2.models import warm_start
from tf2.training import resume
from tf2 import plot
from tf2 import runner
from tf2.config import Config
from tf2.data import datasets
from tf2.data.datasets import array_source
from tf2.evaluation import linear_probe
from tf2.models import teacher as teacher_lib
from tf2.models.model import SimCLRModel
from tf2.training.train_step import TrainStep

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
  named = lambda m: {warm_start.schema_name(v): v.numpy() for v in m.variables}
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
  with mock_tfds(20):
    pre, ft, result = pretrain_then_finetune(tmp_path, str(tmp_path / 'tfds'))
  check_outputs(pre, ft, result, num_eval=20)


def test_cifar10_commands_on_real_cifar10(tmp_path, real_cifar10):
  pre, ft, result = pretrain_then_finetune(tmp_path, real_cifar10)
  check_outputs(pre, ft, result, num_eval=10000)


def test_eval_mode_evaluates_the_finished_run(tmp_path):
  with mock_tfds(20):
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
  with pytest.raises(ConfigError, match='CPU AMD EPYC without avx512_bf16'):
    runner.run(config)
  assert not model_dir.exists()


def test_eval_beside_training_skips_deleted_and_half_written_checkpoints(tmp_path, monkeypatch,
                                                                          rng):
  """--mode=eval's watcher, fed what a trainer leaves: a good checkpoint, a
  half-written one (truncated data), one deleted by keep_checkpoint_max before
  it is read, then the last one. It evaluates the good ones and stops."""
  config = Config(resnet_depth=18, image_size=16, resnet_base_width=8, use_tpu=False,
                  train_mode='finetune', eval_batch_size=8, train_steps=4, use_blur=False,
                  model_dir=str(tmp_path / 'run'), export_saved_model=False).validate()
  images = rng.randint(0, 256, [16, 16, 16, 3]).astype(np.uint8)
  labels = rng.randint(0, 3, 16)
  source = array_source('arrays', {'train': (images, labels), 'validation': (images, labels)},
                        3)
  strategy = tf.distribute.get_strategy()
  trained, trained_opt = runner.build_model(config, strategy, 3, 16)
  saver = resume.make_manager(trained, trained_opt, config.model_dir, max_to_keep=10)
  heads = {}

  def save(step):
    trained_opt.iterations.assign(step)
    trained.supervised_head.trainable_variables[0].assign_add(tf.ones_like(
        trained.supervised_head.trainable_variables[0]))
    heads[step] = trained.supervised_head.trainable_variables[0].numpy()
    return saver.save(checkpoint_number=step)

  def scripted_iterator(directory, min_interval_secs):
    assert directory == config.model_dir and min_interval_secs == 0
    yield save(1)
    half = save(2)
    data = half + '.data-00000-of-00001'
    with open(data, 'rb') as f:
      content = f.read()
    with open(data, 'wb') as f:
      f.write(content[:len(content) // 2])
    yield half
    gone = save(3)
    for name in tf.io.gfile.glob(gone + '.*'):
      tf.io.gfile.remove(name)
    yield gone
    yield save(4)
    raise AssertionError('the watcher did not stop at the last step')

  monkeypatch.setattr(tf.train, 'checkpoints_iterator', scripted_iterator)
  evaluated = {}
  real_evaluate = watcher.evaluate_and_export

  def record(config, model, strategy, source, step, *args):
    evaluated[step] = model.supervised_head.trainable_variables[0].numpy()
    return real_evaluate(config, model, strategy, source, step, *args)

  monkeypatch.setattr(watcher, 'evaluate_and_export', record)
  model, optimizer = runner.build_model(config, strategy, 3, 16)
  result = watcher.watch_and_evaluate(config, model, optimizer, strategy, source, 4,
                                      min_interval_secs=0)
  assert sorted(evaluated) == [1, 4] and result['global_step'] == 4
  for step in (1, 4):
    np.testing.assert_array_equal(evaluated[step], heads[step])
  with open(os.path.join(config.model_dir, 'result_1.json')) as f:
    assert json.load(f)['global_step'] == 1


TINY = Config(**TINY_RUN, mode='train', log_every_secs=0)


@pytest.mark.parametrize('checkpoint, message', [
    ('plain', 'is not a checkpoint or export of this project: .* checkpoints.convert'),
    ('cut/ckpt-1', 'cannot be read whole .* truncated or damaged.* nothing was assigned'),
    ('missing/ckpt-1', 'no such checkpoint'),
])
def test_bad_checkpoints_stop_in_seconds_and_leave_nothing(tiny_checkpoints, tmp_path,
                                                           checkpoint, message):
  model_dir = tmp_path / 'run'
  config = TINY.replace(train_mode='finetune', checkpoint=str(tiny_checkpoints / checkpoint),
                        model_dir=str(model_dir))
  with pytest.raises((CheckpointMismatchError, FileNotFoundError), match=message):
    runner.run(config)
  assert not model_dir.exists()


def test_an_unwritable_model_dir_is_named_first(tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(ConfigError, match=r'--model_dir=.*/file/run cannot be written'):
    runner.run(TINY.replace(model_dir=str(tmp_path / 'file' / 'run')))


def test_a_resumable_model_dir_wins_over_checkpoint_and_says_so(tiny_checkpoints, caplog):
  with caplog.at_level('WARNING'):
    runner.run(TINY.replace(model_dir=str(tiny_checkpoints / 'run'),
                            checkpoint=str(tiny_checkpoints / 'plain')))
  assert any('--checkpoint=' in r.getMessage() and 'is not used: --model_dir already holds'
             in r.getMessage() and 'ckpt-1' in r.getMessage() for r in caplog.records)


def test_a_truncated_tfds_file_is_named(real_cifar10, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(real_cifar10, tmp_path / 'tfds', ignore=shutil.ignore_patterns('downloads'))
  version = tmp_path / 'tfds' / 'cifar10' / '3.0.2'
  train = next(version.glob('cifar10-train.tfrecord*'))
  train.write_bytes(train.read_bytes()[:20000])  # A few images, then cut mid-record.
  config = TINY.replace(dataset='cifar10', data_dir=str(tmp_path / 'tfds'), eval_split='test',
                        model_dir=str(tmp_path / 'run'))
  with pytest.raises(datasets.DatasetError, match='A data file is truncated or corrupt'):
    runner.run(config)


def test_a_batch_that_does_not_split_over_the_replicas_is_refused(strategy8, monkeypatch,
                                                                  tmp_path):
  monkeypatch.setattr(runner.strategies, 'make_strategy', lambda config: strategy8)
  with pytest.raises(ConfigError, match=r'--train_batch_size=100 must be a multiple of '
                                               r'the number of replicas \(8\)'):
    runner.run(TINY.replace(train_batch_size=100, model_dir=str(tmp_path / 'run')))
  assert not (tmp_path / 'run').exists()


def test_fine_tuning_on_a_folder_without_classes_is_refused(tmp_path, rng):
  os.makedirs(tmp_path / 'flat')
  for i in range(3):
    tf.io.write_file(str(tmp_path / 'flat' / f'{i}.png'),
                     tf.io.encode_png(rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)))
  with pytest.raises(datasets.DatasetError, match='has no labels .*fine-tuning needs labelled'):
    runner.run(TINY.replace(dataset=str(tmp_path / 'flat'), train_split='train',
                            train_mode='finetune', model_dir=str(tmp_path / 'run')))
  assert not (tmp_path / 'run').exists()


def test_evaluate_ema_evaluates_and_exports_the_momentum_network(tmp_path, monkeypatch):
  """--memory_size with --evaluate_ema: the kNN monitor and the linear probe see the
  momentum network, training exports it, --mode=eval restores it from the
  checkpoint's momentum network, and a distillation teacher loads from the export."""
  seen = {}  # The weights each evaluation was called with, call by call.

  def recording(name, function, model_arg):
    def wrapper(*args, **kwargs):
      seen.setdefault(name, []).append([v.numpy() for v in args[model_arg].variables])
      return function(*args, **kwargs)
    return wrapper

  monkeypatch.setattr(knn, 'knn_accuracy', recording('knn', knn.knn_accuracy, 1))
  monkeypatch.setattr(linear_probe, 'probe_accuracy',
                      recording('probe', linear_probe.probe_accuracy, 0))
  with mock_tfds(20):
    command = (README_COMMANDS[0].replace('/tmp/simclr_test', str(tmp_path)) + SHORT +
               f' --data_dir={tmp_path} --memory_size=32 --momentum_decay=0.5'
               ' --evaluate_ema=True --export_saved_model=True --knn_eval=True')
    config = parse(command)
    runner.run(config.replace(linear_probe=True))
    latest = tf.train.latest_checkpoint(str(tmp_path))
    online, ema = SimCLRModel(config, 10).build_for(), SimCLRModel(config, 10).build_for()
    tf.train.Checkpoint(model=online, ema_model=ema).restore(latest).expect_partial()

    def exported():  # In the order of model.variables (tf2/export.py).
      return [v.numpy() for v in tf.saved_model.load(
          str(tmp_path / 'saved_model' / '2')).variables]

    def assert_is_ema(values):
      assert len(values) == len(ema.variables)
      for value, v in zip(values, ema.variables):
        np.testing.assert_array_equal(value, v.numpy(), err_msg=v.path)
      assert any(not np.array_equal(value, v.numpy()) for value, v in zip(values, online.variables))

    assert_is_ema(exported())
    assert_is_ema(seen['knn'][-1])  # At the last checkpoint.
    assert_is_ema(seen['probe'][0])  # The trained encoder (then the random one).
    teacher = teacher_lib.load_teacher(str(tmp_path / 'saved_model' / '2'),
                                       config.replace(train_mode='distill'), 10,
                                       tf.distribute.get_strategy())
    assert_is_ema([v.numpy() for v in teacher.variables])
    tf.io.gfile.rmtree(str(tmp_path / 'saved_model'))
    runner.run(parse(command + ' --mode=eval --eval_name=ema_eval'))
    assert_is_ema(exported())


def test_evaluate_ema_refuses_a_checkpoint_without_a_momentum_network(tmp_path):
  with mock_tfds(20):
    command = (README_COMMANDS[0].replace('/tmp/simclr_test', str(tmp_path)) + SHORT +
               f' --data_dir={tmp_path}')
    runner.run(parse(command))
    with pytest.raises(CheckpointMismatchError, match='holds no momentum network'):
      runner.run(parse(command + ' --mode=eval --memory_size=32 --evaluate_ema=True'))
