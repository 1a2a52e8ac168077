"""Peak memory and step time of pretraining with and without --microbatch_size.

    python -m benchmarks.microbatch_memory [--batches 128,512,2048,4096]
        [--microbatch 128] [--time_batch 512] [--rounds 3]

The original README's CIFAR-10 pretraining (`recipes.py`: ResNet-18 at 32 px,
width 64, two views, LARS, the linear-eval head), float32, on random inputs
already in memory, one device. Each (batch, micro-batch)
runs in its own process, which reports its peak resident memory (VmHWM)
after one training step, and its resident memory before the step (the
model, the optimizer and the input). An unchunked batch runs only if a
straight line through the unchunked batches measured before it projects a
peak below 80% of the memory available now; otherwise the projection is
printed, marked as such.

Then one process holds both steps at --time_batch and times them in
interleaved rounds (unchunked, chunked, unchunked, ...), after a warm-up
step of each; the ratio is what to read, the machine drifts between runs.
The machine line comes first.
"""
import argparse
import json
import time

from benchmarks import children


def status_kib(field):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(field + ':'):
        return int(line.split()[1])
  raise KeyError(field)


def available_gib():
  with open('/proc/meminfo') as f:
    for line in f:
      if line.startswith('MemAvailable:'):
        return int(line.split()[1]) / 2**20
  raise KeyError('MemAvailable')


def make_step(batch, microbatch, precision='float32', **fields):
  """A function running one pretraining step at `batch` in chunks of `microbatch` (0:
  unchunked) on an in-memory batch (`step_profile.pretraining_steps`; `fields`: more
  Config fields, e.g. memory_size)."""
  # Imported here: the parent process, which reads the memory available, loads no TensorFlow.
  from benchmarks import step_profile  # pylint: disable=g-import-not-at-top
  run_steps = step_profile.pretraining_steps(batch, precision=precision,
                                             microbatch_size=microbatch, **fields)
  return lambda: float(run_steps(1)['total_loss'])


def child_memory(batch, microbatch):
  run = make_step(batch, microbatch)
  before = status_kib('VmRSS')
  start = time.time()
  run()
  print(json.dumps({'rss_before_gib': before / 2**20, 'peak_gib': status_kib('VmHWM') / 2**20,
                    'first_step_s': time.time() - start}))


def interleaved_times(runs, rounds):
  """{name: seconds of each round} of the functions `runs` {name: run}, after one
  warm-up call each (tracing), in interleaved rounds."""
  for run in runs.values():
    run()
  times = {name: [] for name in runs}
  for _ in range(rounds):
    for name, run in runs.items():
      start = time.time()
      run()
      times[name].append(time.time() - start)
  return times


def child_timing(batch, microbatch, rounds):
  print(json.dumps(interleaved_times(
      {'plain': make_step(batch, 0), 'chunked': make_step(batch, microbatch)}, rounds)))


def in_child(*args):
  """Runs this benchmark with `args` in a new process; returns its last stdout line as JSON."""
  return children.run_json('benchmarks.microbatch_memory', args, TF_CPP_MIN_LOG_LEVEL='2')


def projected_peak(measured, batch):
  """A straight line through the (batch, peak GiB) points measured; None below two points."""
  if len(measured) < 2:
    return None
  (b0, p0), (b1, p1) = measured[-2], measured[-1]
  return p0 + (p1 - p0) * (batch - b0) / (b1 - b0)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--batches', default='128,512,2048,4096')
  parser.add_argument('--microbatch', type=int, default=128)
  parser.add_argument('--time_batch', type=int, default=512)
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--child', choices=['memory', 'timing'])
  parser.add_argument('--batch', type=int)
  args = parser.parse_args()
  if args.child == 'memory':
    return child_memory(args.batch, args.microbatch)
  if args.child == 'timing':
    return child_timing(args.batch, args.microbatch, args.rounds)

  from tf2 import hardware  # pylint: disable=g-import-not-at-top
  print(hardware.describe(), f'{available_gib():.1f} GiB available', flush=True)
  print(f'ResNet-18, 32 px, two views, float32, one device; chunks of {args.microbatch} '
        'images; peak resident memory after one step (resident before it)', flush=True)
  measured = []
  for batch in [int(b) for b in args.batches.split(',')]:
    for microbatch in (0, args.microbatch):
      label = f'batch {batch:5d}, ' + (f'--microbatch_size={microbatch}' if microbatch
                                        else 'unchunked')
      if microbatch == 0:
        projection = projected_peak(measured, batch)
        if projection is not None and projection > 0.8 * available_gib():
          print(f'{label:>40}: not run, projected {projection:.1f} GiB from the unchunked '
                f'batches above > 80% of {available_gib():.1f} GiB available', flush=True)
          continue
      elif batch % microbatch:
        continue
      result = in_child('--child', 'memory', '--batch', str(batch),
                        '--microbatch', str(microbatch))
      if microbatch == 0:
        measured.append((batch, result['peak_gib']))
      print(f'{label:>40}: {result["peak_gib"]:5.2f} GiB ({result["rss_before_gib"]:.2f} '
            f'before), first step {result["first_step_s"]:.0f} s with tracing', flush=True)
  times = in_child('--child', 'timing', '--batch', str(args.time_batch),
                   '--microbatch', str(args.microbatch), '--rounds', str(args.rounds))
  plain, chunked = min(times['plain']), min(times['chunked'])
  print(f'seconds per step at batch {args.time_batch}, best of {args.rounds} interleaved '
        f'rounds: unchunked {plain:.2f}, --microbatch_size={args.microbatch} {chunked:.2f}: '
        f'{chunked / plain:.2f}x (all rounds: {json.dumps(times)})', flush=True)


if __name__ == '__main__':
  main()
