"""How many steps the next `tf.function` call runs: a log line every `--log_every_secs`.

The training loop runs steps in multi-step `tf.function` calls and logs after
each call, so the call length sets the pace of the console. A fixed length
(`--steps_per_loop`, what TPU users want for speed) wins over the summary
interval: as in the original, whose loop is `checkpoint_steps` long and writes
summaries once per loop, summaries then come at the end of each call that
reaches or passes a multiple of `--train_summary_steps`. Otherwise the pacer
starts with one step (its time includes tracing and compilation), then sizes
every call from the last measured seconds per step so that it lasts about
`target_seconds`, and stops calls at summary boundaries too, so that every
multiple of `--train_summary_steps` gets a summary (summaries follow every
paced call). A call never crosses a checkpoint boundary, nor the last step.

The proposal is local (it reads this process's clock); under several workers
the multi-step loop runs the chief's (`TrainStep.make_loop`), and `finished`
takes the steps actually run.
"""
import time


class LoopPacer:
  """Call lengths from measured step times; `clock` is injectable for tests."""

  def __init__(self, train_steps, checkpoint_steps, summary_steps=0, target_seconds=30.0,
               fixed_steps=0, clock=time.monotonic):
    self.train_steps = train_steps
    boundaries = (checkpoint_steps,) if fixed_steps else (checkpoint_steps, summary_steps)
    self.boundaries = [b for b in boundaries if b and b > 0]
    self.target_seconds = target_seconds
    self.fixed_steps = fixed_steps
    self.clock = clock
    self.seconds_per_step = None  # Steady rate: from calls after the first.
    self.first_call_seconds = None  # Tracing + compilation + its steps.
    self._started = None
    self.calls = 0

  def limit(self, step):
    """The first boundary after `step` (or the last step): checkpoints, and summaries
    unless the call length is fixed."""
    ends = [(step // b + 1) * b for b in self.boundaries]
    return min([self.train_steps] + ends)

  def next_stop(self, step):
    """The step the next call should end at; starts its timer."""
    if self.fixed_steps:
      n = self.fixed_steps
    elif self.target_seconds <= 0:
      n = self.train_steps
    elif self.calls == 0:
      n = 1
    else:
      per_step = self.seconds_per_step or self.first_call_seconds
      n = max(1, int(self.target_seconds / max(per_step, 1e-9)))
    self._started = self.clock()
    return min(step + n, self.limit(step))

  def finished(self, steps):
    """Records a call of `steps` steps that just returned."""
    seconds = self.clock() - self._started
    if self.calls == 0:
      self.first_call_seconds = seconds
    elif steps > 0:
      self.seconds_per_step = seconds / steps
    self.calls += 1

  @property
  def tracing_seconds(self):
    """First call's time less its steps at the steady rate (None until known)."""
    if self.first_call_seconds is None or self.seconds_per_step is None:
      return None
    return max(self.first_call_seconds - self.seconds_per_step, 0.0)
