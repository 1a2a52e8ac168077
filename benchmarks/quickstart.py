"""The quickstart's result and time over several runs: what the README promises.

    python -m benchmarks.quickstart [--runs 3] [--out /tmp/quickstart_runs] [-- FLAGS...]

Runs the README's quickstart command (`recipes.py`: flagfiles/quickstart.cfg)
`--runs` times as separate `run.py` processes, each with its own random
initialisation and data order, plus any run.py FLAGS given after `--` (they
win over the flagfile's: how candidate recipes are compared). Prints the
machine line, then per run its wall time (start-up, training, evaluation,
export and both probes), the linear probe of the pretrained and of the random
encoder, their margin, the in-run evaluation and the kNN monitor's curve
(kNN top-1 against step); last, the smallest margin and the longest time.
"""
import argparse
import os

import recipes
from benchmarks import children
from tf2 import console
from tf2 import hardware
from tf2 import plot


def run_once(model_dir, extra):
  """(seconds, result.json, [(step, kNN top-1)]) of one quickstart process."""
  result, seconds = children.run_py(
      model_dir, recipes.flags_of('quickstart') + [f'--model_dir={model_dir}'] + list(extra))
  return seconds, result, plot.read_scalars(model_dir).get('eval/knn_top_1', [])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--runs', type=int, default=3)
  parser.add_argument('--out', default='/tmp/quickstart_runs')
  parser.add_argument('flags', nargs='*', help='run.py flags after --, e.g. --train_steps=300')
  args = parser.parse_args()
  console.quiet_tensorflow_startup()
  print(hardware.describe(), flush=True)
  print(f'quickstart flags: {" ".join(recipes.flags_of("quickstart"))} {" ".join(args.flags)}')
  margins, times = [], []
  for i in range(args.runs):
    seconds, result, curve = run_once(os.path.join(args.out, f'run_{i}'), args.flags)
    trained = result['linear_probe/trained_encoder_top_1']
    random = result['linear_probe/random_encoder_top_1']
    margins.append(100 * (trained - random))
    times.append(seconds)
    knn = ', '.join(f'{step}: {100 * value:.1f}' for step, value in curve)
    head = ('' if 'eval/label_top_1_accuracy' not in result else
            f'in-run evaluation top-1 {100 * result["eval/label_top_1_accuracy"]:.1f}%; ')
    print(f'run {i}: {seconds:.0f} s; linear probe pretrained {100 * trained:.1f}% vs random '
          f'{100 * random:.1f}% (margin {margins[-1]:.1f} points); {head}kNN top-1 by step: '
          f'{knn}', flush=True)
  print(f'smallest margin {min(margins):.1f} points over {args.runs} runs; longest run '
        f'{max(times):.0f} s')


if __name__ == '__main__':
  main()
