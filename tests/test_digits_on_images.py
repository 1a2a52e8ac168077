"""Digits on images: the notebook's composition, one digit per example read, two labels."""
import json
import os
import types
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from original_code import REFERENCE
from tf2 import runner
from tf2.config import Config
from tf2.data import digits_on_images as doi
from tf2.data import mnist5k
from tf2.data.datasets import array_source
from tf2.errors import DatasetError

NOTEBOOK = os.path.join(REFERENCE, 'colabs', 'intriguing_properties',
                        'digits_on_tf_flowers.ipynb')


def digits(count=5, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (count, 28, 28, 1), np.uint8),
          np.arange(count, dtype=np.int64) % 10)


def numpy_composite(image, digit, size, starts):
  """Pixel-wise maximum of the image and the resized digit at every (top, left)."""
  out = image.copy()
  for top in starts:
    for left in starts:
      window = out[top:top + size, left:left + size]
      np.maximum(window, digit, out=window)
  return out


@pytest.mark.parametrize('side, size, starts', [(32, 10, [4, 14, 22]), (224, 28, [33, 100, 168]),
                                                (64, 21, [9, 28, 43])])
def test_sizes_and_the_composite_against_numpy(side, size, starts):
  assert doi.digit_size(side) == size and doi.offsets(side) == starts
  rng = np.random.default_rng(side)
  image = rng.integers(0, 256, (side, side, 3), np.uint8)
  digit = digits(1)[0][0]
  resized = tf.image.resize(np.repeat(digit, 3, -1), [size, size], antialias=True).numpy()
  resized = np.clip(np.round(resized), 0, 255).astype(np.uint8)
  got = doi.composite(tf.constant(image), tf.constant(digit)).numpy()
  np.testing.assert_array_equal(got, numpy_composite(image, resized, size, starts))


def test_a_grey_image_is_made_rgb_and_other_images_are_refused():
  rng = np.random.default_rng(4)
  grey = rng.integers(0, 256, (28, 28, 1), np.uint8)
  digit = tf.constant(digits(1)[0][0])
  np.testing.assert_array_equal(doi.composite(tf.constant(grey), digit),
                                doi.composite(tf.constant(np.repeat(grey, 3, -1)), digit))
  with pytest.raises(DatasetError, match='8-bit square images'):
    doi.composite(tf.zeros([32, 40, 3], tf.uint8), digit)
  with pytest.raises(DatasetError, match='8-bit square images'):
    doi.composite(tf.zeros([32, 32, 3], tf.float32), digit)


def test_equals_the_original_notebook_at_224_px():
  """The notebook's own map_fn (MNIST's download and its draw replaced by ours)."""
  if not os.path.isfile(NOTEBOOK):
    pytest.skip('no copy of the original notebook (../shared/reference/original)')
  with open(NOTEBOOK) as f:
    cells = [''.join(c['source']) for c in json.load(f)['cells'] if c['cell_type'] == 'code']
  images, labels = digits(16)
  fake_mnist = types.SimpleNamespace(load_data=lambda: ((images[..., 0], labels), None))
  namespace = {'tf': tf, 'np': np}
  with mock.patch.object(tf.keras.datasets, 'mnist', fake_mnist):
    exec(next(c for c in cells if 'def map_fn' in c), namespace)  # pylint: disable=exec-used
  background = np.random.default_rng(1).integers(0, 256, (224, 224, 3), np.uint8)
  with mock.patch.object(tf.random, 'uniform', lambda *a, **k: tf.constant(7)):
    theirs, _, digit_label = namespace['map_fn'](tf.constant(background), tf.constant(3))
  ours = doi.composite(tf.constant(background), tf.constant(images[7]))
  assert int(digit_label) == labels[7]
  np.testing.assert_allclose(tf.image.convert_image_dtype(ours, tf.float32).numpy(),
                             theirs.numpy(), atol=1e-6)


def backgrounds(count=40):
  rng = np.random.default_rng(2)
  return rng.integers(0, 120, (count, 32, 32, 3), np.uint8), np.arange(count) % 3


@pytest.mark.parametrize('label', ['object', 'digit'])
def test_every_read_draws_one_of_the_first_n_digits_and_labels_it(label):
  images, object_labels = backgrounds()
  digit_images, digit_labels = digits(5)
  source = doi.wrap(array_source('bg', {'train': (images, object_labels)}, 3),
                    digit_images, digit_labels, unique=3, label=label)
  assert source.num_classes == (3 if label == 'object' else 10)
  candidates = [doi.composite(tf.constant(images[0]), tf.constant(d)).numpy()
                for d in digit_images]
  seen = []
  for _ in range(30):  # Reads of the first example: a fresh draw each time.
    image, got_label = next(iter(source.read('train')))
    match = [i for i, c in enumerate(candidates) if np.array_equal(c, image.numpy())]
    assert len(match) == 1 and match[0] < 3
    assert int(got_label) == (object_labels[0] if label == 'object' else digit_labels[match[0]])
    seen.append(match[0])
  assert set(seen) == {0, 1, 2}


def test_both_views_show_the_digit_drawn_for_their_example(tmp_path):
  """Pretraining views of one read: their maxima over the digit cells come from one digit."""
  images = np.zeros((4, 32, 32, 3), np.uint8)  # Black backgrounds: only the digit shows.
  digit_images = np.zeros((2, 28, 28, 1), np.uint8)
  digit_images[1] = 255  # Digit 0 is blank, digit 1 white: a view is all 0 or all 1.
  source = doi.wrap(array_source('bg', {'train': (images, np.zeros(4))}, 1), digit_images,
                    np.array([0, 1]), unique=2)
  config = Config(image_size=32, color_jitter_strength=0.0, use_tpu=False, crop_min_area=0.9)
  from tf2.data import input_pipeline  # pylint: disable=g-import-not-at-top
  preprocess = input_pipeline.preprocess_fn(config, is_training=True)
  brightness = []
  for image, _ in source.read('train').repeat(10):
    first, second = np.split(preprocess(image).numpy(), 2, -1)
    brightness.append((first.max() > 0.5, second.max() > 0.5))
  assert all(a == b for a, b in brightness)
  assert {a for a, _ in brightness} == {True, False}


def test_the_runner_composites_digits_from_mnist5k_and_refuses_too_many():
  """On shapes (6 classes): digit labels up to 9, each image the composite of its shape
  image with one of mnist5k's first 16 train digits of that label."""
  config = Config(dataset='shapes', digits_on_images=16, digits_label='digit', use_tpu=False,
                  eval_split='test', mode='train_then_eval')
  source = runner.load_source(config)
  assert source.num_classes == 10 and source.split_labels is None
  plain = runner.load_source(config.replace(digits_on_images=0))
  digits, digit_labels = mnist5k.splits()['train']
  labels = []
  for (image, label), (background, _) in zip(source.read('test').take(40),
                                             plain.read('test').take(40)):
    candidates = [i for i in range(16) if digit_labels[i] == int(label) and np.array_equal(
        doi.composite(background, tf.constant(digits[i])).numpy(), image.numpy())]
    assert candidates, int(label)
    labels.append(int(label))
  assert max(labels) >= 6  # Not the shape's label.
  with pytest.raises(DatasetError, match='use 1 to 4000'):
    runner.load_source(config.replace(digits_on_images=4001))
