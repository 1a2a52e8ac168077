"""Dynamic loss scaling for `--precision=mixed_float16` (Micikevicius et al. 2018).

float16 holds magnitudes between about 6e-8 (6e-5 for normal numbers) and
65504: small gradients underflow to 0, large activations overflow. The loss is
multiplied by a scale S (2^15 at first) before the backward pass, so the
float16 gradients are S times larger, and the gradients are divided by S
before the update. A step whose gradients hold an Inf or NaN anywhere, on any
replica, is skipped on every replica and S is halved; after 2,000 steps
without one, S is doubled.

`GlobalLossScaleOptimizer` is Keras' `LossScaleOptimizer` with one change:
the finiteness check is all-reduced across replicas. Keras checks each
replica's own gradients before they are summed and, on the merge-call path
(MirroredStrategy), keeps replica 0's verdict, so an Inf on another replica
alone would reach the weights; without a merge call (TPUs, XLA on GPUs) the
replicas could branch apart around the all-reduce inside the update.

A skipped step leaves the weights, the optimizer's slots and its step counter
as they were: the learning-rate schedule and the global step count applied
updates only (`training/loop.py` counts them, and the skips).

Checkpoints hold the inner optimizer under `optimizer`, as float32 runs do,
and the scale and its counter under `loss_scale`: a float16 checkpoint
resumes or warm-starts in float32 and the reverse (a run without a saved
scale starts from 2^15; `resume.restore`).
"""
import keras
import tensorflow as tf

INITIAL_SCALE = 2.0 ** 15
GROWTH_STEPS = 2000


class GlobalLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
  """Keras' dynamic loss scaling, every replica skipping a step together."""

  def check_finite(self, grads):
    bad = tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32))
                    for g in grads if g is not None] or [tf.constant(0.0)])
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
      bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)  # float32: GPUs all-reduce it.
    return tf.equal(bad, 0.0)


class LossScaleState(tf.Module):
  """The scale and its good-step counter, as checkpoints hold them (`loss_scale`)."""

  def __init__(self, optimizer):
    super().__init__(name='loss_scale')
    self.scale = optimizer.dynamic_scale
    self.good_steps = optimizer.step_counter


def wrap(optimizer, precision):
  """`optimizer` with dynamic loss scaling for mixed_float16; unchanged otherwise."""
  if precision != 'mixed_float16':
    return optimizer
  return GlobalLossScaleOptimizer(optimizer, initial_scale=INITIAL_SCALE,
                                  dynamic_growth_steps=GROWTH_STEPS)


def scaled(optimizer):
  """Whether `optimizer` scales the loss."""
  return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def checkpointed(optimizer):
  """Checkpoint entries of `optimizer`: {'optimizer': ..., 'loss_scale': ...}."""
  if not scaled(optimizer):
    return {'optimizer': optimizer}
  return {'optimizer': optimizer.inner_optimizer, 'loss_scale': LossScaleState(optimizer)}
