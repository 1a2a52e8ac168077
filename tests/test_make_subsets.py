"""Class-balanced label subsets (imagenet_subsets.make) and reading them back with --train_split."""
import collections

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from imagenet_subsets import make
from tf2.data import datasets


def counts(subset, names, labels):
  label_of = dict(zip(names, labels))
  return collections.Counter(label_of[n] for n in subset)


def test_balanced_within_one_and_deterministic():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 7, 1000)  # Unequal class sizes.
  names = [f'img_{i:04d}' for i in range(1000)]
  subset = make.balanced_subset(names, labels, 0.1, seed=3)
  assert len(subset) == 100 and len(set(subset)) == 100
  per_class = counts(subset, names, labels)
  assert set(per_class) == set(range(7)) and max(per_class.values()) - min(per_class.values()) <= 1
  assert subset == make.balanced_subset(names, labels, 0.1, seed=3)
  assert subset != make.balanced_subset(names, labels, 0.1, seed=4)
  # Uniform inside a class: over many seeds every example of class 0 is picked sometimes.
  picked = set()
  for seed in range(60):
    picked |= set(make.balanced_subset(names, labels, 0.1, seed=seed))
  assert {n for n, l in zip(names, labels) if l == 0} <= picked


def test_refuses_empty_classes_and_bad_input():
  names, labels = [f'x{i}' for i in range(100)], [i % 10 for i in range(100)]
  with pytest.raises(make.SubsetError, match='empty.*smallest fraction is 0.1'):
    make.balanced_subset(names, labels, 0.05)
  assert len(make.balanced_subset(names, labels, 0.1)) == 10
  with pytest.raises(make.SubsetError, match='fraction'):
    make.balanced_subset(names, labels, 0.0)
  with pytest.raises(make.SubsetError, match='fewer than'):
    make.balanced_subset(names[:12], [0] * 11 + [1], 1.0)
  with pytest.raises(make.SubsetError, match='no labels'):
    make.balanced_subset(names, [-1] * 100, 0.5)


def test_folder_subset_by_relative_path_reads_back(tmp_path):
  root = tmp_path / 'data'
  for cls in ('cat', 'dog', 'eel'):
    (root / 'train' / cls).mkdir(parents=True)
    for i in range(8):  # The same file names in every class: relative paths tell them apart.
      tf.io.write_file(str(root / 'train' / cls / f'{i}.png'),
                       tf.io.encode_png(tf.fill([4, 4, 3], tf.constant(i, tf.uint8))))
  out = tmp_path / 'quarter.txt'
  subset = make.main(['--dataset', str(root), '--fraction', '0.25', '--seed', '1',
                      '--out', str(out)])
  assert len(subset) == 6 and all(s.count('/') == 1 for s in subset)
  assert out.read_text().split() == subset
  source = datasets.folder_source(str(root), [str(out)])
  assert source.num_examples(str(out)) == 6
  labels = [int(l) for _, l in source.read(str(out))]
  assert sorted(labels) == [0, 0, 1, 1, 2, 2]


def test_cifar10_one_percent_by_id(real_cifar10, tmp_path):
  out = tmp_path / '1pct.txt'
  subset = make.main(['--dataset', 'cifar10', '--data_dir', real_cifar10, '--fraction', '0.01',
                      '--seed', '0', '--out', str(out)])
  assert len(subset) == 20 and all(s.startswith('train_') for s in subset)  # 2,000 prepared.
  source = datasets.tfds_source('cifar10', real_cifar10, [str(out)])
  assert source.num_examples(str(out)) == 20
  labels = [int(l) for _, l in source.read(str(out))]
  assert sorted(collections.Counter(labels).values()) == [2] * 10
  # The subset (filtered before decoding) holds the very images and labels of the
  # full split under those ids.
  full = {x['id'].numpy().decode(): (x['image'].numpy(), int(x['label']))
          for x in tfds.load('cifar10', split='train', data_dir=real_cifar10)}
  subset_examples = sorted(((image.numpy().tobytes(), int(label))
                            for image, label in source.read(str(out))))
  assert subset_examples == sorted((full[n][0].tobytes(), full[n][1]) for n in subset)
  with pytest.raises(SystemExit, match='class would be empty'):
    make.main(['--dataset', 'cifar10', '--data_dir', real_cifar10, '--fraction', '0.001',
               '--out', str(tmp_path / 'x.txt')])
