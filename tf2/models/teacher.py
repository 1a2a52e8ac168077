"""The teacher of `--train_mode=distill`: a fine-tuned model, rebuilt as ours and frozen.

The teacher's architecture comes from the `flags.json` next to its weights
(our model_dirs and `checkpoints.convert` outputs write one): the directory
itself, or two levels up for an export `model_dir/saved_model/<step>/`. The
model is built under the student's distribution strategy (so every replica
holds the teacher) with the student's precision, its weights restored, and
it is called in inference mode on exactly the student's input batch.
"""
import json
import os

import tensorflow as tf

from tf2.config import Config
from tf2.errors import CheckpointMismatchError, ConfigError
from tf2.models import warm_start
from tf2.models.model import SimCLRModel


def find_flags(path):
  """Path of the teacher's flags.json, or ConfigError."""
  path = path.rstrip('/')
  for directory in (path, os.path.dirname(os.path.dirname(path)), os.path.dirname(path)):
    candidate = os.path.join(directory, 'flags.json')
    if directory and tf.io.gfile.exists(candidate):
      return candidate
  raise ConfigError(
      f'--teacher_checkpoint={path}: no flags.json there (or two levels up for a saved_model/'
      '<step> export), so the teacher\'s architecture is unknown. Pass a model_dir of ours, an '
      'export inside one, or the output directory of python -m checkpoints.convert.')


def teacher_config(path, student_config):
  """The teacher's Config: its architecture, with the student's precision and TPU setting."""
  with tf.io.gfile.GFile(find_flags(path)) as f:
    flags = json.load(f)
  known = set(Config.__dataclass_fields__)
  config = Config(**{k: v for k, v in flags.items() if k in known})
  if not config.has_supervised_head:
    raise ConfigError(f'The teacher {path} has no supervised head (a pretraining run without '
                      '--lineareval_while_pretraining): fine-tune it first, then distil.')
  train_mode = 'finetune' if config.train_mode == 'distill' else config.train_mode
  return config.replace(train_mode=train_mode, teacher_checkpoint=None, checkpoint=None,
                        precision=student_config.precision, use_tpu=student_config.use_tpu)


def supervised_classes(path):
  """Number of classes of the checkpoint's supervised head (None if it has none)."""
  reader = tf.train.load_checkpoint(warm_start.resolve_checkpoint_path(path))
  graph = warm_start.SavedGraph(reader)
  shapes = reader.get_variable_to_shape_map()
  for prefix in (('model',), ()):  # Training checkpoints and exports; bare models.
    key = graph.key(prefix + ('supervised_head', 'linear_layer', 'dense', 'bias'))
    if key is not None:
      return shapes[key][-1]
  return None


def load_teacher(path, student_config, num_classes, strategy):
  """The frozen teacher model, restored from `path` under `strategy`."""
  config = teacher_config(path, student_config)
  with strategy.scope():
    teacher = SimCLRModel(config, num_classes, name='teacher').build_for(views=1)
  try:
    warm_start.initialize_from_checkpoint(teacher, path, '.*')
  except CheckpointMismatchError as e:
    raise CheckpointMismatchError(
        f'The teacher {path} does not fit the architecture in its flags.json, or has another '
        f'number of classes than the student ({num_classes}): {e}') from e
  teacher.trainable = False
  return teacher
