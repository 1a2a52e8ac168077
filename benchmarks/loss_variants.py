"""NT-Xent against the generalized loss's four variants on CIFAR-10, with 1- and 3-layer heads.

    python -m benchmarks.loss_variants --data_dir DIR --out FILE.json [--runs 2]
        [--heads 1 3] [--steps 150] [-- FLAGS...]

The paper's first finding (section 3, Fig. 1): the variants of the
generalized contrastive loss perform alike with a deep projection head. Each
run is one `run.py` process of the recipe `flagfiles/cifar10_convnet.cfg`
(the small ConvNet, SimCLR's CIFAR-10 views, Adam) for `--steps` steps, with
the loss's flags, `--num_proj_layers`, the kNN monitor and the linear probe
(logistic regression on frozen features, against a random encoder), plus
any run.py FLAGS given after `--`. `--runs` repeats each setting with a new
random initialisation and data order, so that the spread between repeats of
one setting says how close "close" is. Prints the machine line, a line per
run, then the table of means and spreads; writes every run to FILE.json.
"""
import argparse
import json
import os

import numpy as np

import recipes
from benchmarks import children
from tf2 import console
from tf2 import hardware
from tf2.training.generalized_contrastive import VARIANTS

# The losses compared: NT-Xent and the paper's four variants.
LOSSES = {'nt_xent': dict(contrastive_loss='nt_xent', hidden_norm=True)}
LOSSES.update({name: dict(contrastive_loss='generalized', gcl_distribution=distribution,
                          hidden_norm=hidden_norm)
               for name, (distribution, hidden_norm) in VARIANTS.items()})
KNN = 'eval/knn_top_1'
PROBE = 'linear_probe/trained_encoder_top_1'


def run_once(model_dir, data_dir, steps, loss, heads, extra):
  """(result.json, seconds) of one run.py process."""
  return children.run_py(model_dir, recipes.flags_of(
      'cifar10_convnet', data_dir=data_dir, model_dir=model_dir, train_steps=steps,
      checkpoint_steps=steps, num_proj_layers=heads, knn_eval=True, linear_probe=True,
      **LOSSES[loss]) + list(extra))


def table(results):
  """Per head depth and loss: mean kNN and linear probe over the runs, and their spread
  (largest minus smallest)."""
  lines = ['head layers | loss | kNN top-1 (spread) | linear probe top-1 (spread)', '---|---|---|---']
  for heads in sorted({r['heads'] for r in results}):
    for loss in LOSSES:
      runs = [r for r in results if r['heads'] == heads and r['loss'] == loss]
      if not runs:
        continue
      cells = []
      for key in ('knn', 'linear_probe'):
        values = np.array([r[key] for r in runs])
        cells.append(f'{values.mean():.3f} ({np.ptp(values):.3f})')
      lines.append(f'{heads} | {loss} | ' + ' | '.join(cells))
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True, help='TFDS data_dir with cifar10 prepared')
  parser.add_argument('--out', required=True, help='the JSON file to write')
  parser.add_argument('--runs', type=int, default=2)
  parser.add_argument('--heads', type=int, nargs='+', default=[1, 3])
  parser.add_argument('--steps', type=int, default=150)
  parser.add_argument('--losses', nargs='+', default=list(LOSSES), choices=list(LOSSES))
  parser.add_argument('--work_dir', default='/tmp/loss_variant_runs')
  parser.add_argument('flags', nargs='*', help='run.py flags after --, e.g. --gcl_lambda=2')
  args = parser.parse_args()
  console.quiet_tensorflow_startup()
  machine = hardware.describe()
  print(machine, flush=True)
  flags = recipes.flags_of('cifar10_convnet', train_steps=args.steps) + args.flags
  print(f'recipe: {" ".join(flags)}', flush=True)
  results = []
  for run in range(args.runs):  # Repeats outermost: a stopped run still covers every loss.
    for heads in args.heads:
      for loss in args.losses:
        result, seconds = run_once(
            os.path.join(args.work_dir, f'{loss}_h{heads}_r{run}'), args.data_dir, args.steps,
            loss, heads, args.flags)
        results.append({'loss': loss, 'heads': heads, 'run': run, 'knn': result[KNN],
                        'linear_probe': result[PROBE], 'seconds': round(seconds, 1)})
        print(f'{loss}, {heads}-layer head, run {run}: kNN {result[KNN]:.3f}, linear probe '
              f'{result[PROBE]:.3f} ({seconds:.0f} s)', flush=True)
        with open(args.out, 'w') as f:  # After every run: nothing lost if stopped.
          json.dump({'machine': machine, 'flags': flags, 'steps': args.steps,
                     'results': results}, f, indent=1)
  print('\n' + table(results))


if __name__ == '__main__':
  main()
