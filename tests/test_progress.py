"""Progress lines: images/s over the last interval and the time left at that rate."""
from tf2.training.progress import PassProgress, Progress, format_duration


def test_rate_and_time_left_follow_the_last_interval():
  now = [100.0]
  progress = Progress(total_steps=100, images_per_step=64, clock=lambda: now[0])
  now[0] += 50.0  # 10 steps incl. tracing
  line = progress.line(10, {'total_loss': 5.0})
  assert 'step 10/100 (10.0%)' in line and 'total_loss 5' in line
  assert '12.8 images/s' in line and 'ETA 7m30s' in line  # 90 steps * 5 s
  now[0] += 20.0  # 10 steps at 2 s
  line = progress.line(20, {'total_loss': 4.0})
  assert '32.0 images/s' in line and 'ETA 2m40s' in line


def test_durations():
  assert format_duration(59) == '59s'
  assert format_duration(61) == '1m01s'
  assert format_duration(3 * 3600 + 120) == '3h02m'


def test_the_first_line_shows_the_tracing_time_not_a_rate():
  now = [0.0]
  progress = Progress(total_steps=100, images_per_step=64, clock=lambda: now[0])
  now[0] += 42.0
  line = progress.line(1, {'total_loss': 5.0}, first=True)
  assert line.endswith('first call with tracing: 42s') and 'images/s' not in line
  now[0] += 4.0
  assert '16.0 images/s' in progress.line(2, {'total_loss': 5.0})


def test_time_paused_for_an_evaluation_counts_neither_in_the_rate_nor_the_eta():
  now = [0.0]
  progress = Progress(total_steps=100, images_per_step=64, clock=lambda: now[0])
  now[0] += 20.0
  progress.line(10, {'total_loss': 5.0}, first=True)
  with progress.paused():
    now[0] += 100.0  # A kNN pass.
  now[0] += 20.0  # 10 steps at 2 s.
  line = progress.line(20, {'total_loss': 4.0})
  assert '32.0 images/s' in line and 'ETA 2m40s' in line


def test_a_pass_logs_every_interval_with_the_time_left_and_a_short_pass_not_at_all():
  now, lines = [0.0], []
  log = lambda fmt, *args: lines.append(fmt % args)
  short = PassProgress('kNN bank', 1000, 30.0, clock=lambda: now[0], log=log)
  for _ in range(10):
    now[0] += 2.0
    short.advance(100)
  assert not lines  # 20 s: shorter than the interval.
  long = PassProgress('kNN bank', 1000, 30.0, clock=lambda: now[0], log=log)
  for _ in range(10):
    now[0] += 10.0
    long.advance(100)
  # Lines at 30, 60 and 90 s: 10 images/s, so 70, 40 and 10 s left.
  assert lines == ['kNN bank: 300/1000 images (30%), 10.0 images/s, 1m10s left',
                   'kNN bank: 600/1000 images (60%), 10.0 images/s, 40s left',
                   'kNN bank: 900/1000 images (90%), 10.0 images/s, 10s left']
