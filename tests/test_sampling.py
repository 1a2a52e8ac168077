"""Seeded samples spread over a split: stratified by class, or uniform without labels."""
import numpy as np

from tf2.data import datasets
from tf2.data.sampling import spread_sample


def test_class_sorted_labels_give_every_class_in_proportion():
  labels = np.repeat([0, 1, 2, 3], [100, 50, 30, 20])  # Sorted by class, as a folder.
  keep = spread_sample(len(labels), 40, seed=1, labels=labels)
  assert keep.sum() == 40
  assert np.bincount(labels[keep]).tolist() == [20, 10, 6, 4]
  # Within each class the members are drawn at random, not the first ones.
  assert np.flatnonzero(keep[:100]).max() > 50


def test_largest_remainders_fill_the_size_exactly():
  labels = np.repeat([0, 1, 2], [10, 10, 10])
  keep = spread_sample(30, 10, seed=0, labels=labels)
  counts = np.bincount(labels[keep], minlength=3)
  assert keep.sum() == 10 and sorted(counts.tolist()) == [3, 3, 4]


def test_the_same_seed_gives_the_same_sample_and_another_seed_another():
  labels = np.arange(1000) % 7
  a = spread_sample(1000, 100, seed=5, labels=labels)
  np.testing.assert_array_equal(a, spread_sample(1000, 100, seed=5, labels=labels))
  assert (a != spread_sample(1000, 100, seed=6, labels=labels)).any()


def test_without_labels_a_uniform_sample_over_the_whole_split():
  keep = spread_sample(10000, 1000, seed=0)
  assert keep.sum() == 1000
  # Each tenth of the split holds about a tenth of the sample (binomial sd ~9.5).
  per_tenth = keep.reshape(10, 1000).sum(1)
  assert np.all(np.abs(per_tenth - 100) < 40), per_tenth


def test_sizes_of_zero_or_the_whole_split_keep_everything():
  assert spread_sample(5, 0).all() and spread_sample(5, 5).all() and spread_sample(5, 9).all()


def test_sources_read_only_the_kept_positions_in_order():
  images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1).repeat(3, -1)
  source = datasets.array_source('a', {'train': (images, np.arange(12) % 3)}, 3)
  keep = np.zeros(12, bool)
  keep[[1, 4, 11]] = True
  read = [(int(image[0, 0, 0]), int(label)) for image, label in source.read('train', keep=keep)]
  assert read == [(1, 1), (4, 1), (11, 2)]
  np.testing.assert_array_equal(source.labels('train'), np.arange(12) % 3)
