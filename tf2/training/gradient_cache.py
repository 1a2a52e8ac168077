"""Micro-batched training steps: the exact large-batch NT-Xent by gradient caching.

NT-Xent couples every example of the global batch (each one's negatives are
all the others), so accumulating gradients over small batches changes the
loss: fewer negatives (SimCLR section 3, figure 9). Gradient caching (Gao et
al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup", section 3) keeps it. With z = f(x; w) the projections of the whole
batch and L(z) the loss,

    dL/dw = sum_c (dz_c/dw)^T g_c,   g = dL/dz,

and each chunk's term is the gradient of the surrogate <f(x_c; w), g_c> with
g_c held constant. One step per replica, for chunks of M images (both views
of an image in the same chunk):

  1. pass 1, no tape: z_c = f(x_c) for every chunk;
  2. L = NT-Xent of all of z (negatives from every replica, as without
     chunks), and g = dL/dz;
  3. pass 2, one chunk at a time under a tape: the gradient of <f(x_c), g_c>
     plus the chunk's share (M / batch) of the losses that are means over
     examples (the supervised head's, distillation), summed; then the
     weight-decay term and one optimizer update.

Activations are held for one chunk at a time. The forward pass runs twice,
so a step computes about 4/3 of an unchunked one (a forward pass is about a
third of a training step's arithmetic). Fine-tuning and distillation have no
coupled term: they skip passes 1-2 and accumulate plain gradients.

With --memory_size, a pass 0 computes the momentum network's keys chunk by
chunk (no tape, training mode as in the unchunked step), gathers them from
every replica once, and L in step 2 is the memory's loss against them
(`memory.memory_nt_xent_loss`); after the update the momentum weights move
and the keys are enqueued, as in the unchunked step.

Batch norm sees each micro-batch, the same in both passes, so the gradient is
exact for that network (what that changes for the user, and when it is the
full batch's gradient: docs/usage.md#large-batches-on-little-memory). Moving
averages advance once per step: each chunk's update is recorded in a
`keras.StatelessScope` instead of applied, and their mean is assigned at the
end, which with one chunk is the unchunked step's update. The momentum
network's moving averages advance the same way, by its pass 0.

The augmentations, those on the device included, are drawn once per step, before
the chunks, so both passes see the same inputs. Every chunk is its own
`strategy.run`, looped in the cross-replica context (MirroredStrategy
refuses a synchronisation, global BN's all-reduce or a mirrored variable's
update, inside a loop of a replica function). The projection cache and the
metric sums are per-replica loop variables; the gradient and BN sums are
per-replica variables (see `_make_accumulators`).
"""
from absl import logging
import keras
import tensorflow as tf

from tf2.dtypes import state_dtype
from tf2.errors import ConfigError
from tf2.training import objective as objective_lib


def check_microbatch_size(microbatch_size, global_batch, replicas):
  """Number of chunks per replica; ConfigError unless M divides the per-replica batch."""
  per_replica, remainder = divmod(global_batch, replicas)
  if remainder or per_replica % microbatch_size:
    raise ConfigError(
        f'--microbatch_size={microbatch_size} must divide the per-replica batch: '
        f'--train_batch_size={global_batch} over {replicas} replica(s) is '
        f'{global_batch / replicas:g} images each. Choose a --microbatch_size that divides '
        f'it, or 0 to train without micro-batches.')
  return per_replica // microbatch_size


def views_major(cache):
  """[C, V*M, d] chunk outputs (each chunk view-major) -> [V*C*M, d] as one batch emits them."""
  chunks, rows, dim = cache.shape
  return tf.reshape(tf.transpose(tf.reshape(cache, [chunks, 2, rows // 2, dim]), [1, 0, 2, 3]),
                    [-1, dim])


def chunks_major(hidden, chunks):
  """The inverse of `views_major`: [2*C*M, d] -> [C, 2M, d]."""
  dim = hidden.shape[-1]
  return tf.reshape(tf.transpose(tf.reshape(hidden, [2, chunks, -1, dim]), [1, 0, 2, 3]),
                    [chunks, -1, dim])


class GradientCache:
  """The micro-batched step: `model` trained under `strategy` on `objective`, its
  gradients given to `update`, its batch augmented by `augment` first; `momentum`:
  the `memory.MomentumEncoder` of --memory_size."""

  def __init__(self, config, model, strategy, objective, update, augment, momentum=None):
    self.model, self.strategy, self.objective = model, strategy, objective
    self.update, self.augment, self.momentum = update, augment, momentum
    self.microbatch_size = config.microbatch_size
    self.replicas = self.strategy.num_replicas_in_sync
    self.chunks = check_microbatch_size(config.microbatch_size, config.train_batch_size,
                                        self.replicas)
    self.contrastive = objective.contrastive
    self.ema_model = momentum.ema_model if momentum else None
    logging.info('Micro-batches: %d chunk(s) of %d images per replica and step (%s).',
                 self.chunks, self.microbatch_size,
                 'gradient caching' if self.contrastive else 'gradient accumulation')
    self.example_metrics = objective.example_metric_names
    # Losses and metrics accumulate in the dtype losses are computed in.
    self.dtype = state_dtype(config.precision)
    # Filled when pass 2 is traced, read when the update is traced after it.
    self._has_gradient = None
    self._updated_state = None
    self._ema_updated = None  # Filled when pass 0 is traced.
    wrap = (lambda fn: tf.function(fn, jit_compile=True)) if config.jit_compile else (lambda fn: fn)
    if self.contrastive:
      self.cache_shape = [self.chunks] + self.model.projection_shape(self.microbatch_size)
    self._make_accumulators()
    self._prepare = wrap(self.prepare)
    self._empty_cache = wrap(self.empty_cache)
    self._start_keys = wrap(self.start_keys)
    self._key_forward = wrap(self.key_forward)
    self._gather_keys = wrap(self.gather_keys)
    self._forward = wrap(self.forward)
    self._cached_gradient = wrap(self.cached_gradient)
    self._zeros = wrap(self.zeros)
    self._backward = wrap(self.backward)
    self._apply = wrap(self.apply)

  def step(self, images, labels):
    """One training step in the cross-replica context; returns per-replica metrics."""
    run = self.strategy.run
    images, labels = run(self._prepare, (images, labels))
    metrics, cached, global_keys = {}, None, None
    if self.ema_model is not None:
      keys = run(self._start_keys)
      for c in tf.range(self.chunks):
        keys = run(self._key_forward, (keys, images, c))
      global_keys = run(self._gather_keys, (keys,))
    if self.contrastive:
      cache = run(self._empty_cache)
      for c in tf.range(self.chunks):
        cache = run(self._forward, (cache, images, c))
      cached, metrics = run(self._cached_gradient, (cache, global_keys))
    accumulated = run(self._zeros)
    for c in tf.range(self.chunks):
      accumulated = run(self._backward, (accumulated, images, labels, cached, c))
    return run(self._apply, (accumulated, metrics, global_keys))

  def prepare(self, images, labels):
    """Augments on the device once for the step, then chunks: [B, ...] -> [C, M, ...]."""
    images = self.augment(images)
    m = self.microbatch_size
    return (tf.reshape(images, [self.chunks, m] + images.shape[1:].as_list()),
            tf.reshape(labels, [self.chunks, m] + labels.shape[1:].as_list()))

  def _projections(self, chunk):
    """Projections of one chunk in training mode, leaving every variable as it was."""
    with keras.StatelessScope():
      return self.model(chunk, training=True)['proj_head_output']

  def start_keys(self):
    """Zeroes the momentum network's BN sums; returns pass 0's empty key cache."""
    _zero(self._ema_state_sums)
    return self.empty_cache()

  def key_forward(self, keys, images, c):
    """Pass 0, chunk c: the momentum network's keys (training mode, no tape); its BN
    updates are summed, not applied."""
    state = _statistics(self.ema_model)
    with keras.StatelessScope() as scope:
      k = self.ema_model(tf.gather(images, c), training=True)['proj_head_output']
      updates = _recorded_updates(scope, state)
    self._ema_updated = [u is not None for u in updates]
    _add(self._ema_state_sums, updates)
    return tf.tensor_scatter_nd_update(keys, [[c]], tf.cast(k, keys.dtype)[None])

  def gather_keys(self, keys):
    """The global batch's keys (`memory.gather_keys`) from pass 0's cache."""
    return self.momentum.gather(views_major(keys))

  def empty_cache(self):
    """Pass 1's [C, 2M, d] cache of projections, zeros until each chunk is written."""
    return tf.zeros(self.cache_shape, self.dtype)

  def forward(self, cache, images, c):
    """Pass 1, chunk c (no tape)."""
    z = self._projections(tf.gather(images, c))
    return tf.tensor_scatter_nd_update(cache, [[c]], z[None])

  def cached_gradient(self, cache, global_keys=None):
    """(dL/dz per chunk [C, 2M, d], contrastive metrics); L is already divided by the
    number of replicas, as the unchunked step divides its loss, and multiplied by the loss
    scale under mixed_float16 (g is far below float16's smallest normal otherwise). With
    the memory, L is against `global_keys` and the queue."""
    hidden = views_major(cache)
    with tf.GradientTape() as tape:
      tape.watch(hidden)
      loss, metrics = self.objective.contrastive_loss(hidden, global_keys)
      scaled = self.update.scale(loss / self.replicas)
    return chunks_major(tape.gradient(scaled, hidden), self.chunks), metrics

  def _make_accumulators(self):
    """Per-replica variables that sum the chunks' gradients and BN updates (not
    checkpointed: they hold nothing between steps). Loop variables would do,
    but grappler's arithmetic optimizer turns `sum + update` (a BN update is
    itself a sum) in a loop nested in the steps loop into a temporary variable
    that the next call finds still alive (AlreadyExistsError); assign_add
    leaves no chain of adds to rewrite."""
    def zeros_like(v):
      return tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                         synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.NONE)
    with self.strategy.scope():
      self._grad_sums = [zeros_like(v) for v in self.model.trainable_variables]
      self._state_sums = [zeros_like(v) for v in _statistics(self.model)]
      self._ema_state_sums = ([zeros_like(v) for v in _statistics(self.ema_model)]
                              if self.ema_model is not None else [])

  def zeros(self):
    """Zeroes pass 2's sums; returns the example losses' and metrics' (loop variables)."""
    _zero(self._grad_sums + self._state_sums)
    return {'loss': tf.constant(0.0, self.dtype),
            'metrics': {name: tf.constant(0.0, self.dtype) for name in self.example_metrics}}

  def backward(self, accumulated, images, labels, cached, c):
    """Pass 2, chunk c: adds its gradient, its BN updates and its share of the metrics."""
    variables = self.model.trainable_variables
    state = _statistics(self.model)
    chunk = tf.gather(images, c)
    share = 1.0 / self.chunks
    with keras.StatelessScope() as scope:
      with tf.GradientTape() as tape:
        outputs = self.model(chunk, training=True)
        example_loss, example_metrics = self.objective.example_losses(
            outputs, chunk, tf.gather(labels, c))
        surrogate = self.update.scale(example_loss * share / self.replicas)
        if cached is not None:
          z = outputs['proj_head_output']
          surrogate += tf.reduce_sum(z * tf.cast(tf.gather(cached, c), z.dtype))
      grads = tape.gradient(surrogate, variables)
      updates = _recorded_updates(scope, state)
    self._has_gradient = [g is not None for g in grads]
    self._updated_state = [u is not None for u in updates]
    _add(self._grad_sums + self._state_sums, grads + updates)
    example_loss = tf.cast(example_loss, self.dtype)
    return {
        'loss': accumulated['loss'] + example_loss * share,
        'metrics': {name: accumulated['metrics'][name] +
                    tf.cast(example_metrics[name], self.dtype) * share
                    for name in self.example_metrics}}

  def apply(self, accumulated, contrastive_metrics, global_keys=None):
    """Weight decay, the update (`update.Update`), the mean BN updates of the online (and
    momentum) network; returns the step's metrics."""
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      wd = self.objective.weight_decay(variables)
      scaled = self.update.scale(wd / self.replicas)
    wd_grads = tape.gradient(scaled, variables) if variables else []
    grads = []
    for total, has, g_wd in zip(self._grad_sums, self._has_gradient, wd_grads):
      g = total.read_value() if has else None
      if g_wd is not None:
        g = g_wd if g is None else g + g_wd
      grads.append(g)
    self.update(grads, variables, global_keys)
    _assign_means(_statistics(self.model), self._state_sums, self._updated_state, self.chunks)
    if self.ema_model is not None:
      _assign_means(_statistics(self.ema_model), self._ema_state_sums, self._ema_updated,
                    self.chunks)
    _, metrics = self.objective.total(contrastive_metrics.get('contrast_loss'),
                                      accumulated['loss'], wd,
                                      dict(contrastive_metrics, **accumulated['metrics']))
    return objective_lib.reported(metrics)


def _statistics(model):
  """The variables a training-mode forward pass of `model` updates: BN moving statistics
  (not frozen weights, which are non-trainable too)."""
  return [v for v in model.non_trainable_variables
          if v.path.endswith(('moving_mean', 'moving_variance'))]


def _recorded_updates(scope, state):
  """The values a StatelessScope recorded for `state` (None where not updated); raises
  if the pass updated any other variable."""
  updates = [scope.get_current_value(v) for v in state]
  if sum(u is not None for u in updates) != len(scope.state_mapping):
    raise NotImplementedError('Micro-batches average BN moving statistics only; this '
                              'model updates other variables in its forward pass.')
  return updates


def _zero(sums):
  for total in sums:
    total.assign(tf.zeros(total.shape, total.dtype))


def _add(sums, values):
  """Adds each chunk's value to its sum (None: the chunk had none)."""
  for total, value in zip(sums, values):
    if value is not None:
      total.assign_add(tf.cast(value, total.dtype))


def _assign_means(variables, sums, updated, chunks):
  """Each updated variable becomes the mean of its chunks' updates."""
  for v, total, was_updated in zip(variables, sums, updated):
    if was_updated:
      v.assign(total.read_value() / chunks)
