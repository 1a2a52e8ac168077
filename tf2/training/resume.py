"""This run's checkpoints: what is saved, saving, and resuming after a stop.

`model_dir` holds the run's checkpoints (the model, the optimizer's slots and
step, and the step's own state such as the momentum network and the memory),
written by `tf.train.CheckpointManager`. A run resumes from the newest one
that can be read whole; a run with none starts from `--checkpoint` if given
(`tf2/models/warm_start.py`), else from its initial weights.
"""
import os

from absl import logging
import tensorflow as tf

from tf2.errors import CheckpointMismatchError, CheckpointWriteError, first_line
from tf2.models import warm_start
from tf2.training import loss_scale


def checkpoints_newest_first(directory):
  """The checkpoints that `directory`'s checkpoint state lists, newest first."""
  state = tf.train.get_checkpoint_state(directory)
  if state is None:
    return []
  paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
  if state.model_checkpoint_path and state.model_checkpoint_path not in paths:
    paths.append(state.model_checkpoint_path)
  paths = [p if os.path.isabs(p) else os.path.join(directory, p) for p in paths]
  return sorted(paths, key=lambda p: int(p.rsplit('-', 1)[1]) if p.rsplit('-', 1)[1].isdigit()
                else -1, reverse=True)


def save(manager, step):
  """manager.save, with a CheckpointWriteError that says what is still safe."""
  try:
    return manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    raise CheckpointWriteError(
        f'Writing the checkpoint of step {step} to {manager.directory} failed '
        f'({type(e).__name__}: {first_line(e)}): is the disk full or the directory read-only? '
        f'The last complete checkpoint, {manager.latest_checkpoint or "none yet"}, is intact: '
        'free some space and run the same command to resume from it.') from e


def training_checkpoint(model, optimizer, **extras):
  """What a run saves: the model, the optimizer (under loss scaling: the inner one, and
  the scale apart, `loss_scale.checkpointed`), the step, and `extras` (the momentum
  network and the memory of --memory_size, `TrainStep.checkpointed`)."""
  return tf.train.Checkpoint(model=model, global_step=optimizer.iterations,
                             **loss_scale.checkpointed(optimizer), **extras)


def make_manager(model, optimizer, model_dir, max_to_keep, **extras):
  return tf.train.CheckpointManager(training_checkpoint(model, optimizer, **extras), model_dir,
                                    max_to_keep=max_to_keep)


def restore_or_initialize(config, model, optimizer, manager, restore_dir=None):
  """Resumes from the latest checkpoint (of `restore_dir`, else the manager's
  directory), or initialises from --checkpoint.

  Returns the step the run starts at.
  """
  directory = restore_dir or manager.directory
  candidates = checkpoints_newest_first(directory)
  latest = resume_from(manager.checkpoint, candidates)
  if latest:
    if config.checkpoint:
      logging.warning('--checkpoint=%s is not used: --model_dir already holds %s and the run '
                      'resumes from it (as the original does). Use a new --model_dir to start '
                      'from --checkpoint.', config.checkpoint, latest)
  elif candidates:
    raise CheckpointMismatchError(
        f'None of the checkpoints listed in {directory}/checkpoint can be read '
        f'({", ".join(candidates)}): they are missing, truncated or damaged. Use a new '
        '--model_dir (or restore the files from a backup).')
  elif config.checkpoint:
    warm_start.initialize_from_checkpoint(model, config.checkpoint, config.variable_schema,
                                          global_step=optimizer.iterations)
    if config.zero_init_logits_layer:
      warm_start.zero_init_logits(model)
  return int(optimizer.iterations.numpy())


def restore(checkpoint, path):
  """Restores `path` into `checkpoint`, every object matched. A checkpoint written without
  float16 loss scaling (float32, bf16; or before `auto` picked float16 on this GPU) resumes
  a mixed_float16 run too: its scale starts afresh."""
  state = getattr(checkpoint, 'loss_scale', None)
  if state is None or any(name.startswith('loss_scale/')
                          for name, _ in tf.train.list_variables(path)):
    checkpoint.restore(path).assert_existing_objects_matched()
    return
  del checkpoint.loss_scale  # Untracked for this restore only: the saves keep it.
  try:
    checkpoint.restore(path).assert_existing_objects_matched()
  finally:
    checkpoint.loss_scale = state
  logging.info('%s holds no float16 loss scale (written in another precision): the scale '
               'starts at %g.', path, float(state.scale.numpy()))


def resume_from(checkpoint, candidates):
  """Restores the newest readable checkpoint of `candidates` (newest first); returns its
  path, or None. A damaged or vanished one is skipped with a warning, so a run whose
  last checkpoint was cut short resumes from the one before."""
  for path in candidates:
    try:
      restore(checkpoint, path)
    except warm_start.DAMAGED_ERRORS as e:
      logging.warning('Cannot read %s (%s: %s): trying the checkpoint before it.', path,
                      type(e).__name__, first_line(e))
      continue
    except (AssertionError, ValueError) as e:
      raise CheckpointMismatchError(
          f'{path} in --model_dir does not fit the model being built (another '
          f'architecture, training mode or --memory_size?): {e}. Use a new --model_dir.') from e
    logging.info('Resuming from %s', path)
    return path
  return None
