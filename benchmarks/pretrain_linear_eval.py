"""Learning benchmark: SimCLR pretraining on CIFAR-10 for a time budget, then linear eval.

    tfds build cifar10 --data_dir /tmp/cifar_tfds   # once (offline: docs/development.md)
    python -m benchmarks.pretrain_linear_eval --data_dir /tmp/cifar_tfds --minutes 30

Pretrains ResNet-18 (the original README's CIFAR-10 command, `recipes.py`:
LARS, learning rate 1.0 per 256, weight decay 1e-4, temperature 0.5, colour
strength 0.5, no blur) for `--minutes` of training, with the cosine schedule
sized to the number of steps that fit (measured on a short calibration run).
Then fits a logistic regression on frozen features of the CIFAR-10 train
split and reports test accuracy, next to the same protocol on a randomly
initialised encoder.
"""
import argparse
import tempfile
import time

import tensorflow as tf

import recipes
from tf2 import hardware, precision, runner
from tf2.data import datasets
from tf2.evaluation import linear_probe
from tf2.models.model import SimCLRModel
from tf2.training import loop


class _Budget(Exception):
  pass


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--minutes', type=float, default=30)
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--precision', default='auto')
  parser.add_argument('--resnet_base_width', type=int, default=64)
  parser.add_argument('--model_dir', default=None)
  args = parser.parse_args()
  hw = hardware.detect()
  print(hardware.describe(hw), flush=True)
  choice = precision.choose(args.precision, hw)
  print(choice.message, flush=True)
  args.precision = choice.precision

  config = recipes.config(
      'cifar10_pretrain', data_dir=args.data_dir, resnet_base_width=args.resnet_base_width,
      train_batch_size=args.batch, precision=args.precision, warmup_epochs=1,
      train_summary_steps=20, steps_per_loop=20,
      model_dir=args.model_dir or tempfile.mkdtemp(prefix='simclr_bench_')).validate()
  strategy = tf.distribute.get_strategy()
  source = datasets.build_source('cifar10', args.data_dir, ['train', 'test'])
  num_examples = source.num_examples('train')

  # Calibration: seconds per step after tracing, on a throwaway model.
  calib = config.replace(train_steps=1000, model_dir=tempfile.mkdtemp(), checkpoint_steps=1000)
  model, optimizer = runner.build_model(calib, strategy, 10, num_examples)
  times = []

  def record(step):
    times.append(time.time())
    if len(times) == 3:
      raise _Budget()

  try:
    loop.train(calib.replace(steps_per_loop=3), model, optimizer, strategy, source,
               calib.model_dir, on_loop_end=record)
  except _Budget:
    pass
  seconds_per_step = (times[2] - times[1]) / 3
  steps = max(int(args.minutes * 60 / seconds_per_step), 10)
  print(f'calibration: {seconds_per_step:.2f} s/step; training {steps} steps '
        f'({steps * args.batch / num_examples:.1f} epochs)', flush=True)

  config = config.replace(train_steps=steps, checkpoint_steps=steps)
  model, optimizer = runner.build_model(config, strategy, 10, num_examples)
  start = time.time()
  loop.train(config, model, optimizer, strategy, source, config.model_dir)
  train_minutes = (time.time() - start) / 60

  def make_random_model():
    with strategy.scope():
      return SimCLRModel(config, source.num_classes).build_for()

  start = time.time()
  # Train split -> test split; prints the comparison.
  accuracies = linear_probe.report(config, model, make_random_model, strategy, source)
  print(f'pretraining: ResNet-18 (base width {args.resnet_base_width}), batch {args.batch}, '
        f'{args.precision}, {steps} steps in {train_minutes:.1f} min')
  print(f'linear eval on frozen features (CIFAR-10 test, {time.time() - start:.0f} s): '
        f'SimCLR encoder {100 * accuracies["linear_probe/trained_encoder_top_1"]:.2f}% vs '
        f'random encoder {100 * accuracies["linear_probe/random_encoder_top_1"]:.2f}%')


if __name__ == '__main__':
  main()
