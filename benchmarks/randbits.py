"""The RandBits grid of "Intriguing Properties of Contrastive Losses" (Fig. 5a), on a CPU.

    python -m benchmarks.randbits --out FILE.json [--temperatures 0.05 0.1 0.2]
        [--bits 0 5 10 20] [-- FLAGS...]

For every temperature and number of bits, one `run.py` process of the recipe
`flagfiles/randbits.cfg` (the small ConvNet on MNIST digits, k bits per image
as constant channels), plus any run.py FLAGS given after `--`. Prints the
machine line, then a line per run, then the table of linear evaluation
accuracy (the linear head trained beside pretraining on stop-gradient
features, on the test split, as the notebook evaluates) beside the original
notebook's stored results. Writes
`{"machine": ..., "flags": [...], "results": [{"temperature": t, "bits": k,
"linear_eval": accuracy, "seconds": s}, ...]}` to FILE.json.
"""
import argparse
import json
import os

import recipes
from benchmarks import children
from tf2 import console
from tf2 import hardware

# The original notebook's stored results (randbits_mnist.ipynb, batch 1000, 10 epochs of
# the whole of MNIST): temperature -> {bits: accuracy}.
ORIGINAL = {
    0.05: {0: .899, 5: .706, 10: .330, 15: .143, 20: .099},
    0.1: {0: .892, 5: .612, 10: .187, 15: .098, 20: .103},
    0.2: {0: .900, 5: .330, 10: .104, 15: .100, 20: .099},
}
ACCURACY_KEY = 'eval/label_top_1_accuracy'


def run_once(model_dir, temperature, bits, extra):
  """(test accuracy of the linear head, seconds) of one run.py process."""
  result, seconds = children.run_py(model_dir, recipes.flags_of(
      'randbits', temperature=temperature, randbits=bits, model_dir=model_dir) + list(extra))
  return result[ACCURACY_KEY], seconds


def table(results):
  """The accuracies, ours / the original's, a row per temperature and a column per bits."""
  bits = sorted({r['bits'] for r in results})
  ours = {(r['temperature'], r['bits']): r['linear_eval'] for r in results}
  lines = ['temperature | ' + ' | '.join(f'{k} bits' for k in bits),
           '---|' + '---|' * len(bits)]
  for t in sorted({r['temperature'] for r in results}):
    cells = []
    for k in bits:
      original = ORIGINAL.get(t, {}).get(k)
      cells.append(f'{ours[t, k]:.3f} / ' + ('-' if original is None else f'{original:.3f}'))
    lines.append(f'{t} | ' + ' | '.join(cells))
  return '\n'.join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--out', required=True, help='the JSON file to write')
  parser.add_argument('--temperatures', type=float, nargs='+', default=[0.05, 0.1, 0.2])
  parser.add_argument('--bits', type=int, nargs='+', default=[0, 5, 10, 20])
  parser.add_argument('--work_dir', default='/tmp/randbits_runs')
  parser.add_argument('flags', nargs='*', help='run.py flags after --, e.g. --train_steps=480')
  args = parser.parse_args()
  console.quiet_tensorflow_startup()
  machine = hardware.describe()
  print(machine, flush=True)
  flags = recipes.flags_of('randbits') + args.flags
  print(f'randbits flags: {" ".join(flags)}', flush=True)
  results = []
  for t in args.temperatures:
    for k in args.bits:
      accuracy, seconds = run_once(os.path.join(args.work_dir, f't{t}_b{k}'), t, k, args.flags)
      results.append({'temperature': t, 'bits': k, 'linear_eval': accuracy,
                      'seconds': round(seconds, 1)})
      print(f'temperature {t}, {k} bits: linear eval {accuracy:.3f} ({seconds:.0f} s)',
            flush=True)
      with open(args.out, 'w') as f:  # After every run: nothing lost if stopped.
        json.dump({'machine': machine, 'flags': flags, 'results': results}, f, indent=1)
  print('\nlinear eval, ours / the original notebook:')
  print(table(results))


if __name__ == '__main__':
  main()
