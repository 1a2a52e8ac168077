"""What a step does with its gradients, written once for the plain and the micro-batched step.

The optimizer applies the gradients of the global-batch loss (each replica's
gradient of its loss divided by the number of replicas, summed across
replicas by `apply_gradients`); then, with --memory_size, the momentum
network moves towards the updated weights and the step's keys enter the
memory (`memory.MomentumEncoder.after_update`).

Under --precision=mixed_float16 the loss scale lives here too: every term
that starts a backward pass goes through `scale` (the loss, the micro-batched
step's cached gradient and its other terms), and the optimizer
(`loss_scale.GlobalLossScaleOptimizer`) unscales the gradients, skips the
step on every replica if any is not finite, and adapts the scale.
"""
import tensorflow as tf

from tf2.training import loss_scale


class Update:
  """Called in a replica context with (gradients, variables, the step's global keys)."""

  def __init__(self, optimizer, momentum=None):
    self.optimizer = optimizer
    self.momentum = momentum

  def scale(self, loss):
    """`loss` times the loss scale (unchanged without loss scaling), in its own dtype."""
    if not loss_scale.scaled(self.optimizer):
      return loss
    loss = tf.convert_to_tensor(loss)
    return loss * tf.cast(self.optimizer.dynamic_scale, loss.dtype)

  def __call__(self, gradients, variables, global_keys=None):
    self.optimizer.apply_gradients(
        [(g, v) for g, v in zip(gradients, variables) if g is not None])
    if self.momentum is not None:
      self.momentum.after_update(global_keys)
