"""Training curves of one or more runs, from their TensorBoard event files.

    python -m tf2.plot MODEL_DIR [MODEL_DIR ...] [--out curves.png]

Panels: the training loss of the run's objective (contrastive, distillation or
supervised), contrastive accuracy, learning rate, and the eval accuracies (kNN monitor, supervised head top-1), against the step, one line
per run (labelled by its directory name) so runs can be compared. TensorBoard
stays the tool for exploring; this is for a glance and for papers.
"""
import argparse
import collections
import glob
import os

import numpy as np

# (title, tags, whether to draw only the first tag a run has).
PANELS = (
    # The objective of the run's mode (the total adds the linear-eval head's loss).
    ('training loss', ('train/contrast_loss', 'train/distill_loss', 'train/supervised_loss',
                       'train/total_loss'), True),
    ('contrastive accuracy', ('train/contrast_acc',), True),
    ('learning rate', ('learning_rate',), True),
    ('eval accuracy', ('eval/knn_top_1', 'eval/label_top_1_accuracy'), False),
)


def read_scalars(model_dir):
  """{tag: [(step, value), ...] sorted by step} from model_dir and model_dir/*/ event files."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scalars = collections.defaultdict(dict)
  files = sorted(glob.glob(os.path.join(model_dir, 'events.out.tfevents.*')) +
                 glob.glob(os.path.join(model_dir, '*', 'events.out.tfevents.*')))
  for path in files:
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.HasField('tensor') and value.metadata.plugin_data.plugin_name == 'scalars':
          scalars[value.tag][event.step] = float(tf.make_ndarray(value.tensor))
        elif value.HasField('simple_value'):
          scalars[value.tag][event.step] = value.simple_value
  return {tag: sorted(points.items()) for tag, points in scalars.items()}


def plot(model_dirs, out):
  """Writes the PNG; returns {panel title: number of lines drawn}."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  runs = [(os.path.basename(os.path.normpath(d)), read_scalars(d)) for d in model_dirs]
  fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4))
  drawn = {}
  for ax, (title, tags, first_only) in zip(axes, PANELS):
    drawn[title] = 0
    for name, scalars in runs:
      present = [tag for tag in tags if scalars.get(tag)]
      for tag in present[:1] if first_only else present:
        steps, values = np.array(scalars[tag]).T
        label = f'{name}: {tag.split("/", 1)[-1]}' if len(tags) > 1 else name
        ax.plot(steps, values, marker='.' if len(steps) < 30 else None, label=label)
        drawn[title] += 1
    ax.set_title(title)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    if drawn[title]:
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out, dpi=90)
  plt.close(fig)
  return drawn


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('model_dirs', nargs='+')
  parser.add_argument('--out', default='curves.png')
  args = parser.parse_args(argv)
  missing = [d for d in args.model_dirs if not glob.glob(os.path.join(d, '**', 'events.out.*'),
                                                          recursive=True)]
  if missing:
    raise SystemExit(f'error: no TensorBoard event files in {", ".join(missing)}.')
  drawn = plot(args.model_dirs, args.out)
  print(f'Wrote {args.out}: ' + ', '.join(f'{t} ({n} lines)' for t, n in drawn.items()))
  return drawn


if __name__ == '__main__':
  main()
