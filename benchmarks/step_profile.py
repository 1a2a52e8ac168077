"""Timing a training step and where its time goes: op time by type from a tf.profiler trace.

Shared by `train_step_speed.py` (ours) and `original_step_speed.py` (the
original's step), so that both are timed and read the same way. A step
function here is `run_steps(n)`: one call that runs n training steps.
`pretraining_steps` makes ours, for them and for `microbatch_memory.py`.
"""
import collections
import glob
import os
import tempfile
import time

import tensorflow as tf

import recipes

NUM_CLASSES = 10  # CIFAR-10's, for the linear-eval head


def pretraining_steps(batch, **fields):
  """run_steps(n) -> the loop's metrics: n steps of the README's CIFAR-10 pretraining
  (`recipes`) at `batch`, one device, on one random batch of two views held in memory
  (the model step alone: no input pipeline, no summaries). `fields`: the Config fields
  varied, e.g. precision, resnet_base_width, microbatch_size, memory_size."""
  # Imported here: the original's step is timed through this module too, in a process
  # (original_step_speed.py's worker) that loads tf-keras and none of this project's model.
  # pylint: disable=g-import-not-at-top
  from tf2.models.model import SimCLRModel
  from tf2.training.optimizers import build_optimizer
  from tf2.training.train_step import TrainStep
  # pylint: enable=g-import-not-at-top
  config = recipes.config('cifar10_pretrain', train_batch_size=batch, **fields).validate()
  strategy = tf.distribute.get_strategy()
  model = SimCLRModel(config, NUM_CLASSES).build_for()
  ema = SimCLRModel(config, NUM_CLASSES).build_for() if config.memory_size else None
  step = TrainStep(config, model, build_optimizer(config, 0.1), strategy, ema_model=ema)
  step.build_optimizer_state()
  size = config.image_size
  data = tf.data.Dataset.from_tensors((tf.random.uniform([batch, size, size, 6]),
                                       tf.zeros([batch], tf.int64))).repeat()
  iterator, loop = iter(data), step.make_loop()
  return lambda n: loop(iterator, tf.constant(n))


def matmul_gflops(n=4096, repeats=5):
  """Achieved float32 GFLOP/s of an n x n matmul on the default device."""
  a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
  product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
  product().numpy()
  start = time.time()
  for _ in range(repeats):
    product().numpy()
  return 2 * n**3 * repeats / (time.time() - start) / 1e9


def op_seconds(logdir, steps):
  """{op type: seconds per step} from the host trace that tf.profiler wrote to `logdir`."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  space = xplane_pb2.XSpace()
  path = sorted(glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True))[-1]
  with open(path, 'rb') as f:
    space.ParseFromString(f.read())
  seconds = collections.Counter()
  for plane in space.planes:
    if not plane.name.endswith('host:CPU'):
      continue
    for line in plane.lines:
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        # Kernel events are named '<op name>:<op type>'; those inside the step
        # function's loop carry its 'while/' prefix (the rest are wrappers).
        if name.startswith('while/') and ':' in name:
          seconds[name.rsplit(':', 1)[1]] += event.duration_ps / 1e12 / steps
  return seconds


def print_op_table(by_op, label, rows=12):
  """Prints seconds per step by op type, largest first, with the total."""
  total = sum(by_op.values())
  print(f'op time per step (executor threads, {label}): {total:.2f} s')
  for op, sec in by_op.most_common(rows):
    print(f'  {sec:7.3f} s  {100 * sec / total:5.1f}%  {op}')


def seconds_per_step(run_steps, steps):
  """Wall seconds per step of `run_steps(steps)`, after a 1-step call that traces and warms up."""
  run_steps(1)
  start = time.time()
  run_steps(steps)
  return (time.time() - start) / steps


def traced_op_seconds(run_steps, steps=2):
  """{op type: seconds per step} of `run_steps(steps)`, traced with tf.profiler."""
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    run_steps(steps)
    tf.profiler.experimental.stop()
    return op_seconds(logdir, steps)


def profile_ops(run_steps, label, steps=2):
  """Traces `run_steps(steps)` with tf.profiler and prints its op table."""
  print_op_table(traced_op_seconds(run_steps, steps), label)
