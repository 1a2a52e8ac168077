"""Call lengths chosen by the pacer, with a fake clock."""
from tf2.training.pacing import LoopPacer


class FakeTraining:
  """Runs the pacer against a simulated step time and tracing cost."""

  def __init__(self, pacer, clock, step_seconds, tracing_seconds):
    self.pacer, self.clock = pacer, clock
    self.step_seconds, self.tracing_seconds = step_seconds, tracing_seconds

  def run(self, start=0):
    step, calls = start, []
    while step < self.pacer.train_steps:
      stop = self.pacer.next_stop(step)
      self.clock[0] += (stop - step) * self.step_seconds + (
          self.tracing_seconds if not calls else 0)
      self.pacer.finished(stop - step)
      calls.append((step, stop, self.clock[0]))
      step = stop
    return calls


def make(step_seconds, tracing, train_steps=1000, boundaries=(500, 100), **kwargs):
  """`boundaries`: (checkpoint steps, summary steps)."""
  clock = [0.0]
  pacer = LoopPacer(train_steps, *boundaries, clock=lambda: clock[0], **kwargs)
  return FakeTraining(pacer, clock, step_seconds, tracing), pacer


def test_slow_steps_give_a_line_every_target_seconds():
  sim, pacer = make(step_seconds=3.0, tracing=20.0, train_steps=500, boundaries=(200, 100))
  calls = sim.run()
  lengths = [stop - start for start, stop, _ in calls]
  assert lengths[:3] == [1, 1, 10]  # Trace, one steady step, then 30 s / 3 s.
  assert calls[0][2] == 23.0  # The first line comes after tracing and one step.
  # Then 10 steps a call, shorter only where a call stops at a summary boundary.
  assert all(n == 10 or stop % 100 == 0 for n, (_, stop, _) in zip(lengths[2:], calls[2:]))
  gaps = [b[2] - a[2] for a, b in zip(calls, calls[1:])]
  assert max(gaps) <= 30.0
  assert abs(pacer.tracing_seconds - 20.0) < 1e-9


def test_fast_steps_run_up_to_the_next_boundary():
  sim, _ = make(step_seconds=0.01, tracing=5.0, train_steps=1000, boundaries=(500, 100))
  calls = sim.run()
  stops = [stop for _, stop, _ in calls]
  assert stops == [1, 6, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]


def test_calls_never_cross_checkpoint_or_summary_boundaries():
  sim, _ = make(step_seconds=0.7, tracing=3.0, train_steps=260, boundaries=(78, 50))
  calls = sim.run()
  for start, stop, _ in calls:
    for b in (78, 50):
      assert (start // b) == ((stop - 1) // b), (start, stop, b)
  assert calls[-1][1] == 260


def test_the_pace_follows_a_change_of_speed():
  sim, pacer = make(step_seconds=1.0, tracing=0.0, train_steps=10000, boundaries=(0, 0))
  step = 0
  for _ in range(4):
    stop = pacer.next_stop(step)
    sim.clock[0] += stop - step
    pacer.finished(stop - step)
    step = stop
  assert pacer.next_stop(step) - step == 30
  pacer.finished(0)  # (an empty call does not change the rate)
  # The machine becomes 3x slower (another job).
  stop = pacer.next_stop(step)
  sim.clock[0] += 3.0 * (stop - step)
  pacer.finished(stop - step)
  assert pacer.next_stop(stop) - stop == 10


def test_fixed_steps_per_loop_wins():
  sim, _ = make(step_seconds=3.0, tracing=20.0, train_steps=100, boundaries=(50, 0),
                fixed_steps=20)
  assert [stop for _, stop, _ in sim.run()] == [20, 40, 50, 70, 90, 100]


def test_fixed_steps_per_loop_wins_over_a_shorter_summary_interval():
  """Only checkpoints and the last step shorten a fixed-length call, not summaries."""
  sim, _ = make(step_seconds=0.1, tracing=1.0, train_steps=60, boundaries=(60, 10),
                fixed_steps=30)
  assert [stop for _, stop, _ in sim.run()] == [30, 60]
  sim, _ = make(step_seconds=0.1, tracing=1.0, train_steps=100, boundaries=(40, 10),
                fixed_steps=30)
  assert [stop for _, stop, _ in sim.run()] == [30, 40, 70, 80, 100]


def test_no_target_runs_boundary_to_boundary():
  sim, _ = make(step_seconds=3.0, tracing=20.0, train_steps=100, boundaries=(30, 0),
                target_seconds=0)
  assert [stop for _, stop, _ in sim.run()] == [30, 60, 90, 100]
