"""Per-replica input: sharding across 8 replicas, eval completeness, shapes."""
import numpy as np
import tensorflow as tf

from tf2.data import datasets, input_pipeline
from tf2.config import Config

CFG = Config(image_size=8, train_batch_size=16, eval_batch_size=16, train_mode='pretrain',
             eval_split='test')


def indexed_source(n):
  """Images whose label is their index, so examples can be told apart."""
  images = np.random.RandomState(0).randint(0, 255, (n, 12, 12, 3)).astype(np.uint8)
  return datasets.array_source('indexed', {'train': (images, np.arange(n)),
                                           'test': (images, np.arange(n))}, num_classes=n)


def local(strategy, value):
  return [t.numpy() for t in strategy.experimental_local_results(value)]


def test_training_steps_see_distinct_examples_across_replicas(strategy8):
  n = 64  # four global batches of 16: one epoch
  ds = input_pipeline.distributed_dataset(strategy8, indexed_source(n), CFG, is_training=True)
  it = iter(ds)
  seen = []
  for _ in range(4):
    images, labels = next(it)
    per_replica = local(strategy8, labels)
    assert [len(l) for l in per_replica] == [2] * 8
    for batch in local(strategy8, images):
      assert batch.shape == (2, 8, 8, 6) and batch.min() >= 0 and batch.max() <= 1
    step = np.concatenate(per_replica)
    assert len(set(step)) == 16  # no example twice in a global step
    seen.extend(step)
  assert sorted(seen) == list(range(n))  # the epoch covers each example once


def test_evaluation_counts_every_example_once(strategy8):
  n = 50  # not a multiple of the eval batch
  ds = input_pipeline.distributed_dataset(strategy8, indexed_source(n), CFG, is_training=False)
  seen = []
  for images, labels in ds:
    seen.extend(np.concatenate(local(strategy8, labels)))
    assert all(b.shape[1:] == (8, 8, 3) for b in local(strategy8, images))
  assert sorted(seen) == list(range(n))


def test_finetune_inputs_are_single_views():
  cfg = CFG.replace(train_mode='finetune')
  input_fn = input_pipeline.make_input_fn(indexed_source(20), cfg, is_training=True)
  images, labels = next(iter(input_fn()))
  assert images.shape == (16, 8, 8, 3) and labels.dtype == tf.int64


def test_cache_dataset_keeps_decoded_images_in_memory(tmp_path):
  root = tmp_path / 'data'
  for i in range(3):
    path = root / 'test' / 'c' / f'{i}.png'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(np.full((8, 8, 3), i * 40, np.uint8)).numpy())
  source = datasets.build_source(str(root), None, ['test'])
  ds = input_pipeline.make_input_fn(source, CFG.replace(cache_dataset=True), False)()
  first = sorted(float(x.numpy().mean()) for x in next(iter(ds))[0])
  for path in (root / 'test' / 'c').iterdir():
    path.unlink()  # a second pass must not touch the files
  second = sorted(float(x.numpy().mean()) for x in next(iter(ds))[0])
  assert len(first) == 3 and first == second


def test_finetuning_crops_and_flips_without_colour_distortion():
  """As the original: fine-tuning inputs keep every pixel's colour; pretraining's do not."""
  colours = np.array([[200, 30, 90], [10, 220, 140]], np.uint8)
  images = np.broadcast_to(colours[:, None, None, :], (2, 12, 12, 3)).copy()
  source = datasets.array_source('flat', {'train': (images, np.arange(2))}, 2)
  cfg = CFG.replace(train_batch_size=2, color_jitter_strength=1.0)
  batch, labels = next(iter(input_pipeline.make_input_fn(
      source, cfg.replace(train_mode='finetune'), is_training=True)()))
  for image, label in zip(batch.numpy(), labels.numpy()):
    np.testing.assert_allclose(image, np.broadcast_to(colours[label] / 255.0, image.shape),
                               atol=1e-5)
  views = []
  for _ in range(3):
    batch = next(iter(input_pipeline.make_input_fn(source, cfg, is_training=True)()))[0].numpy()
    views += [view.reshape(-1, 3).mean(0) for image in batch for view in np.split(image, 2, -1)]
  distance = [np.abs(colours / 255.0 - v).max(1).min() for v in views]
  assert max(distance) > 0.05  # Colour jitter or grayscale changed some view.


def test_with_colour_on_device_pretraining_views_are_cropped_and_flipped_only_unclipped():
  """Red and blue stripes: crops, flips and bicubic resizes never make green, and overshoot
  at the edges; the colour distortion (and grayscale) on the host makes green in most views."""
  stripes = np.zeros((24, 24, 3), np.uint8)
  stripes[:, ::4, 0] = stripes[:, 1::4, 0] = 255
  stripes[:, 2::4, 2] = stripes[:, 3::4, 2] = 255
  source = datasets.array_source('stripes', {'train': (np.stack([stripes] * 16), np.zeros(16))}, 1)
  for on_device in (True, False):
    cfg = CFG.replace(image_size=16, color_jitter_on_device=on_device)
    views, _ = next(iter(input_pipeline.make_input_fn(source, cfg, is_training=True)()))
    views = views.numpy().reshape(16, 16, 16, 2, 3)
    green = np.abs(views[..., 1]).max(axis=(1, 2))  # per image and view
    if on_device:
      assert green.max() == 0
      assert views.min() < 0 or views.max() > 1
    else:
      assert (green > 0.01).mean() > 0.5
      assert views.min() >= 0 and views.max() <= 1


def test_a_global_seed_is_warned_about_because_it_ties_the_augmentations_together(caplog):
  """Under a global seed, three uniform draws of one tf.data function (two inside tf.cond)
  are equal for every element: the reason for the warning."""
  draws = lambda: tf.data.Dataset.range(4).map(lambda i: tf.stack([
      tf.cond(i >= 0, lambda: tf.random.uniform([]), lambda: 0.0),
      tf.cond(i >= 0, lambda: tf.random.uniform([]), lambda: 0.0),
      tf.random.uniform([])]))
  try:
    tf.random.set_seed(1)
    seeded = np.stack([x.numpy() for x in draws()])
    with caplog.at_level('WARNING'):
      input_pipeline.make_input_fn(indexed_source(16), CFG, is_training=True)
  finally:
    tf.random.set_seed(None)
  assert np.all(seeded == seeded[:, :1])
  assert 'A global TensorFlow seed is set' in caplog.text
  unseeded = np.stack([x.numpy() for x in draws()])
  assert not np.all(unseeded == unseeded[:, :1])
  caplog.clear()
  with caplog.at_level('WARNING'):
    input_pipeline.make_input_fn(indexed_source(16), CFG, is_training=True)
  assert 'global TensorFlow seed' not in caplog.text
