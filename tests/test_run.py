"""run.py: every original flag with its type and default; the documented commands parse."""
import os
import shlex
import subprocess
import sys
import time

from absl import flags
import pytest

import recipes
import run
from tf2 import runner
from tf2.strategies import StrategyError

# The original SimCLR run.py flags (TF1 and tf2 sets), with their defaults.
ORIGINAL_FLAGS = {
    'batch_norm_decay': 0.9, 'cache_dataset': False, 'checkpoint': None,
    'checkpoint_epochs': 1, 'checkpoint_steps': 0, 'color_jitter_strength': 1.0,
    'data_dir': None, 'dataset': 'imagenet2012', 'eval_batch_size': 256, 'eval_name': None,
    'eval_split': 'validation', 'eval_steps': 0, 'fine_tune_after_block': -1,
    'ft_proj_selector': 0, 'gcp_project': None, 'global_bn': True, 'hidden_norm': True,
    'image_size': 224, 'keep_checkpoint_max': 5, 'keep_hub_module_max': 1,
    'learning_rate': 0.3, 'learning_rate_scaling': 'linear',
    'lineareval_while_pretraining': True, 'master': None, 'mode': 'train', 'model_dir': None,
    'momentum': 0.9, 'num_proj_layers': 3, 'optimizer': 'lars', 'proj_head_mode': 'nonlinear',
    'proj_out_dim': 128, 'resnet_depth': 50, 'se_ratio': 0.0, 'sk_ratio': 0.0,
    'temperature': 0.1, 'tpu_name': None, 'tpu_zone': None, 'train_batch_size': 512,
    'train_epochs': 100, 'train_mode': 'pretrain', 'train_split': 'train', 'train_steps': 0,
    'train_summary_steps': 100, 'use_blur': True, 'use_tpu': True,
    'variable_schema': '?!global_step', 'warmup_epochs': 10.0, 'weight_decay': 1e-6,
    'width_multiplier': 1, 'zero_init_logits_layer': False,
}
FLOAT_FLAGS = {'batch_norm_decay', 'color_jitter_strength', 'learning_rate', 'momentum',
               'se_ratio', 'sk_ratio', 'temperature', 'warmup_epochs', 'weight_decay'}

# The commands the docs show, read from the pages (recipes.py): the
# original README's CIFAR-10 pretrain and fine-tune commands, then its ImageNet
# TPU pretrain and 1% fine-tune commands. test_runner.py runs the first two.
CIFAR10_COMMANDS = recipes.run_commands(recipes.section('usage.md', 'CIFAR-10'))
IMAGENET_COMMANDS = recipes.run_commands(
    recipes.section('distributed.md', "The original's ImageNet commands"))
README_COMMANDS = CIFAR10_COMMANDS + IMAGENET_COMMANDS
ENV = {'$DATA_DIR': '/tmp/no_data', '$MODEL_DIR': '/tmp/simclr_tpu_model',
       '$CHKPT_DIR': '/tmp/no_checkpoint', '$TPU_NAME': 'my-tpu'}


def parse(command):
  """Config of a command line, parsed by a fresh set of run.py's flags."""
  for key, value in ENV.items():
    command = command.replace(key, value)
  words = shlex.split(command)
  return recipes.config_of(words[words.index('run.py'):])  # argv[0]: the program, for absl


def test_every_original_flag_has_its_default_and_type():
  flag_values = flags.FlagValues()
  run.define_flags(flag_values)
  for name, default in ORIGINAL_FLAGS.items():
    assert name in flag_values, name
    assert flag_values[name].default == default, name
    if name in FLOAT_FLAGS:
      flag_values[name].parse('0.5')
      assert flag_values[name].value == 0.5, name


def test_new_flags_are_documented_as_new():
  flag_values = flags.FlagValues()
  run.define_flags(flag_values)
  new = set(flag_values) - set(ORIGINAL_FLAGS)
  assert {'precision', 'linear_probe', 'export_saved_model', 'strict_images'} <= new
  for name in new:
    assert '[new]' in flag_values[name].help, name


def test_the_docs_show_the_original_commands():
  assert len(CIFAR10_COMMANDS) == 2 and len(IMAGENET_COMMANDS) == 2
  modes = [parse(command).train_mode for command in README_COMMANDS]
  assert modes == ['pretrain', 'finetune', 'pretrain', 'finetune']
  assert [parse(command).use_tpu for command in README_COMMANDS] == [False, False, True, True]


@pytest.mark.parametrize('index', range(len(README_COMMANDS)))
def test_readme_commands_parse_and_validate(index):
  config = parse(README_COMMANDS[index]).validate()
  if index == 1:
    assert config.variable_schema == '(?!global_step|(?:.*/|^)Momentum|head)'
    assert config.fine_tune_after_block == 4 and config.zero_init_logits_layer
    assert config.optimizer == 'momentum' and config.weight_decay == 0.0
  if index == 3:
    assert config.dataset == 'imagenet2012_subset/1pct' and config.ft_proj_selector == 1
    assert config.learning_rate_scaling == 'sqrt' and config.checkpoint == '/tmp/no_checkpoint'


@pytest.mark.parametrize('index', [2, 3])
def test_tpu_commands_stop_at_the_tpu_with_a_clear_message(index):
  config = parse(README_COMMANDS[index])
  start = time.time()
  with pytest.raises(StrategyError, match='--use_tpu=False') as error:
    runner.run(config)
  assert 'my-tpu' in str(error.value)
  assert time.time() - start < 30


def test_bad_flag_combination_is_named():
  config = parse('run.py --train_mode=pretrain --fine_tune_after_block=2 --use_tpu=False '
                 '--model_dir=/tmp/x')
  with pytest.raises(ValueError, match='--fine_tune_after_block'):
    runner.run(config)


def test_readme_quickstart_command_parses():
  """The README's first command: the install, then run.py on the quickstart's flagfile."""
  line = next(l for l in recipes.run_commands(recipes.read('README.md'))
              if l.startswith('pip install -r requirements.txt && python run.py'))
  assert line == ('pip install -r requirements.txt && '
                  'python run.py --flagfile=flagfiles/quickstart.cfg')
  config = parse(recipes.expanded(line)).validate()
  assert config.dataset == 'shapes' and config.linear_probe and not config.use_tpu
  assert config.mode == 'train' and config.export_saved_model and config.knn_eval
  assert config.train_steps == 80 and config.model_dir == '/tmp/simclr_quickstart'
  # absl reads the flagfile itself the same way (run from the repository root).
  path = os.path.join(recipes.ROOT, 'flagfiles', 'quickstart.cfg')
  assert parse(f'python run.py --flagfile={path}') == config


@pytest.mark.parametrize('typo, meant', [('--trian_steps=5', 'train_steps'),
                                         ('--temprature=0.5', 'temperature')])
def test_a_misspelled_flag_names_the_nearest_one_in_a_second(tmp_path, typo, meant):
  start = time.time()
  proc = subprocess.run([sys.executable, run.__file__, typo, f'--model_dir={tmp_path}/run'],
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode != 0
  assert 'Unknown command line flag' in proc.stderr and f'Did you mean: {meant}' in proc.stderr
  assert time.time() - start < 10 and not (tmp_path / 'run').exists()
