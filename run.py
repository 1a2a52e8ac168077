"""SimCLR v1/v2: pretraining, fine-tuning, linear evaluation and export.

The flags are the original SimCLR `run.py` flags (TF1 and tf2 versions
together: same names, types, defaults and meaning) plus a few new ones
marked [new]. They become a frozen `tf2.config.Config`; nothing below this
file reads flags. `python run.py --helpfull` lists them all.

Quickstart (embedded dataset, no download):
  python run.py --flagfile=flagfiles/quickstart.cfg
"""
import dataclasses
import os
import sys

from absl import app
from absl import flags

from tf2 import config as config_lib

_DEFAULTS = config_lib.Config()

_ENUMS = {
    'learning_rate_scaling': config_lib.LR_SCALINGS,
    'optimizer': config_lib.OPTIMIZERS,
    'mode': config_lib.MODES,
    'train_mode': config_lib.TRAIN_MODES,
    'proj_head_mode': config_lib.PROJ_HEAD_MODES,
    'color_jitter_impl': config_lib.COLOR_JITTER_IMPLS,
    'precision': config_lib.PRECISIONS,
}


def define_flags(flag_values=flags.FLAGS):
  """Defines one flag per Config field (the original's flags and the new ones), with the
  help kept beside the field in tf2/config.py."""
  for field in dataclasses.fields(config_lib.Config):
    name, default = field.name, getattr(_DEFAULTS, field.name)
    help_text = field.metadata['help']
    if name in _ENUMS:
      flags.DEFINE_enum(name, default, list(_ENUMS[name]), help_text, flag_values=flag_values)
    elif field.type is bool:
      flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
    elif field.type is int:
      flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
    elif field.type is float:
      flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    else:
      flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS):
  return config_lib.Config(**{f.name: flag_values[f.name].value
                              for f in dataclasses.fields(config_lib.Config)})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # TensorFlow is imported only once the flags parsed (fast --help), without
  # its benign start-up noise (tf2/console.py; SIMCLR_STARTUP_LOGS=1 shows it).
  from tf2 import console  # pylint: disable=g-import-not-at-top
  console.quiet_tensorflow_startup()
  from tf2 import runner  # pylint: disable=g-import-not-at-top
  from tf2.training.checkpointing import CheckpointMismatchError  # pylint: disable=g-import-not-at-top
  from tf2.data.datasets import DatasetError  # pylint: disable=g-import-not-at-top
  from tf2.strategies import StrategyError  # pylint: disable=g-import-not-at-top
  from tf2.cluster import WorkerLostError  # pylint: disable=g-import-not-at-top
  from tf2.export import ExportError  # pylint: disable=g-import-not-at-top
  from tf2.training.checkpointing import CheckpointWriteError  # pylint: disable=g-import-not-at-top
  try:
    runner.run(config_from_flags())
  except (config_lib.ConfigError, FileNotFoundError, DatasetError, CheckpointMismatchError,
          StrategyError, FloatingPointError, WorkerLostError, CheckpointWriteError,
          ExportError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


define_flags()

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  app.run(main)
