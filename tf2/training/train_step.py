"""One SimCLR training step per replica, and several of them per tf.function call.

Per replica (original `run.py` single_step): forward both views, NT-Xent over
the global batch (pretraining), cross-entropy of the supervised head
(fine-tuning, or linear eval while pretraining on both views' labels), the
explicit weight-decay term; the loss is divided by the number of replicas
because gradients are summed across replicas when applied, so the applied
gradient is that of the global-batch loss.

With --microbatch_size the step runs chunk by chunk instead, with the same
losses (`gradient_cache.GradientCache`). With --memory_size the contrastive
loss takes its keys from the momentum network and its extra negatives from
the memory, both updated after the optimizer's step (`memory`).

Metrics are not stateful Keras metrics: each step returns its replica-mean
values and the multi-step loop returns their mean over the steps it ran.
"""
import tensorflow as tf

from tf2.training import distillation
from tf2.training import memory
from tf2.training import nt_xent
from tf2.training.gradient_cache import GradientCache
from tf2.dtypes import at_least_float32, state_dtype
from tf2.training.optimizers import weight_decay_loss


# Keys of the multi-step loop's result that are not metrics.
STEPS = 'steps'
ALL_FINITE = 'all_finite'


def supervised_loss(labels, logits):
  """Mean softmax cross-entropy for integer labels."""
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=at_least_float32(logits)))


def metric_names(config):
  names = ['weight_decay', 'total_loss']
  if config.train_mode == 'pretrain':
    names += ['contrast_loss', 'contrast_acc', 'contrast_entropy']
  if config.train_mode == 'distill':
    names += ['distill_loss', 'teacher_agreement']
    if config.distill_alpha > 0:
      names += ['supervised_loss', 'supervised_acc']
  elif config.has_supervised_head:
    names += ['supervised_loss', 'supervised_acc']
  return names


class TrainStep:
  """Builds the replica step and the distributed multi-step loop for a model."""

  def __init__(self, config, model, optimizer, strategy, teacher=None, ema_model=None):
    if (config.train_mode == 'distill') != (teacher is not None):
      raise ValueError('A teacher model is needed exactly when --train_mode=distill.')
    if bool(config.memory_size) != (ema_model is not None):
      raise ValueError('A momentum (EMA) model is needed exactly when --memory_size is set.')
    self.config = config
    self.model = model
    self.teacher = teacher
    self.ema_model = ema_model
    self.memory = None
    if ema_model is not None:
      self.momentum_pairs = memory.momentum_pairs(ema_model, model)
      dim = model.projection_shape(1)[-1]
      with strategy.scope():
        self.memory = memory.NegativeMemory(config.memory_size, dim,
                                            state_dtype(config.precision))
    self.optimizer = optimizer
    self.strategy = strategy
    self.metric_names = metric_names(config)
    step = self.replica_step
    if config.jit_compile:
      step = tf.function(step, jit_compile=True)
    self._compiled_replica_step = step
    # --microbatch_size: the step runs chunk by chunk (gradient caching).
    self.gradient_cache = GradientCache(self) if config.microbatch_size else None

  def distributed_step(self, images, labels):
    """One training step from the cross-replica context; per-replica metrics."""
    if self.gradient_cache is not None:
      return self.gradient_cache.step(images, labels)
    return self.strategy.run(self._compiled_replica_step, (images, labels))

  def losses(self, images, labels, training=True, global_keys=None):
    """Returns (total loss, metrics dict) for one replica's batch.

    `global_keys`: the momentum network's keys (`memory.gather_keys`) of
    `images`, already augmented on the device, with --memory_size.
    """
    outputs = self.model(images, training=training,
                         apply_device_augment=False if global_keys is not None else None)
    metrics = {}
    loss = 0.0
    if self.config.train_mode == 'pretrain':
      con_loss, con_metrics = self.contrastive_loss(outputs['proj_head_output'], global_keys)
      metrics.update(con_metrics)
      loss += con_loss
    example_loss, example_metrics = self.example_losses(outputs, images, labels)
    metrics.update(example_metrics)
    loss += example_loss
    wd = self.weight_decay()
    loss += wd
    metrics.update(weight_decay=wd, total_loss=loss)
    return loss, metrics

  def contrastive_loss(self, projections, global_keys=None):
    """(NT-Xent over the global batch, its metrics) for this replica's projections;
    with `global_keys`, against those keys and the memory."""
    cfg = self.config
    if global_keys is None:
      con_loss, logits_con, labels_con = nt_xent.nt_xent_loss(
          projections, hidden_norm=cfg.hidden_norm, temperature=cfg.temperature)
    else:
      con_loss, logits_con, labels_con = memory.memory_nt_xent_loss(
          projections, global_keys, self.memory.queue, self.memory.valid(),
          hidden_norm=cfg.hidden_norm, temperature=cfg.temperature)
    acc, entropy = nt_xent.contrastive_metrics(logits_con, labels_con)
    return con_loss, dict(contrast_loss=con_loss, contrast_acc=acc, contrast_entropy=entropy)

  def example_losses(self, outputs, images, labels):
    """(loss, metrics) of the terms that are means over examples: the supervised
    head's cross-entropy and distillation (0.0 and {} when there are none)."""
    cfg = self.config
    metrics = {}
    loss = 0.0
    if cfg.train_mode == 'distill':
      logits = outputs['logits_sup']
      teacher_logits = tf.stop_gradient(self.teacher(images, training=False)['logits_sup'])
      dist_loss = distillation.distillation_loss(teacher_logits, logits,
                                                 cfg.distill_temperature)
      metrics.update(distill_loss=dist_loss,
                     teacher_agreement=distillation.agreement(teacher_logits, logits))
      loss += (1.0 - cfg.distill_alpha) * dist_loss
      if cfg.distill_alpha > 0:
        sup_loss = supervised_loss(labels, logits)
        correct = tf.equal(tf.argmax(logits, 1, output_type=tf.int32), tf.cast(labels, tf.int32))
        metrics.update(supervised_loss=sup_loss,
                       supervised_acc=tf.reduce_mean(tf.cast(correct, sup_loss.dtype)))
        loss += cfg.distill_alpha * sup_loss
    elif 'logits_sup' in outputs:
      logits = outputs['logits_sup']
      views = logits.shape[0] // labels.shape[0] if labels.shape[0] else 1
      sup_labels = tf.tile(labels, [views]) if views > 1 else labels
      sup_loss = supervised_loss(sup_labels, logits)
      correct = tf.equal(tf.argmax(logits, 1, output_type=tf.int32),
                         tf.cast(sup_labels, tf.int32))
      metrics.update(supervised_loss=sup_loss,
                     supervised_acc=tf.reduce_mean(tf.cast(correct, sup_loss.dtype)))
      loss += sup_loss
    return loss, metrics

  def weight_decay(self):
    return weight_decay_loss(self.model.trainable_variables, self.config.optimizer,
                             self.config.weight_decay)

  def replica_step(self, images, labels):
    variables = self.model.trainable_variables
    global_keys = None
    if self.memory is not None:
      images, global_keys = self.momentum_keys(images)
    with tf.GradientTape() as tape:
      loss, metrics = self.losses(images, labels, global_keys=global_keys)
      scaled_loss = loss / self.strategy.num_replicas_in_sync
    grads = tape.gradient(scaled_loss, variables)
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    self.optimizer.apply_gradients(pairs)
    if self.memory is not None:
      memory.momentum_update(*self.momentum_pairs, self.config.momentum_decay)
      self.memory.enqueue(global_keys)
    return {k: tf.cast(v, tf.float32) for k, v in metrics.items()}

  def momentum_keys(self, images):
    """(images augmented on the device once if training does, the momentum network's global keys):
    both networks must see the same views."""
    if self.model.augments_when_training:
      images = self.model.device_augment(images)
    keys = self.ema_model(images, training=True, apply_device_augment=False)['proj_head_output']
    return images, memory.gather_keys(keys, self.config.hidden_norm)

  def state_variables(self):
    """Every variable a step writes besides the optimizer's: the model's and those
    of `checkpointed` (the momentum network and the memory)."""
    return list(self.model.variables) + [v for extra in self.checkpointed().values()
                                         for v in extra.variables]

  def checkpointed(self):
    """The step's own state that checkpoints hold beside the model and optimizer."""
    if self.memory is None:
      return {}
    return {'ema_model': self.ema_model, 'memory': self.memory}

  def build_optimizer_state(self):
    """Creates the optimizer slots up front (not inside a replica context)."""
    with self.strategy.scope():
      self.optimizer.build(self.model.trainable_variables)

  def make_loop(self):
    """tf.function(iterator, num_steps) -> metrics averaged over the steps run.

    `num_steps` is this process's proposal; the call runs the first replica's
    (the chief's), received by an all-reduce, so that every worker of a
    multi-worker run takes the same steps whatever its own clock proposed
    (collectives must match in count and order on every worker). The result
    also holds STEPS (the steps run) and ALL_FINITE (1.0 if every variable of
    `state_variables` is finite after them: one device-side check instead of a
    host read of every variable after each call).
    """
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
      for _ in tf.range(num_steps):
        images, labels = next(iterator)
        per_replica = self.distributed_step(images, labels)
        sums = {name: sums[name] + strategy.reduce(
            tf.distribute.ReduceOp.MEAN, per_replica[name], axis=None) for name in names}
      count = tf.cast(tf.maximum(num_steps, 1), tf.float32)
      result = {name: sums[name] / count for name in names}
      result[STEPS] = num_steps
      result[ALL_FINITE] = tf.cast(all_finite(variables), tf.float32)
      return result

    return loop


def unpack(result):
  """(metrics as floats, steps run, all variables finite) of a multi-step loop's result."""
  result = dict(result)
  steps, finite = int(result.pop(STEPS)), bool(result.pop(ALL_FINITE))
  return {k: float(v) for k, v in result.items()}, steps, finite


def all_finite(variables):
  """One boolean: no NaN or Inf in any of `variables`."""
  return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32)))
                                 for v in variables]))
