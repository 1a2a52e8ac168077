"""Pretraining variants side by side on CIFAR-10: what micro-batches and the memory learn.

    python -m benchmarks.learning_side_by_side --data_dir DIR --experiment microbatch
    python -m benchmarks.learning_side_by_side --data_dir DIR --experiment memory

DIR is a prepared TFDS `cifar10` (docs/data.md#tfds-datasets). Every run is
the original README's CIFAR-10 pretraining command (ResNet-18, 32 px, LARS,
temperature 0.5, no blur) with the paper's square-root learning-rate scaling
(rate = 0.075 x sqrt(batch), appendix B.1) and warm-up over the first tenth of
the run, for --epochs epochs; augmentation is unseeded in every run. Each run
ends with the kNN monitor (k = 200, a 10,000-image train bank, test split) and
the linear probe (logistic regression on frozen train features, test split,
against a randomly initialised encoder).

--experiment microbatch:
  - `small`: batch 128, unchunked;
  - `big`: batch 1024 in micro-batches of 128 (--microbatch_size);
  - `small, equal time`: batch 128 for as long as `big` trains.
--experiment memory (SimCLRv2's memory, --memory_size):
  - `plain`: batch 128;
  - `memory`: batch 128 with --memory K (default 16,384) and --decay d
    (default 0.99: an EMA time constant of 100 steps, for runs of hundreds of
    steps; the paper's 0.999 suits its 100,000s), the same step count.

Before the runs, the variants' steps are timed side by side (interleaved
rounds on in-memory inputs); equal-time step counts come from those times,
not from the runs' wall clocks, which other work on the machine would skew.
The machine line comes first; run logs and model directories stay under --out.
"""
import argparse
import json
import os
import subprocess
import time

from benchmarks import microbatch_memory
from benchmarks import side_by_side
from benchmarks.children import ROOT
from tf2 import hardware, precision
from tf2.training import lr_schedule

CIFAR10_TRAIN = 50000
SQRT_BASE_RATE = 0.075


def time_steps(variants, precision_name, rounds):
  """{name: best s/step}, {name: every round's s/step} of `variants` {name: (batch,
  microbatch, Config fields)}, timed in interleaved rounds."""
  times = microbatch_memory.interleaved_times(
      {name: microbatch_memory.make_step(batch, microbatch, precision_name, **fields)
       for name, (batch, microbatch, fields) in variants.items()}, rounds)
  return {name: min(t) for name, t in times.items()}, times


def pretrain(name, args, batch, steps, flags):
  """Runs run.py with extra `flags`; returns (its result.json, wall seconds)."""
  model_dir = os.path.join(args.out, name.replace(' ', '_').replace(',', ''))
  epochs = steps * batch / CIFAR10_TRAIN
  extra = [f'--learning_rate={SQRT_BASE_RATE}', '--learning_rate_scaling=sqrt',
           f'--warmup_epochs={epochs / 10:.4f}', '--knn_eval=True', '--linear_probe=True',
           f'--precision={args.precision}'] + list(flags)
  argv = side_by_side.command(os.path.join(ROOT, 'run.py'), args.data_dir, model_dir, batch,
                              steps, extra)
  print(f'{name}: {" ".join(argv[1:])}', flush=True)
  start = time.time()
  with open(model_dir + '.log', 'w') as log:
    code = subprocess.run(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT).returncode
  seconds = time.time() - start
  if code:
    raise SystemExit(f'{name} failed (exit {code}); see {model_dir}.log')
  with open(os.path.join(model_dir, 'result.json')) as f:
    return json.load(f), seconds


def plan(args):
  """({timed variant: (batch, microbatch, Config fields)}, a function of the best
  s/step giving the runs [(name, timed variant, batch, steps, run.py flags)])."""
  def steps(batch):
    return lr_schedule.train_steps(CIFAR10_TRAIN, args.epochs, batch)

  if args.experiment == 'microbatch':
    variants = {'small': (args.small, 0, {}), 'big': (args.big, args.microbatch, {})}

    def runs(best):
      chunked = [f'--microbatch_size={args.microbatch}']
      equal = round(steps(args.big) * best['big'] / best['small'])
      return [('small', 'small', args.small, steps(args.small), []),
              ('big', 'big', args.big, steps(args.big), chunked),
              ('small, equal time', 'small', args.small, equal, [])]
  else:
    fields = dict(memory_size=args.memory, momentum_decay=args.decay)
    variants = {'plain': (args.small, 0, {}), 'memory': (args.small, 0, fields)}

    def runs(best):
      del best
      memory = [f'--memory_size={args.memory}', f'--momentum_decay={args.decay}']
      return [('plain', 'plain', args.small, steps(args.small), []),
              ('memory', 'memory', args.small, steps(args.small), memory)]
  return variants, runs


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--experiment', choices=['microbatch', 'memory'], required=True)
  parser.add_argument('--epochs', type=int, default=1)
  parser.add_argument('--small', type=int, default=128)
  parser.add_argument('--big', type=int, default=1024)
  parser.add_argument('--microbatch', type=int, default=128)
  parser.add_argument('--memory', type=int, default=16384)
  parser.add_argument('--decay', type=float, default=0.99)
  parser.add_argument('--precision', default='auto')
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--out', default='/tmp/learning_side_by_side')
  args = parser.parse_args()
  hw = hardware.detect()
  print(hardware.describe(hw), flush=True)
  args.precision = precision.choose(args.precision, hw).precision
  args.out = os.path.join(args.out, args.experiment)
  os.makedirs(args.out, exist_ok=True)

  variants, make_runs = plan(args)
  best, all_times = time_steps(variants, args.precision, args.rounds)
  first = next(iter(best))
  print(f'{args.precision}; s/step, best of {args.rounds} interleaved rounds: ' + ', '.join(
      f'{name} {t:.2f} ({t / best[first]:.2f}x {first})' for name, t in best.items()) +
        f' {json.dumps(all_times)}', flush=True)

  rows = []
  for name, variant, batch, steps, flags in make_runs(best):
    result, seconds = pretrain(name, args, batch, steps, flags)
    rows.append((name, variant, batch, steps, seconds, result))
    print(f'{name}: done in {seconds / 60:.1f} min: {json.dumps(result)}', flush=True)

  print(f'\n| run | batch | steps | epochs | training time, in {first} steps | kNN top-1 '
        '| linear probe top-1 (random encoder) | wall time incl. start-up and evaluation |')
  print('|---|---|---|---|---|---|---|---|')
  for name, variant, batch, steps, seconds, result in rows:
    print(f'| {name} | {batch} | {steps} | {steps * batch / CIFAR10_TRAIN:.2f} '
          f'| {steps * best[variant] / best[first]:.0f} '
          f'| {100 * result["eval/knn_top_1"]:.1f}% '
          f'| {100 * result["linear_probe/trained_encoder_top_1"]:.1f}% '
          f'({100 * result["linear_probe/random_encoder_top_1"]:.1f}%) | {seconds / 60:.1f} min |')


if __name__ == '__main__':
  main()
