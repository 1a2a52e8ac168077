"""Augmented images per second of the pretraining input pipeline on this machine.

    python -m benchmarks.augment_throughput [--seconds 20] [--data_dir DIR]

Two cases, each through the full `tf2.data.input_pipeline` (decode, two SimCLR
views per image, batching, prefetch; no model):
- 32 px, the README's CIFAR-10 pretraining input (`recipes.py`): CIFAR-10
  from `--data_dir` (a TFDS dir made by `tfds build cifar10 --data_dir DIR`;
  offline: docs/development.md) if given, else random 32x32 images;
- 224 px: a folder of ImageNet-sized JPEGs (500x375, generated here).
Prints images/s (each image yields two views).
"""
import argparse
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

import recipes
from tf2 import hardware
from tf2.config import Config
from tf2.data import datasets, input_pipeline


def measure(source, config, seconds, through_service=False, warmup=1):
  """Images/s of the training input pipeline (`through_service`: --data_service_address)."""
  ds = input_pipeline.make_input_fn(source, config, is_training=True,
                                    through_service=through_service)()
  it = iter(ds)
  for _ in range(warmup):
    next(it)
  count, start = 0, time.time()
  while time.time() - start < seconds:
    images, _ = next(it)
    count += int(images.shape[0])
  return count / (time.time() - start)


def jpeg_folder(root, n=256):
  rng = np.random.RandomState(0)
  for i in range(n):
    path = os.path.join(root, 'train', f'c{i % 4}', f'{i}.jpg')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Smooth random content compresses like a photo (not like noise).
    small = rng.randint(0, 255, (24, 32, 3)).astype(np.uint8)
    image = tf.cast(tf.image.resize(small, [375, 500]), tf.uint8)
    tf.io.write_file(path, tf.io.encode_jpeg(image, quality=90))
  return root


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--seconds', type=float, default=20)
  parser.add_argument('--data_dir', default=None)
  args = parser.parse_args()
  print(hardware.describe(), flush=True)
  cifar_cfg = recipes.config('cifar10_pretrain', train_batch_size=128)
  if args.data_dir:
    source, what = datasets.build_source('cifar10', args.data_dir, ['train']), 'CIFAR-10'
  else:
    images = np.random.RandomState(0).randint(0, 255, (2048, 32, 32, 3)).astype(np.uint8)
    source = datasets.array_source('random32', {'train': (images, np.zeros(2048))}, 10)
    what = 'random 32x32'
  rate = measure(source, cifar_cfg, args.seconds)
  print(f'32 px ({what}), batch 128, 2 views: {rate:.0f} images/s')
  with tempfile.TemporaryDirectory() as tmp:
    folder = datasets.build_source(jpeg_folder(tmp), None, ['train'])
    cfg = Config(image_size=224, train_batch_size=64, train_split='train', cache_dataset=False)
    rate = measure(folder, cfg, args.seconds)
    print(f'224 px (500x375 JPEG folder), batch 64, 2 views: {rate:.0f} images/s')


if __name__ == '__main__':
  main()
