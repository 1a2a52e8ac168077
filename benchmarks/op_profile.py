"""Where a training step's time goes: op time by type from a tf.profiler trace, and the matmul rate.

Shared by `train_step_speed.py` (ours) and `original_step_speed.py` (the
original's step), so that both are read the same way.
"""
import collections
import glob
import os
import time

import tensorflow as tf


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
