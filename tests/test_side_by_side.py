"""benchmarks/side_by_side.py: the command both implementations run measures what it says."""
import shlex

from benchmarks import side_by_side
from tests.test_run import ORIGINAL_FLAGS, parse


def test_command_runs_exactly_the_steps_asked_in_one_loop_and_no_evaluation():
  # The original loops over whole `checkpoint_steps` blocks (one epoch by default,
  # whatever --train_steps says) and evaluates after training in the default mode.
  argv = side_by_side.command('run.py', '/data', '/tmp/m', 128, 26)
  config = parse(shlex.join(argv))
  assert config.train_steps == 26 and config.checkpoint_steps == 26
  assert config.mode == 'train' and config.train_batch_size == 128
  assert (config.resnet_depth, config.image_size, config.dataset) == (18, 32, 'cifar10')
  assert config.model_dir == '/tmp/m' and config.data_dir == '/data'


def test_command_uses_only_flags_the_original_defines():
  argv = side_by_side.command('run.py', '/data', '/tmp/m', 16, 6, depth=50, size=224)
  names = {word[2:].split('=')[0] for word in argv[2:]}
  assert names <= set(ORIGINAL_FLAGS)
  config = parse(shlex.join(argv))
  assert (config.resnet_depth, config.image_size, config.train_batch_size) == (50, 224, 16)


def test_the_fastest_run_of_each_length_counts():
  # 2 steps take 30 s and 6 steps 46 s once warm: 4 s/step, 22 s to the first step.
  # A cold first process adds 14 s to one short run, a busy host 5 s to one long run.
  per_step, startup = side_by_side.step_and_startup([44.0, 30.0], [46.0, 51.0], 2, 6)
  assert abs(per_step - 4.0) < 1e-9 and abs(startup - 22.0) < 1e-9
  cold_only, _ = side_by_side.step_and_startup([44.0], [46.0], 2, 6)
  assert cold_only < 1.0  # what a single cold short run would have claimed


def test_runs_interleave_the_implementations_and_keep_the_fastest(monkeypatch):
  calls = []
  # original: 4 s/step, ours: 2 s/step; the first run of each is 10 s slower (cold cache).
  rate = {'orig/run.py': 4.0, 'ours/run.py': 2.0}

  def fake_run(argv, cwd, env):
    steps = int(next(w for w in argv if w.startswith('--train_steps=')).split('=')[1])
    calls.append((argv[1], steps))
    cold = 10.0 if sum(c[0] == calls[-1][0] for c in calls) == 1 else 0.0
    return 20.0 + cold + rate[calls[-1][0]] * steps, len(calls) / 10

  monkeypatch.setattr(side_by_side, 'timed_run', fake_run)
  args = side_by_side.argparse.Namespace(rounds=2, data_dir='/d', batch=8, resnet_depth=18,
                                         image_size=32)
  entries = [('original', 'orig/run.py', '.', {}, []), ('ours', 'ours/run.py', '.', {}, [])]
  results = side_by_side.measure(entries, args, 2, 6)
  assert calls == [('orig/run.py', 2), ('ours/run.py', 2), ('orig/run.py', 6),
                   ('ours/run.py', 6)] * 2
  assert [round(v, 6) for v in results['original'][:2]] == [4.0, 20.0]
  assert [round(v, 6) for v in results['ours'][:2]] == [2.0, 20.0]
  assert results['ours'][2] == 0.8  # the largest peak RSS of its runs
