"""The losses and metrics of a training step, as functions of the model's outputs.

The objective is the sum of the terms of the run's training mode (original
`run.py` single_step):

- pretraining: NT-Xent over the global batch (`nt_xent.py`, SimCLR eq. 1), or
  with --memory_size the loss against the momentum network's keys and the
  memory (`memory.py`), or with --contrastive_loss=generalized the generalized
  contrastive loss (`generalized_contrastive.py`; its alignment and
  distribution terms are metrics of their own); plus, with --lineareval_while_pretraining, the
  supervised head's cross-entropy on both views' labels (the head sees a
  stop-gradient of the representation);
- fine-tuning: the supervised head's cross-entropy;
- distillation: SimCLRv2 eq. 2 against the frozen teacher's logits
  (`distillation.py`), mixed with the labels' cross-entropy by --distill_alpha;
- always: the explicit weight-decay term (`optimizers.weight_decay_loss`).

The contrastive term couples the whole batch; the others are means over
examples. The plain step computes every term on its batch; the micro-batched
step (`gradient_cache.py`) computes the contrastive term once on the whole
batch and the per-example terms chunk by chunk, each chunk weighted by its
share. Both assemble the total in `Objective.total`.
"""
import tensorflow as tf

from tf2.dtypes import at_least_float32, state_dtype
from tf2.training import distillation
from tf2.training import generalized_contrastive
from tf2.training import memory as memory_lib
from tf2.training import nt_xent
from tf2.training.optimizers import weight_decay_loss

# The generalized loss's draws: stateless seed (step, GCL_SEED).
GCL_SEED = 20201105
# Metrics that are means over examples: in micro-batches each chunk contributes its share.
EXAMPLE_METRICS = ('distill_loss', 'teacher_agreement', 'supervised_loss', 'supervised_acc')


def supervised_loss(labels, logits):
  """Mean softmax cross-entropy for integer labels."""
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=tf.cast(labels, tf.int32), logits=at_least_float32(logits)))


def metric_names(config):
  names = ['weight_decay', 'total_loss']
  if config.train_mode == 'pretrain':
    names += ['contrast_loss', 'contrast_acc', 'contrast_entropy']
    if config.contrastive_loss == 'generalized':
      names += ['align_loss', 'dist_loss']
  if config.train_mode == 'distill':
    names += ['distill_loss', 'teacher_agreement']
    if config.distill_alpha > 0:
      names += ['supervised_loss', 'supervised_acc']
  elif config.has_supervised_head:
    names += ['supervised_loss', 'supervised_acc']
  return names


def _supervised_terms(labels, logits):
  loss = supervised_loss(labels, logits)
  correct = tf.equal(tf.argmax(logits, 1, output_type=tf.int32), tf.cast(labels, tf.int32))
  return loss, dict(supervised_loss=loss,
                    supervised_acc=tf.reduce_mean(tf.cast(correct, loss.dtype)))


class Objective:
  """The step's loss terms for a config; `teacher`: the frozen model of distillation;
  `memory`: the `NegativeMemory` of --memory_size; `step`: the step counter (the same on
  every replica), which seeds the generalized loss's random draws."""

  def __init__(self, config, teacher=None, memory=None, step=None):
    self.config = config
    self.teacher = teacher
    self.memory = memory
    self.step = step
    self.contrastive = config.train_mode == 'pretrain'
    self.metric_names = metric_names(config)
    self.example_metric_names = [n for n in self.metric_names if n in EXAMPLE_METRICS]
    self.dtype = state_dtype(config.precision)

  def __call__(self, outputs, images, labels, variables, global_keys=None):
    """(total loss, metrics) of one replica's batch: `outputs` of the model on `images`,
    `variables` the trainable ones (weight decay), `global_keys` the momentum network's
    keys with --memory_size."""
    contrastive_loss, metrics = None, {}
    if self.contrastive:
      contrastive_loss, metrics = self.contrastive_loss(outputs['proj_head_output'],
                                                        global_keys)
    example_loss, example_metrics = self.example_losses(outputs, images, labels)
    return self.total(contrastive_loss, example_loss, self.weight_decay(variables),
                      dict(metrics, **example_metrics))

  def contrastive_loss(self, projections, global_keys=None):
    """(NT-Xent over the global batch, its metrics) for this replica's projections;
    with `global_keys`, against those keys and the memory."""
    cfg = self.config
    if cfg.contrastive_loss == 'generalized':
      return self.generalized_loss(projections)
    if global_keys is None:
      loss, logits, labels = nt_xent.nt_xent_loss(
          projections, hidden_norm=cfg.hidden_norm, temperature=cfg.temperature)
    else:
      loss, logits, labels = memory_lib.memory_nt_xent_loss(
          projections, global_keys, self.memory.queue, self.memory.valid(),
          hidden_norm=cfg.hidden_norm, temperature=cfg.temperature)
    accuracy, entropy = nt_xent.contrastive_metrics(logits, labels)
    return loss, dict(contrast_loss=loss, contrast_acc=accuracy, contrast_entropy=entropy)

  def generalized_loss(self, projections):
    """(the generalized contrastive loss, its metrics): NT-Xent's accuracy and entropy
    (computed without gradient, for comparison), and the two terms."""
    cfg = self.config
    seed = None
    if self.step is not None:  # Fresh draws each step, the same on every replica.
      seed = tf.stack([tf.cast(self.step, tf.int64), tf.constant(GCL_SEED, tf.int64)])
    first, second = tf.split(projections, 2, 0)
    loss, align, dist = generalized_contrastive.generalized_contrastive_loss(
        first, second, lambda_weight=cfg.gcl_lambda, temperature=cfg.temperature,
        distribution=cfg.gcl_distribution, hidden_norm=cfg.hidden_norm,
        loss_scaling=cfg.gcl_loss_scaling, seed=seed)
    _, logits, labels = nt_xent.nt_xent_loss(tf.stop_gradient(projections),
                                             hidden_norm=cfg.hidden_norm,
                                             temperature=cfg.temperature)
    accuracy, entropy = nt_xent.contrastive_metrics(logits, labels)
    return loss, dict(contrast_loss=loss, contrast_acc=accuracy, contrast_entropy=entropy,
                      align_loss=align, dist_loss=dist)

  def example_losses(self, outputs, images, labels):
    """(loss, metrics) of the terms that are means over examples: the supervised
    head's cross-entropy and distillation (0.0 and {} when there are none)."""
    cfg = self.config
    if cfg.train_mode == 'distill':
      logits = outputs['logits_sup']
      teacher_logits = tf.stop_gradient(self.teacher(images, training=False)['logits_sup'])
      distill = distillation.distillation_loss(teacher_logits, logits, cfg.distill_temperature)
      metrics = dict(distill_loss=distill,
                     teacher_agreement=distillation.agreement(teacher_logits, logits))
      loss = (1.0 - cfg.distill_alpha) * distill
      if cfg.distill_alpha > 0:
        sup_loss, sup_metrics = _supervised_terms(labels, logits)
        metrics.update(sup_metrics)
        loss += cfg.distill_alpha * sup_loss
      return loss, metrics
    if 'logits_sup' not in outputs:
      return 0.0, {}
    logits = outputs['logits_sup']
    views = logits.shape[0] // labels.shape[0] if labels.shape[0] else 1
    return _supervised_terms(tf.tile(labels, [views]) if views > 1 else labels, logits)

  def weight_decay(self, variables):
    return weight_decay_loss(variables, self.config.optimizer, self.config.weight_decay)

  def total(self, contrastive_loss, example_loss, weight_decay, metrics):
    """(total loss, metrics with it and the weight decay): the one place the terms are
    summed, in the dtype losses are kept in (float64 in float64 mode, else float32)."""
    loss = 0.0
    if contrastive_loss is not None:
      loss += tf.cast(contrastive_loss, self.dtype)
    loss += tf.cast(example_loss, self.dtype)
    loss += tf.cast(weight_decay, self.dtype)
    return loss, dict(metrics, weight_decay=weight_decay, total_loss=loss)


def reported(metrics):
  """A step's metrics as the multi-step loop sums them: float32 scalars."""
  return {name: tf.cast(value, tf.float32) for name, value in metrics.items()}
