"""Checks of a run against what the config alone cannot tell: the replicas, the data,
the teacher and the output directory. `runner.run` calls them before any model is
built, so a run that cannot work stops in seconds with what to do.

What needs only the config is checked in `Config.validate`.
"""
import os

from absl import logging
import tensorflow as tf

from tf2 import strategies
from tf2.errors import ConfigError, DatasetError
from tf2.models import teacher as teacher_lib
from tf2.training import gradient_cache


def check_writable(model_dir):
  """Stops at once, before any work, if model_dir cannot be created or written."""
  probe = os.path.join(model_dir, f'.write_test_{os.getpid()}')
  try:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(probe, 'w') as f:
      f.write('')
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    text = str(e).strip()
    raise ConfigError(f'--model_dir={model_dir} cannot be written '
                      f'({type(e).__name__}: {text.splitlines()[0] if text else ""}): choose '
                      'a directory you can write to.') from e


def check_replicas(config, strategy):
  """Batch sizes that split evenly over the replicas; XLA where it can run."""
  replicas = strategy.num_replicas_in_sync
  strategies.check_jit_compile(strategy, config.jit_compile)
  for name in ('train_batch_size', 'eval_batch_size'):
    if getattr(config, name) % replicas:
      raise ConfigError(f'--{name}={getattr(config, name)} must be a multiple of the number '
                        f'of replicas ({replicas}): each replica gets an equal share.')
  if config.microbatch_size and config.mode != 'eval':
    gradient_cache.check_microbatch_size(config.microbatch_size, config.train_batch_size,
                                         replicas)


def check_labels(config, source):
  """`config` for the data's labels: an error where the mode needs labels the data lacks;
  for unlabelled data the linear-eval head and the probe are dropped."""
  if source.num_classes > 0:
    return config
  if config.train_mode == 'finetune':
    raise DatasetError(
        f'{source.name} has no labels (no class subfolders): fine-tuning needs labelled data.')
  if config.train_mode == 'distill' and config.distill_alpha > 0:
    raise DatasetError(
        f'{source.name} has no labels: --distill_alpha={config.distill_alpha} needs them; use '
        '--distill_alpha=0 to learn from the teacher alone.')
  if config.knn_eval:
    raise DatasetError(
        f'{source.name} has no labels: the kNN monitor needs labelled train and eval splits; '
        'drop --knn_eval.')
  if config.mode != 'train':
    raise DatasetError(
        f'{source.name} has no labels: use --mode=train to pretrain on it; evaluation needs '
        'a labelled --eval_split.')
  if config.lineareval_while_pretraining:
    logging.warning('%s has no labels: pretraining without the linear-eval head.', source.name)
  return config.replace(lineareval_while_pretraining=False, linear_probe=False)


def check_teacher(config, source):
  """The distillation teacher's class count; an error if the labelled data has another."""
  teacher = teacher_lib.teacher_config(config.teacher_checkpoint, config)  # flags.json
  if teacher.view_channels != config.view_channels or (
      'convnet' in (teacher.encoder, config.encoder) and teacher.image_size != config.image_size):
    raise ConfigError(
        f'The teacher {config.teacher_checkpoint} was trained on --randbits='
        f'{teacher.randbits}, --image_size={teacher.image_size} (--encoder={teacher.encoder}); '
        f'it reads the student\'s input, so set the same --randbits (and, with a ConvNet, the '
        f'same --image_size) as the teacher.')
  classes = teacher_lib.supervised_classes(config.teacher_checkpoint)
  if classes is None:
    raise ConfigError(f'The teacher {config.teacher_checkpoint} has no supervised head '
                      '(head_supervised): fine-tune it first, then distil.')
  if source.num_classes and source.num_classes != classes:
    raise ConfigError(f'The teacher {config.teacher_checkpoint} predicts {classes} classes but '
                      f'{source.name} has {source.num_classes}: distil on the teacher\'s label '
                      'space.')
  return classes
