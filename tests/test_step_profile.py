"""benchmarks/step_profile.py: op time by type is read from a real tf.profiler trace."""
import collections

import tensorflow as tf

from benchmarks import step_profile


def test_op_seconds_counts_the_ops_inside_the_step_loop_per_step(tmp_path):
  a = tf.random.normal([256, 256])

  @tf.function
  def loop(steps):
    x = a
    for _ in tf.range(steps):
      x = tf.nn.relu(tf.matmul(x, a)) / 256.0
    return tf.reduce_sum(x)  # outside the loop: not counted

  loop(tf.constant(1))
  tf.profiler.experimental.start(str(tmp_path))
  loop(tf.constant(4))
  tf.profiler.experimental.stop()
  by_op = step_profile.op_seconds(str(tmp_path), 4)
  matmul = [op for op in by_op if op.endswith('MatMul')]  # '_MklMatMul' under oneDNN
  assert len(matmul) == 1 and 'Relu' in by_op
  assert 'Sum' not in by_op
  assert all(seconds > 0 for seconds in by_op.values())
  # Per step: the trace's total over the four steps, divided by four.
  total = step_profile.op_seconds(str(tmp_path), 1)
  assert abs(total[matmul[0]] - 4 * by_op[matmul[0]]) < 1e-9
  assert by_op[matmul[0]] < 0.5  # a 256^3 matmul takes far less than a second


def test_print_op_table_lists_the_largest_first_with_shares(capsys):
  step_profile.print_op_table(collections.Counter({'Conv2D': 3.0, 'Relu': 1.0}), 'float32')
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == 'op time per step (executor threads, float32): 4.00 s'
  assert lines[1].split() == ['3.000', 's', '75.0%', 'Conv2D']
  assert lines[2].split() == ['1.000', 's', '25.0%', 'Relu']


def test_seconds_per_step_warms_up_with_one_step_then_times_the_rest():
  calls = []
  seconds = step_profile.seconds_per_step(calls.append, 5)
  assert calls == [1, 5] and 0 <= seconds < 0.1
