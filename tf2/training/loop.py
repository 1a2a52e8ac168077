"""The training loop: restore or initialise, run multi-step loops, log, summarise, checkpoint.

Steps run in multi-step `tf.function` calls (`tf.range`, one host round trip
per call) whose length `tf2/training/pacing.py` chooses: `--steps_per_loop`,
or as many steps as fit in `--log_every_secs`; every worker runs the chief's
choice. After each call the mean metrics go to the log (with images/s and
time left), and to TensorBoard (with the learning rate): after every paced
call, or with fixed-length calls after each call that reached or passed a
multiple of `--train_summary_steps`; the first call's tracing
time is logged once; and a checkpoint is written every `checkpoint_steps` and
at the end. An interrupt
(Ctrl-C, or SIGTERM as sent on preemption) saves a checkpoint of the last
completed step before the run stops, so a restart loses nothing. A loss or a
weight that becomes NaN or infinite (one flag computed on the device inside
each call) stops the run before anything is saved, naming the steps, the
first bad weight and the last (intact) checkpoint. Under mixed_float16 a
step that overflows is skipped by the loss scale, not an error: the call's
metrics leave it out, the log says so, and only MAX_OVERFLOWS of them in a
row stop the run as diverged.
"""
import dataclasses
import math
import signal

from absl import logging
import tensorflow as tf

from tf2.data import input_pipeline
from tf2.errors import DivergenceError
from tf2.training import lr_schedule
from tf2.training import memory
from tf2.training import resume
from tf2.training.pacing import LoopPacer
from tf2.training.progress import Progress
from tf2.training.train_step import TrainStep
from tf2.training.train_step import unpack


# A run has diverged when this many steps in a row overflow float16 (the loss scale has
# fallen by 2^20): a healthy run overflows now and then, and recovers at once.
MAX_OVERFLOWS = 20


@dataclasses.dataclass(frozen=True)
class Plan:
  num_examples: int
  train_steps: int
  epoch_steps: int
  checkpoint_steps: int
  loop_steps: int  # Fixed steps per call; 0: paced by log_every_secs.


def make_plan(config, num_examples):
  """Step counts of a run (original: train steps, epoch steps, checkpoint steps)."""
  steps = lr_schedule.train_steps(num_examples, config.train_epochs,
                                  config.train_batch_size, config.train_steps)
  epoch_steps = max(int(round(num_examples / config.train_batch_size)), 1)
  checkpoint_steps = config.checkpoint_steps or config.checkpoint_epochs * epoch_steps
  checkpoint_steps = max(min(checkpoint_steps, steps), 1)
  if config.steps_per_loop:
    loop_steps = config.steps_per_loop
  elif config.log_every_secs > 0:
    loop_steps = 0
  else:
    loop_steps = min(checkpoint_steps, config.train_summary_steps or checkpoint_steps)
  return Plan(num_examples, steps, epoch_steps, checkpoint_steps, loop_steps)


class Interrupted(KeyboardInterrupt):
  """Raised by the SIGTERM handler so that the loop saves before stopping."""


def _raise_interrupted(signum, frame):
  del frame
  raise Interrupted(f'signal {signum}')


def write_image_summaries(config, source, writer, step, augment, count=3):
  """A few augmented training inputs (each view separately), with the augmentations the
  step makes on the device (`augment`: blur, --color_jitter_on_device)."""
  input_fn = input_pipeline.make_input_fn(source, config, is_training=True,
                                          global_batch_size=count)
  images, _ = next(iter(input_fn()))
  images = augment(images)
  views = [view[..., :3] for view in
           tf.split(images, images.shape[-1] // config.view_channels, axis=-1)]
  with writer.as_default():
    for i, view in enumerate(views):
      tf.summary.image(f'train/augmented_view_{i}', view, step=step, max_outputs=count)


def train(config, model, optimizer, strategy, source, model_dir, on_loop_end=None,
          on_checkpoint=None, teacher=None, restore_dir=None, ema_model=None, trainer=None):
  """Trains until `train_steps`; returns the final step.

  `on_checkpoint(step)` runs after every checkpoint, and before the first step
  of a run that starts at step 0 (the kNN monitor's baseline). `teacher`: the
  frozen teacher of --train_mode=distill. `restore_dir`: where to resume from
  when it is not `model_dir` (a non-chief worker resumes from the chief's).
  `ema_model`: the momentum network of --memory_size (a built SimCLRModel); a
  run that does not resume starts it as a copy of `model` once initialised.
  `trainer`: a `TrainStep` of these (default: made here), for callers that
  inspect its traces.
  """
  plan = make_plan(config, source.num_examples(config.train_split))
  schedule = lr_schedule.schedule_from_config(config, plan.num_examples)
  trainer = trainer or TrainStep(config, model, optimizer, strategy, teacher, ema_model)
  trainer.build_optimizer_state()
  manager = resume.make_manager(model, optimizer, model_dir, config.keep_checkpoint_max,
                                **trainer.checkpointed())
  resumes = bool(resume.checkpoints_newest_first(restore_dir or model_dir))
  step = resume.restore_or_initialize(config, model, optimizer, manager, restore_dir)
  if ema_model is not None and not resumes:
    memory.start_as(ema_model, model)
  logging.info('Training %s from step %d to %d: %d examples, %d steps per epoch, '
               'checkpoint every %d steps, %s.', config.train_mode, step,
               plan.train_steps, plan.num_examples, plan.epoch_steps, plan.checkpoint_steps,
               f'{plan.loop_steps} steps per call' if plan.loop_steps else
               f'a progress line about every {config.log_every_secs:g} s')
  if step >= plan.train_steps:
    return step
  writer = tf.summary.create_file_writer(model_dir)
  if config.train_summary_steps > 0:
    write_image_summaries(config, source, writer, step, trainer.augment)
  dataset = input_pipeline.distributed_dataset(strategy, source, config, is_training=True,
                                               through_service=True)
  iterator = iter(dataset)
  loop = trainer.make_loop()
  if on_checkpoint is not None and step == 0:
    on_checkpoint(step)
  progress = Progress(plan.train_steps, config.train_batch_size, step)
  pacer = LoopPacer(plan.train_steps, plan.checkpoint_steps, config.train_summary_steps,
                    config.log_every_secs, plan.loop_steps)
  previous_handler = _install_sigterm_handler()
  overflows = 0  # Steps in a row that the loss scale skipped.
  shown = False  # Whether a progress line was logged (the first one's interval has tracing).
  try:
    while step < plan.train_steps:
      # The call runs the chief's proposal (the same steps on every worker).
      result = unpack(loop(iterator, tf.constant(pacer.next_stop(step) - step)))
      metrics, ran, finite = result
      pacer.finished(ran)
      stop = step + ran
      overflows = count_overflows(overflows, result, optimizer, manager)
      if not math.isfinite(metrics['total_loss']) or not finite:
        # Only now are the variables read on the host, to name the first bad one.
        bad = ([] if not math.isfinite(metrics['total_loss'])
               else nonfinite(trainer.state_variables()))
        what = (f'{len(bad)} weight(s) became NaN or infinite (first: {bad[0]})' if bad else
                f'The loss became {metrics["total_loss"]}')
        raise DivergenceError(
            f'{what} between steps {step} and {stop}; nothing of it was saved, and the last '
            f'checkpoint ({manager.latest_checkpoint or "none yet"}) is intact. Lower '
            '--learning_rate, or use --precision=float32 if you trained in bfloat16 or float16.')
      previous, step = step, int(optimizer.iterations.numpy())
      if step == previous:  # The loss scale skipped every step of the call: nothing new.
        continue
      logging.info('%s', progress.line(step, metrics, first=not shown))
      shown = True
      if pacer.calls == 2 and pacer.tracing_seconds is not None:
        logging.info('Tracing and compilation took %.1f s (the first call less one steady '
                     'step); images/s excludes it.', pacer.tracing_seconds)
      if summary_due(previous, step, config.train_summary_steps, plan.train_steps,
                     plan.loop_steps > 0):
        with writer.as_default():
          for name, value in metrics.items():
            tf.summary.scalar(f'train/{name}', value, step=step)
          tf.summary.scalar('learning_rate', schedule(step), step=step)
        writer.flush()
      if step % plan.checkpoint_steps == 0 or step >= plan.train_steps:
        resume.save(manager, step)
        if on_checkpoint is not None:
          with progress.paused():  # An evaluation pass: not training's time.
            on_checkpoint(step)
      if on_loop_end is not None:
        on_loop_end(step)
  except KeyboardInterrupt:
    step = int(optimizer.iterations.numpy())
    if nonfinite(trainer.state_variables()):
      logging.warning('Interrupted at step %d with NaN/Inf weights: not saved.', step)
    elif manager.latest_checkpoint is None or not manager.latest_checkpoint.endswith(f'-{step}'):
      path = resume.save(manager, step)
      logging.warning('Interrupted at step %d: saved %s. Run the same command to resume.',
                      step, path)
    raise
  finally:
    if previous_handler is not None:
      signal.signal(signal.SIGTERM, previous_handler)
  return step


def count_overflows(in_a_row, result, optimizer, manager):
  """The steps in a row the loss scale skipped, after a call's `result`; a warning for
  each call that skipped any, and DivergenceError from MAX_OVERFLOWS in a row."""
  if not result.skipped:
    return 0
  _, ran, _ = result
  in_a_row = in_a_row + ran if result.trailing_skips == ran else result.trailing_skips
  scale = float(optimizer.dynamic_scale.numpy())
  logging.warning('%d of the last %d step(s) overflowed float16 and were skipped (no update; '
                  'the step count waits); the loss scale is now %g.', result.skipped, ran,
                  scale)
  if in_a_row >= MAX_OVERFLOWS:
    raise DivergenceError(
        f'{in_a_row} steps in a row overflowed float16 (the loss scale fell to {scale:g}): '
        f'the run diverged, and nothing of it was saved; the last checkpoint '
        f'({manager.latest_checkpoint or "none yet"}) is intact. Lower --learning_rate, or '
        'use --precision=float32.')
  return in_a_row


def summary_due(previous, step, every, train_steps, fixed_calls):
  """Whether to write training summaries after the call from `previous` to `step`:
  never if `every` (--train_summary_steps) is 0; with `fixed_calls` (--steps_per_loop)
  when the call reached or passed a multiple of `every`, or ended training; otherwise
  after every paced call (which also stops at each multiple)."""
  if every <= 0:
    return False
  return not fixed_calls or step // every > previous // every or step >= train_steps


def nonfinite(variables):
  """Paths of the variables holding NaN or Inf (checked before anything is saved)."""
  return [getattr(v, 'path', None) or v.name for v in variables
          if not bool(tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32))))]


def _install_sigterm_handler():
  """SIGTERM -> Interrupted (only possible in the main thread; elsewhere None)."""
  try:
    return signal.signal(signal.SIGTERM, _raise_interrupted)
  except ValueError:
    return None
