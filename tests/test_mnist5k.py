"""--dataset=mnist5k: real MNIST digits, offline, split by class."""
import hashlib

import numpy as np
import pytest

from tf2.data import mnist5k
from tf2.errors import DatasetError
from tf2 import runner


@pytest.fixture(scope='module')
def splits():
  return mnist5k.splits()


def test_splits_are_balanced_disjoint_and_fixed(splits):
  train, test = splits['train'], splits['test']
  assert train[0].shape == (4000, 28, 28, 1) and test[0].shape == (1000, 28, 28, 1)
  assert train[0].dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(train[1]), [400] * 10)
  np.testing.assert_array_equal(np.bincount(test[1]), [100] * 10)
  digest = lambda images: {hashlib.sha1(image.tobytes()).hexdigest() for image in images}
  assert not digest(train[0]) & digest(test[0])
  assert len(digest(train[0])) == 4000
  again = mnist5k.splits()
  np.testing.assert_array_equal(again['test'][0], test[0])
  assert len(set(train[1][:20])) > 3  # Shuffled, not sorted by class.


def test_they_are_mnist_digits(splits):
  """MNIST's published statistics: pixel mean 0.1307 and std 0.3081 of [0, 1] values, the
  digit in a 20x20 box centred by its mass at (14, 14) of the 28x28 frame."""
  images = np.concatenate([splits['train'][0], splits['test'][0]]).astype(np.float64) / 255
  assert abs(images.mean() - 0.1307) < 0.01 and abs(images.std() - 0.3081) < 0.01
  assert images[:, :3].mean() < 0.01 and images[:, -3:].mean() < 0.01  # Borders mostly empty.
  for axis in (2, 1):
    mass = images.sum(axis=(axis, 3))
    centre = (mass * np.arange(28)).sum(1) / mass.sum(1)
    assert np.all(np.abs(centre - 14) <= 0.5 + 1e-6)


def test_the_runner_finds_it_by_name_and_refuses_other_splits():
  source = runner.builtin_source('mnist5k', None, ['train', 'test'])
  assert source.num_classes == 10 and source.num_examples('test') == 1000
  assert runner.builtin_source('mnist', None, ['train']) is None
  with pytest.raises(DatasetError, match='--eval_split=test'):
    runner.builtin_source('mnist5k', None, ['validation'])
