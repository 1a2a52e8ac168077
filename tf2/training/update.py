"""What a step does with its gradients, written once for the plain and the micro-batched step.

The optimizer applies the gradients of the global-batch loss (each replica's
gradient of its loss divided by the number of replicas, summed across
replicas by `apply_gradients`); then, with --memory_size, the momentum
network moves towards the updated weights and the step's keys enter the
memory (`memory.MomentumEncoder.after_update`).
"""


class Update:
  """Called in a replica context with (gradients, variables, the step's global keys)."""

  def __init__(self, optimizer, momentum=None):
    self.optimizer = optimizer
    self.momentum = momentum

  def __call__(self, gradients, variables, global_keys=None):
    self.optimizer.apply_gradients(
        [(g, v) for g, v in zip(gradients, variables) if g is not None])
    if self.momentum is not None:
      self.momentum.after_update(global_keys)
