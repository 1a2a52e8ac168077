"""Seconds per pretraining step of the original SimCLR tf2 code, timed like `train_step_speed.py`.

    python -m benchmarks.original_step_speed --original /path/to/simclr [--batch 128]
        [--steps 3] [--image_size 32] [--resnet_depth 18] [--profile]

`--original` is a checkout of github.com/google-research/simclr; its `tf2/`
modules are imported at run time (never copied), in a child process of this
benchmark (`children.py`) under tf-keras (`TF_USE_LEGACY_KERAS=1`), which
reports its figures back. The step is the one its `run.py` runs for the
README CIFAR-10 command (`recipes.py`; its Model with the linear-eval head,
LARS at lr 1.0 with weight decay 1e-4, NT-Xent at temperature 0.5 plus the
supervised loss and its weight-decay term), without the input pipeline or
summaries, on random inputs in memory: the model step alone, comparable with
`train_step_speed.py --precision float32` on the same machine. `--profile`
prints op time by type as `train_step_speed.py` does.
"""
import argparse
import collections
import importlib.metadata
import json

import recipes
from benchmarks import children
from benchmarks import step_profile

CIFAR10_TRAIN = 50000  # examples: the learning-rate schedule's epochs


def original_step(original_flags, steps, profile):
  """In the child, where the original's modules come first on the path: its step on
  `original_flags` (its run.py's), timed; {'seconds_per_step', 'op_seconds'}."""
  # pylint: disable=g-import-not-at-top,unused-import
  import tensorflow as tf
  from absl import flags
  import run  # noqa: F401  (the original's run.py: it defines the flags its model reads)
  import model as model_lib
  import objective as obj_lib
  # pylint: enable=g-import-not-at-top,unused-import
  settings = flags.FLAGS
  settings(['run.py'] + original_flags)
  strategy = tf.distribute.get_strategy()
  model = model_lib.Model(10)
  optimizer = model_lib.build_optimizer(
      model_lib.WarmUpAndCosineDecay(settings.learning_rate, CIFAR10_TRAIN))
  batch, size = settings.train_batch_size, settings.image_size
  features = tf.random.uniform([batch, size, size, 6])
  labels = tf.one_hot(tf.zeros([batch], tf.int32), 10)

  @tf.function
  def loop(steps):
    for _ in tf.range(steps):
      with tf.GradientTape() as tape:
        projections, logits = model(features, training=True)
        loss, _, _ = obj_lib.add_contrastive_loss(
            projections, hidden_norm=settings.hidden_norm, temperature=settings.temperature,
            strategy=strategy)
        loss += obj_lib.add_supervised_loss(labels=tf.concat([labels, labels], 0),
                                            logits=logits)
        loss += model_lib.add_weight_decay(model, adjust_per_optimizer=True)
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables))

  run_steps = lambda n: loop(tf.constant(n))
  result = {'seconds_per_step': step_profile.seconds_per_step(run_steps, steps)}
  if profile:
    result['op_seconds'] = step_profile.traced_op_seconds(run_steps)
  return result


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--original', required=True, help='checkout of google-research/simclr')
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--image_size', type=int, default=32)
  parser.add_argument('--resnet_depth', type=int, default=18)
  parser.add_argument('--profile', action='store_true')
  # The child's: the original's run.py flags, after `--worker --`.
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('original_flags', nargs='*', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(original_step(args.original_flags, args.steps, args.profile)))
    return

  from tf2 import hardware  # pylint: disable=g-import-not-at-top
  print(hardware.describe(),
        f'(the original runs on tf-keras {importlib.metadata.version("tf_keras")})', flush=True)
  original_flags = recipes.flags_of(
      'cifar10_pretrain', train_batch_size=args.batch, image_size=args.image_size,
      resnet_depth=args.resnet_depth, train_steps=1000)
  worker_args = ['--original', args.original, '--steps', str(args.steps), '--worker'] + (
      ['--profile'] if args.profile else []) + ['--'] + original_flags
  result = children.run_json('benchmarks.original_step_speed', worker_args,
                             original=args.original, TF_USE_LEGACY_KERAS='1')
  if args.profile:
    step_profile.print_op_table(collections.Counter(result['op_seconds']),
                                'the original, float32')
  per_step = result['seconds_per_step']
  print(f'original float32: {per_step:.2f} s/step, {args.batch / per_step:.1f} images/s '
        f'(ResNet-{args.resnet_depth}, batch {args.batch}, two views, {args.image_size} px)')


if __name__ == '__main__':
  main()
