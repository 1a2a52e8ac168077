"""One SimCLR training step per replica, and several of them per tf.function call.

Per replica (original `run.py` single_step): the device augmentations
(`tf2/data/device_augment.py`), then with --memory_size the momentum
network's keys (`memory.MomentumEncoder`), then both views through the model
and the step's objective (`objective.py`) under a tape; the loss is divided
by the number of replicas because gradients are summed across replicas when
applied, so the applied gradient is that of the global-batch loss; the
update follows (`update.py`).

With --microbatch_size the step runs chunk by chunk instead, with the same
objective and update (`gradient_cache.GradientCache`).

Metrics are not stateful Keras metrics: each step returns its replica-mean
values and the multi-step loop returns their mean over the steps it ran.
"""
import tensorflow as tf

from tf2.data.device_augment import DeviceAugment
from tf2.dtypes import state_dtype
from tf2.training import memory
from tf2.training import objective as objective_lib
from tf2.training.gradient_cache import GradientCache
from tf2.training.update import Update


# Keys of the multi-step loop's result that are not metrics.
STEPS = 'steps'
ALL_FINITE = 'all_finite'
SKIPPED = 'skipped'  # Steps the loss scale skipped (float16 overflow),
TRAILING_SKIPS = 'trailing_skips'  # of which at the end of the call.


class TrainStep:
  """Builds the replica step and the distributed multi-step loop for a model."""

  def __init__(self, config, model, optimizer, strategy, teacher=None, ema_model=None):
    if (config.train_mode == 'distill') != (teacher is not None):
      raise ValueError('A teacher model is needed exactly when --train_mode=distill.')
    if bool(config.memory_size) != (ema_model is not None):
      raise ValueError('A momentum (EMA) model is needed exactly when --memory_size is set.')
    self.config, self.model, self.optimizer, self.strategy = config, model, optimizer, strategy
    self.ema_model = ema_model
    self.momentum = None
    if ema_model is not None:
      self.momentum = memory.MomentumEncoder(ema_model, model, strategy, config.memory_size,
                                             config.momentum_decay, config.hidden_norm,
                                             state_dtype(config.precision))
    self.memory = self.momentum.memory if self.momentum else None
    self.augment = DeviceAugment(config)
    self.objective = objective_lib.Objective(config, teacher, self.memory, optimizer.iterations)
    self.update = Update(optimizer, self.momentum)
    self.metric_names = self.objective.metric_names
    step = self.replica_step
    if config.jit_compile:
      step = tf.function(step, jit_compile=True)
    self._compiled_replica_step = step
    self._loop = None  # The multi-step loop, made by make_loop.
    # --microbatch_size: the step runs chunk by chunk (gradient caching).
    self.gradient_cache = GradientCache(
        config, model, strategy, self.objective, self.update, self.augment,
        self.momentum) if config.microbatch_size else None

  def distributed_step(self, images, labels):
    """One training step from the cross-replica context; per-replica metrics."""
    if self.gradient_cache is not None:
      return self.gradient_cache.step(images, labels)
    return self.strategy.run(self._compiled_replica_step, (images, labels))

  def replica_step(self, images, labels):
    images = self.augment(images)
    global_keys = self.momentum.keys(images) if self.momentum else None
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      outputs = self.model(images, training=True)
      loss, metrics = self.objective(outputs, images, labels, variables, global_keys)
      scaled_loss = self.update.scale(loss / self.strategy.num_replicas_in_sync)
    self.update(tape.gradient(scaled_loss, variables), variables, global_keys)
    return objective_lib.reported(metrics)

  def state_variables(self):
    """Every variable a step writes besides the optimizer's: the model's and those
    of `checkpointed` (the momentum network and the memory)."""
    return list(self.model.variables) + [v for extra in self.checkpointed().values()
                                         for v in extra.variables]

  def checkpointed(self):
    """The step's own state that checkpoints hold beside the model and optimizer."""
    return self.momentum.checkpointed() if self.momentum else {}

  def build_optimizer_state(self):
    """Creates the optimizer slots up front (not inside a replica context)."""
    with self.strategy.scope():
      self.optimizer.build(self.model.trainable_variables)

  def make_loop(self):
    """tf.function(iterator, num_steps) -> metrics averaged over the steps run (made once;
    later calls return the same function, so its traces are kept).

    `num_steps` is this process's proposal; the call runs the first replica's
    (the chief's), received by an all-reduce, so that every worker of a
    multi-worker run takes the same steps whatever its own clock proposed
    (collectives must match in count and order on every worker). The result
    also holds STEPS (the steps run), ALL_FINITE (1.0 if every variable of
    `state_variables` is finite after them: one device-side check instead of a
    host read of every variable after each call), SKIPPED and TRAILING_SKIPS
    (steps that applied no update, which only the loss scale does: the
    optimizer's step counter did not move). The metrics average the applied
    steps only.
    """
    if self._loop is not None:
      return self._loop
    strategy = self.strategy
    names = self.metric_names
    variables = self.state_variables()

    def chief_value(n):
      ctx = tf.distribute.get_replica_context()
      first = tf.equal(tf.cast(ctx.replica_id_in_sync_group, tf.int32), 0)
      # float32: collective all-reduces of int32 are refused on GPUs (step counts stay exact).
      return tf.where(first, tf.cast(n, tf.float32), 0.0)

    @tf.function
    def loop(iterator, num_steps):
      num_steps = tf.cast(strategy.reduce(tf.distribute.ReduceOp.SUM,
                                          strategy.run(chief_value, (num_steps,)), axis=None),
                          tf.int32)
      sums = {name: tf.constant(0.0) for name in names}
      applied = trailing = tf.constant(0)
      for _ in tf.range(num_steps):
        images, labels = next(iterator)
        before = tf.identity(self.optimizer.iterations)
        per_replica = self.distributed_step(images, labels)
        moved = self.optimizer.iterations > before
        sums = {name: tf.where(moved, sums[name] + strategy.reduce(
            tf.distribute.ReduceOp.MEAN, per_replica[name], axis=None), sums[name])
                for name in names}
        applied += tf.cast(moved, tf.int32)
        trailing = tf.where(moved, 0, trailing + 1)
      count = tf.cast(tf.maximum(applied, 1), tf.float32)
      result = {name: sums[name] / count for name in names}
      result[STEPS] = num_steps
      result[SKIPPED] = num_steps - applied
      result[TRAILING_SKIPS] = trailing
      result[ALL_FINITE] = tf.cast(all_finite(variables), tf.float32)
      return result

    self._loop = loop
    return loop


class LoopResult(tuple):
  """(metrics as floats, steps run, all variables finite), with `skipped` and
  `trailing_skips`: the steps the loss scale skipped, all and those at the end."""

  def __new__(cls, metrics, steps, finite, skipped=0, trailing_skips=0):
    result = super().__new__(cls, (metrics, steps, finite))
    result.skipped, result.trailing_skips = skipped, trailing_skips
    return result


def unpack(result):
  """The LoopResult of a multi-step loop's result."""
  result = dict(result)
  steps, finite = int(result.pop(STEPS)), bool(result.pop(ALL_FINITE))
  skipped, trailing = int(result.pop(SKIPPED)), int(result.pop(TRAILING_SKIPS))
  return LoopResult({k: float(v) for k, v in result.items()}, steps, finite, skipped, trailing)


def all_finite(variables):
  """One boolean: no NaN or Inf in any of `variables`."""
  return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32)))
                                 for v in variables]))
