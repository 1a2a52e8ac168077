"""benchmarks/side_by_side.py: the command both implementations run measures what it says."""
import os
import shlex
import sys

from tests.test_run import ORIGINAL_FLAGS, parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'benchmarks'))
import side_by_side  # noqa: E402  pylint: disable=g-import-not-at-top


def test_command_runs_exactly_the_steps_asked_in_one_loop_and_no_evaluation():
  # The original loops over whole `checkpoint_steps` blocks (one epoch by default,
  # whatever --train_steps says) and evaluates after training in the default mode.
  argv = side_by_side.command('run.py', '/data', '/tmp/m', 128, 26)
  config = parse(shlex.join(argv))
  assert config.train_steps == 26 and config.checkpoint_steps == 26
  assert config.mode == 'train' and config.train_batch_size == 128
  assert (config.resnet_depth, config.image_size, config.dataset) == (18, 32, 'cifar10')
  assert config.model_dir == '/tmp/m' and config.data_dir == '/data'


def test_command_uses_only_flags_the_original_defines():
  argv = side_by_side.command('run.py', '/data', '/tmp/m', 16, 6, depth=50, size=224)
  names = {word[2:].split('=')[0] for word in argv[2:]}
  assert names <= set(ORIGINAL_FLAGS)
  config = parse(shlex.join(argv))
  assert (config.resnet_depth, config.image_size, config.train_batch_size) == (50, 224, 16)
