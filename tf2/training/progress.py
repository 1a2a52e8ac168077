"""Progress lines a person can follow: step, loss, images per second, time left.

`Progress` follows training; `PassProgress` follows a pass over a split (an
evaluation, the kNN monitor's features, the linear probe's), so that no pass
longer than the progress interval runs silent.
"""
import contextlib
import time

from absl import logging


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

  @contextlib.contextmanager
  def paused(self):
    """Time spent inside (an evaluation pass between calls) counts in neither images/s nor
    the time left: they are training's."""
    start = self.clock()
    try:
      yield
    finally:
      self._last_time += self.clock() - start


class PassProgress:
  """Logs `what: done/total images (p%), rate, time left` every `interval` seconds of a
  pass over `total` images; a pass shorter than `interval` logs nothing (0: never)."""

  def __init__(self, what, total, interval, clock=time.monotonic, log=logging.info):
    self.what, self.total, self.interval = what, total, interval
    self.clock, self.log = clock, log
    self.done = 0
    self._start = self._last = clock()

  def advance(self, count):
    """`count` more images done."""
    self.done += count
    now = self.clock()
    if self.interval <= 0 or now - self._last < self.interval or not self.done:
      return
    self._last = now
    rate = self.done / max(now - self._start, 1e-9)
    left = max(self.total - self.done, 0) / rate
    self.log('%s: %d/%d images (%.0f%%), %.1f images/s, %s left', self.what, self.done,
             self.total, 100.0 * self.done / max(self.total, 1), rate, format_duration(left))
