"""Progress lines a person can follow: step, loss, images per second, time left."""
import time


def format_duration(seconds):
  seconds = int(max(seconds, 0))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m'
  if minutes:
    return f'{minutes}m{seconds:02d}s'
  return f'{seconds}s'


class Progress:
  """Throughput over the last interval between `line()` calls, and the time left at that rate."""

  def __init__(self, total_steps, images_per_step, start_step=0, clock=time.monotonic):
    self.total_steps = total_steps
    self.images_per_step = images_per_step
    self.clock = clock
    self._last_step = start_step
    self._last_time = clock()
    self.seconds_per_step = 0.0

  def line(self, step, metrics, first=False):
    """`first`: the interval includes tracing, so no rate or ETA is shown yet."""
    now = self.clock()
    steps, seconds = step - self._last_step, now - self._last_time
    self._last_step, self._last_time = step, now
    if steps > 0:
      self.seconds_per_step = seconds / steps
    rate = self.images_per_step / self.seconds_per_step if self.seconds_per_step else 0.0
    remaining = (self.total_steps - step) * self.seconds_per_step
    shown = ' | '.join(f'{k} {v:.4g}' for k, v in metrics.items())
    head = f'step {step}/{self.total_steps} ({100.0 * step / self.total_steps:.1f}%) | {shown}'
    if first:
      return f'{head} | first call with tracing: {format_duration(seconds)}'
    return f'{head} | {rate:.1f} images/s | ETA {format_duration(remaining)}'
