"""The embedded quickstart dataset: deterministic, balanced, classes differ by shape only."""
import numpy as np
import pytest

from tf2.data import shapes_data
from tf2.data.datasets import DatasetError


def test_deterministic_and_balanced():
  a_images, a_labels = shapes_data.generate(60, seed=3)
  b_images, b_labels = shapes_data.generate(60, seed=3)
  np.testing.assert_array_equal(a_images, b_images)
  np.testing.assert_array_equal(a_labels, b_labels)
  assert a_images.shape == (60, 32, 32, 3) and a_images.dtype == np.uint8
  assert np.bincount(a_labels).tolist() == [10] * 6
  assert not np.array_equal(shapes_data.generate(60, seed=4)[0], a_images)


def test_colour_does_not_give_the_class_away():
  images, labels = shapes_data.generate(600, seed=0)
  mean_colour = images.reshape(600, -1, 3).mean(1)
  per_class = np.stack([mean_colour[labels == c].mean(0) for c in range(6)])
  # Class mean colours differ by far less than colours differ between images.
  assert per_class.std(0).max() < 0.25 * mean_colour.std(0).min()


def test_each_image_is_a_dark_and_a_light_grey_either_way_round():
  """Grey tones (R = G = B but for the noise), one from each band, so the shape always
  stands out; which one is the object varies."""
  images, labels = shapes_data.generate(300, seed=5)
  pixels = images.astype(np.float64) / 255.0
  assert np.abs(pixels - pixels.mean(-1, keepdims=True)).mean() < 0.03  # Grey.
  grey = pixels.mean(-1).reshape(300, -1)
  low, high = np.percentile(grey, 2, axis=1), np.percentile(grey, 98, axis=1)
  assert (high - low).min() > 0.2  # Two tones at least 0.3 apart, less two noise sigmas each.
  # The object is the minority of pixels: its tone is dark in some images, light in others.
  object_is_dark = (grey < (low + high)[:, None] / 2).mean(1) < 0.5
  assert 0.3 < object_is_dark.mean() < 0.7
  for c in range(6):  # Per class too: polarity does not give the class away.
    assert 0.2 < object_is_dark[labels == c].mean() < 0.8


def test_shapes_are_what_they_claim():
  y, x = np.meshgrid(np.linspace(-1.2, 1.2, 49), np.linspace(-1.2, 1.2, 49), indexing='ij')
  area = {s: shapes_data._inside(s, x, y).mean() * 2.4 ** 2 for s in shapes_data.CLASSES}
  np.testing.assert_allclose(area['disk'], np.pi, rtol=0.05)
  np.testing.assert_allclose(area['ring'], np.pi * (1 - 0.55 ** 2), rtol=0.07)
  np.testing.assert_allclose(area['square'], 1.6 ** 2, rtol=0.05)
  np.testing.assert_allclose(area['triangle'], 3 * np.sqrt(3) / 4, rtol=0.07)
  assert len(set(np.round(list(area.values()), 2))) == 6


def test_the_source_has_its_splits_and_refuses_others():
  source = shapes_data.source(['test'])
  assert source.num_classes == 6 and source.num_examples('test') == 2000
  with pytest.raises(DatasetError, match='--eval_split=test'):
    shapes_data.source(['validation'])
