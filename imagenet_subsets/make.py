"""Writes a class-balanced label subset list for any labelled dataset (SimCLRv2 1% / 10%).

    python -m imagenet_subsets.make --dataset=cifar10 --data_dir=DIR --fraction=0.01 --seed=0 --out=FILE
    python -m imagenet_subsets.make --dataset=/path/root --split=train --fraction=0.1 --out=FILE

The list has the format of the ImageNet lists, one example name per line:
the `file_name` (ImageNet) or `id` (e.g. CIFAR-10's `train_16399`) feature of
a TFDS dataset, or the path relative to `root/<split>/` (`class/file.jpg`) of
an image folder. `run.py --train_split=FILE` (or `train:FILE`) reads it.

round(fraction * N) examples are drawn; every class gets the same number,
within one (the remainder goes to classes picked by the seed), chosen
uniformly at random inside the class. The same dataset, fraction and seed
always give the same list. A fraction that would leave a class empty, or
asks a class for more examples than it has, is refused.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SubsetError(ValueError):
  """The subset cannot be drawn; the message says why."""


def balanced_subset(names, labels, fraction, seed=0):
  """Sorted names of a class-balanced random subset of round(fraction * N) examples."""
  names, labels = np.asarray(names), np.asarray(labels)
  if not 0 < fraction <= 1:
    raise SubsetError(f'--fraction must be in (0, 1], got {fraction}.')
  if len(set(names.tolist())) != len(names):
    raise SubsetError('Example names are not unique: a list could not tell them apart.')
  classes = np.unique(labels)
  if len(classes) == 0 or classes.min() < 0:
    raise SubsetError('The split has no labels: a label subset needs a labelled split.')
  total = int(round(fraction * len(names)))
  base, extra = divmod(total, len(classes))
  if base == 0:
    raise SubsetError(
        f'--fraction={fraction} gives {total} examples for {len(classes)} classes: at least one '
        f'class would be empty. The smallest fraction is {len(classes) / len(names):.4g} '
        f'(one example per class).')
  rng = np.random.default_rng(seed)
  quota = np.full(len(classes), base)
  quota[rng.permutation(len(classes))[:extra]] += 1
  chosen = []
  for cls, n in zip(classes, quota):
    members = np.sort(names[labels == cls])
    if n > len(members):
      raise SubsetError(f'Class {cls} has {len(members)} examples, fewer than the {n} a '
                        'balanced subset needs; lower --fraction.')
    chosen += members[rng.permutation(len(members))[:n]].tolist()
  return sorted(chosen)


def tfds_names(dataset, data_dir, split):
  """(names, labels) of a TFDS split, keyed by its file_name/id feature (images not decoded)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tf2.data import datasets  # pylint: disable=g-import-not-at-top
  builder = tfds.builder(dataset, data_dir=data_dir)
  key = datasets.example_key(builder)
  try:
    ds = builder.as_dataset(split=split, decoders={'image': tfds.decode.SkipDecoding()})
  except (AssertionError, FileNotFoundError) as e:
    raise datasets.not_prepared_error(dataset, builder.data_dir) from e
  names, labels = [], []
  for example in tfds.as_numpy(ds.map(lambda x: (x[key], x['label']))):
    names.append(example[0].decode())
    labels.append(int(example[1]))
  return names, labels


def folder_names(root, split):
  """(relative paths, labels) of root/<split>/<class>/*."""
  from tf2.data import datasets  # pylint: disable=g-import-not-at-top
  paths, labels, _ = datasets.scan_folder(root, split)
  directory = os.path.join(root, split)
  return [os.path.relpath(p, directory) for p in paths], labels


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--dataset', required=True, help='TFDS name or image folder root')
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--split', default='train')
  parser.add_argument('--fraction', type=float, required=True)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--out', required=True)
  args = parser.parse_args(argv)
  from tf2.data.datasets import DatasetError  # pylint: disable=g-import-not-at-top
  try:
    if os.path.isdir(args.dataset):
      names, labels = folder_names(args.dataset, args.split)
    else:
      names, labels = tfds_names(args.dataset, args.data_dir, args.split)
    subset = balanced_subset(names, labels, args.fraction, args.seed)
  except (SubsetError, DatasetError) as e:
    raise SystemExit(f'error: {e}')
  with open(args.out, 'w') as f:
    f.write('\n'.join(subset) + '\n')
  counts = np.bincount([labels[i] for i in np.flatnonzero(np.isin(names, subset))])
  print(f'Wrote {args.out}: {len(subset)} of {len(names)} examples of {args.dataset} '
        f'{args.split} ({args.fraction:g}, seed {args.seed}), {counts.min()}-{counts.max()} '
        f'per class over {len(counts)} classes. Use --train_split={args.out}')
  return subset


if __name__ == '__main__':
  main()
