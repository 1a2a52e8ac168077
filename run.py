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
from tf2 import errors

_DEFAULTS = config_lib.Config()

_ENUMS = {
    'learning_rate_scaling': config_lib.LR_SCALINGS,
    'optimizer': config_lib.OPTIMIZERS,
    'mode': config_lib.MODES,
    'train_mode': config_lib.TRAIN_MODES,
    'proj_head_mode': config_lib.PROJ_HEAD_MODES,
    'color_jitter_impl': config_lib.COLOR_JITTER_IMPLS,
    'precision': config_lib.PRECISIONS,
    'contrastive_loss': config_lib.CONTRASTIVE_LOSSES,
    'gcl_distribution': config_lib.GCL_DISTRIBUTIONS,
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


def parse_flags(argv):
  """absl's parsing, with a bad flag reported as one `error:` line (exit 1), as every other
  error a user can cause."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e} (python run.py --helpfull lists every flag)', file=sys.stderr)
    sys.exit(1)


def main(argv):
  if len(argv) > 1:
    print(f'error: unexpected arguments {argv[1:]}: every setting is a --flag.', file=sys.stderr)
    sys.exit(1)
  try:
    # The config is checked before TensorFlow is imported, so a bad setting fails at once.
    config = config_from_flags().validate(for_run=True)
    # TensorFlow is imported only now (fast --help and errors), without its benign start-up
    # noise (tf2/console.py; SIMCLR_STARTUP_LOGS=1 shows it).
    from tf2 import console  # pylint: disable=g-import-not-at-top
    console.quiet_tensorflow_startup()
    from tf2 import runner  # pylint: disable=g-import-not-at-top
    runner.run(config)
  except errors.SimCLRError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


define_flags()

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  app.run(main, flags_parser=parse_flags)
