"""The original SimCLR tf2 code and ours, side by side on this machine, in one run.

    tfds build cifar10 --data_dir /tmp/cifar_tfds   # once (offline: docs/development.md)
    python -m benchmarks.side_by_side --data_dir /tmp/cifar_tfds --original /path/to/simclr

`--original` is a checkout of github.com/google-research/simclr (only read
and run, never imported). Both implementations run the original README's
CIFAR-10 pretraining command (`recipes.py`: ResNet-18, LARS, real CIFAR-10,
here with `--train_batch_size`, `--mode=train` and `--checkpoint_steps` equal
to the step count, see `command`) as separate processes, each at two step
counts, so that start-up cancels out:

    s/step       = (T(long) - T(short)) / (long - short)
    start-up     = T(short) - short * s/step   (time to the first step: imports,
                   data, model, tracing)

Each run is repeated (`--rounds`, default 2), interleaved between the
implementations, and the fastest run of each length counts. Single runs misled:
the first process on a machine whose file cache is cold spends up to half a
minute more importing TensorFlow and opening the data, which, charged to the
short run alone, once gave the original an impossible 1.15 s/step for ResNet-50
at 224 px (its training step alone takes 3.8 s on random data); and on a shared
2-core VM the same run varies by 5-15% from one minute, or day, to the next.

It prints the machine line and a table with s/step, images/s, start-up and
peak RSS (the largest of its runs). The original runs under tf-keras
(`TF_USE_LEGACY_KERAS=1`). `--precisions float32,mixed_bfloat16` runs ours
once per precision (bf16 only pays where it is native, see tf2/precision.py).
`--resnet_depth 50 --image_size 224 --batch 16 --steps 2,20` measures ResNet-50
on ImageNet-sized views (CIFAR-10 crops resized to 224 px by both); fewer
steps leave the difference within the noise (2 and 8 steps gave 1.35x and
0.98x in two runs).
At the defaults on a 2-core AVX-512 CPU: about 4 minutes per implementation (10 min for
the original, float32 and mixed_bfloat16); with oneDNN capped at AVX2, 6 minutes each.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import recipes
from benchmarks.children import ROOT
from tf2 import hardware


def command(run_py, data_dir, model_dir, batch, steps, extra=(), depth=18, size=32):
  """The README command at `batch`, training only, `steps` steps in one loop.

  `--checkpoint_steps=steps` matters for the original: it runs whole loops of
  checkpoint_steps (default one epoch, 390 steps at batch 128) whatever
  `--train_steps` says. `--mode=train` leaves out the final evaluation, the
  same fixed cost in both, so start-up is the time to the first step.
  """
  flags = recipes.flags_of('cifar10_pretrain', train_batch_size=batch, model_dir=model_dir,
                           resnet_depth=depth, image_size=size, train_steps=steps,
                           checkpoint_steps=steps, mode='train', data_dir=data_dir)
  return [sys.executable, run_py] + flags + list(extra)


_MEASURE = ('import resource, subprocess, sys, time; t = time.time(); '
            'rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, '
            'stderr=subprocess.PIPE, text=True); '
            'print(rc.returncode, time.time() - t, '
            'resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); '
            'sys.stderr.write(rc.stderr[-3000:] if rc.returncode else "")')


def timed_run(argv, cwd, env):
  """(seconds, peak RSS in GB) of one process, measured by a fresh parent."""
  out = subprocess.run([sys.executable, '-c', _MEASURE] + argv, cwd=cwd, env=env,
                       capture_output=True, text=True)
  code, seconds, rss_kb = out.stdout.split()
  if int(code):
    raise SystemExit(f'{" ".join(argv)} failed (exit {code}):\n{out.stderr}')
  return float(seconds), int(rss_kb) / 2**20


def step_and_startup(short_times, long_times, short, long):
  """(s/step, start-up s) from repeated runs of `short` and `long` steps.

  The fastest run of each length counts: the machine's noise only ever adds
  time (a cold file cache, another tenant on the host).
  """
  short_time, long_time = min(short_times), min(long_times)
  per_step = (long_time - short_time) / (long - short)
  return per_step, short_time - short * per_step


def measure(entries, args, short, long):
  """{name: (s/step, start-up, peak RSS GB)} for entries (name, run.py, cwd, env, extra flags).

  Runs are interleaved, round after round: every entry's short run, then every
  entry's long run, so that a slow spell of the machine hits all entries alike.
  """
  times = {name: {short: [], long: []} for name, *_ in entries}
  peaks = {name: 0.0 for name, *_ in entries}
  for round_ in range(1, args.rounds + 1):
    for steps in (short, long):
      for name, run_py, cwd, env, extra in entries:
        with tempfile.TemporaryDirectory() as model_dir:
          seconds, rss = timed_run(
              command(run_py, args.data_dir, model_dir, args.batch, steps, extra,
                      args.resnet_depth, args.image_size), cwd, env)
        times[name][steps].append(seconds)
        peaks[name] = max(peaks[name], rss)
        print(f'  round {round_}, {name}: {steps} steps in {seconds:.1f} s', flush=True)
  return {name: step_and_startup(t[short], t[long], short, long) + (peaks[name],)
          for name, t in times.items()}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--original', default=None,
                      help='checkout of google-research/simclr; omit to measure ours only')
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', default='6,26', help='the two step counts')
  parser.add_argument('--rounds', type=int, default=2,
                      help='runs of each length per implementation; the fastest counts')
  parser.add_argument('--precisions', default='float32',
                      help='comma-separated --precision values to run ours with '
                           '(e.g. float32,mixed_bfloat16 where bf16 is native)')
  parser.add_argument('--resnet_depth', type=int, default=18,
                      help='e.g. 50 with --image_size 224 --batch 16 for ResNet-50 memory')
  parser.add_argument('--image_size', type=int, default=32,
                      help='CIFAR-10 crops are resized to this size (224: ImageNet-sized views)')
  args = parser.parse_args()
  short, long = sorted(int(s) for s in args.steps.split(','))
  print(hardware.describe(), flush=True)
  print(f'README CIFAR-10 pretraining command, batch {args.batch}, {short} and {long} steps, '
        f'ResNet-{args.resnet_depth} at {args.image_size} px', flush=True)
  entries = []
  if args.original:
    env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='2')
    orig_dir = os.path.join(args.original, 'tf2')
    entries.append(('the original tf2 code (tf-keras)', os.path.join(orig_dir, 'run.py'),
                    orig_dir, env, []))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  for precision in args.precisions.split(','):
    entries.append((f'ours, {precision}', os.path.join(ROOT, 'run.py'), ROOT, env,
                    [f'--precision={precision}']))
  runs = list(measure(entries, args, short, long).items())
  print('\n| | s/step | images/s | start-up | peak RSS |\n|---|---|---|---|---|')
  for name, (per_step, startup, peak) in runs:
    if per_step > 0:
      print(f'| {name} | {per_step:.2f} | {args.batch / per_step:.1f} | {startup:.0f} s | '
            f'{peak:.2f} GB |')
    else:  # The longer run was not slower: fixed costs vary more than the steps cost.
      print(f'| {name} | n/a | n/a | n/a | {peak:.2f} GB |')
  if args.original and runs[0][1][0] > 0:
    for name, (per_step, _, _) in runs[1:]:
      if per_step > 0:
        print(f'{name}: {runs[0][1][0] / per_step:.2f}x the original\'s images/s')


if __name__ == '__main__':
  started = time.time()
  main()
  print(f'({time.time() - started:.0f} s in all)')
