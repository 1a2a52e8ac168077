"""Seconds per pretraining step of the original SimCLR tf2 code, timed like `train_step_speed.py`.

    python benchmarks/original_step_speed.py --original /path/to/simclr [--batch 128]
        [--steps 3] [--image_size 32] [--resnet_depth 18] [--profile]

`--original` is a checkout of github.com/google-research/simclr; its `tf2/`
modules are imported at run time (never copied) under tf-keras
(`TF_USE_LEGACY_KERAS=1`, set here before TensorFlow loads). The step is the
one its `run.py` runs for the README CIFAR-10 command (its Model with the
linear-eval head, LARS at lr 1.0 with weight decay 1e-4, NT-Xent at
temperature 0.5 plus the supervised loss and its weight-decay term), without
the input pipeline or summaries, on random inputs in memory: the model step
alone, comparable with `train_step_speed.py --precision float32` on the same
machine. `--profile` prints op time by type as `train_step_speed.py` does.
"""
import argparse
import os
import sys

os.environ['TF_USE_LEGACY_KERAS'] = '1'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--original', required=True, help='checkout of google-research/simclr')
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--image_size', type=int, default=32)
  parser.add_argument('--resnet_depth', type=int, default=18)
  parser.add_argument('--profile', action='store_true')
  args = parser.parse_args()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from benchmarks import step_profile  # pylint: disable=g-import-not-at-top
  from tf2 import hardware  # pylint: disable=g-import-not-at-top
  print(hardware.describe(), f'(the original runs on tf-keras {tf_keras.__version__})',
        flush=True)

  sys.path.insert(0, os.path.join(args.original, 'tf2'))
  import run as original_run  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import model as model_lib  # pylint: disable=g-import-not-at-top
  import objective as obj_lib  # pylint: disable=g-import-not-at-top
  flags.FLAGS([
      'run.py', '--train_mode=pretrain', f'--train_batch_size={args.batch}',
      '--learning_rate=1.0', '--weight_decay=1e-4', '--temperature=0.5', '--dataset=cifar10',
      f'--image_size={args.image_size}', f'--resnet_depth={args.resnet_depth}',
      '--use_blur=False', '--use_tpu=False', '--train_steps=1000'])
  strategy = tf.distribute.get_strategy()
  model = model_lib.Model(10)
  optimizer = model_lib.build_optimizer(
      model_lib.WarmUpAndCosineDecay(1.0, 50000))
  size = args.image_size
  features = tf.random.uniform([args.batch, size, size, 6])
  labels = tf.one_hot(tf.zeros([args.batch], tf.int32), 10)

  @tf.function
  def loop(steps):
    for _ in tf.range(steps):
      with tf.GradientTape() as tape:
        projections, logits = model(features, training=True)
        loss, _, _ = obj_lib.add_contrastive_loss(
            projections, hidden_norm=True, temperature=0.5, strategy=strategy)
        loss += obj_lib.add_supervised_loss(labels=tf.concat([labels, labels], 0),
                                            logits=logits)
        loss += model_lib.add_weight_decay(model, adjust_per_optimizer=True)
      grads = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(grads, model.trainable_variables))

  run_steps = lambda n: loop(tf.constant(n))
  per_step = step_profile.seconds_per_step(run_steps, args.steps)
  if args.profile:
    step_profile.profile_ops(run_steps, 'the original, float32')
  print(f'original float32: {per_step:.2f} s/step, {args.batch / per_step:.1f} images/s '
        f'(ResNet-{args.resnet_depth}, batch {args.batch}, two views, {size} px)')


if __name__ == '__main__':
  main()
