"""Seeded samples spread over a whole split (the kNN bank, the linear probe's cap).

Taking the first N examples of a split in reading order is no sample: an
ImageNet-style folder lists its images class by class, so a 10,000-image
bank would hold only the first few classes. `spread_sample` draws a fixed
(seeded) set of positions instead: stratified by class when the labels are
known up front (folders, arrays: every class in proportion, largest
remainder), else uniformly at random without replacement (TFDS).
"""
import numpy as np


def spread_sample(num_examples, size, seed=0, labels=None):
  """A boolean mask over the split's `num_examples` positions with `size` of them set.

  `labels` [num_examples] (or None): classes to stratify by; -1 counts as a class.
  """
  if size <= 0 or size >= num_examples:
    return np.ones([num_examples], bool)
  rng = np.random.RandomState(seed)
  keep = np.zeros([num_examples], bool)
  if labels is None:
    keep[rng.choice(num_examples, size, replace=False)] = True
    return keep
  labels = np.asarray(labels)
  classes, counts = np.unique(labels, return_counts=True)
  quota = counts * size / num_examples
  take = np.floor(quota).astype(int)
  short = size - take.sum()
  # Largest remainders first, ties broken by the seed.
  order = np.lexsort((rng.rand(len(classes)), -(quota - take)))
  take[order[:short]] += 1
  for cls, n in zip(classes, take):
    members = np.flatnonzero(labels == cls)
    keep[rng.choice(members, n, replace=False)] = True
  return keep
