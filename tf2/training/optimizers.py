"""Optimizer choice and the explicit weight-decay term (original `model.py`).

- `lars` (default): LARS with coupled weight decay inside the update, which
  skips BN, biases and the supervised head; that head's kernel alone gets an
  explicit L2 term in the loss.
- `momentum`: SGD with Nesterov momentum; `adam`: Adam. With these, every
  non-BN trainable variable (biases included) gets the explicit L2 term.

The L2 term is `weight_decay * sum(||v||^2 / 2)` (tf.nn.l2_loss).
"""
import keras
import tensorflow as tf

from tf2.dtypes import at_least_float32

from tf2.training import loss_scale
from tf2.training.lars import LARS, DEFAULT_EXCLUDE


def build_optimizer(config, learning_rate):
  """The optimizer of --optimizer; with --precision=mixed_float16, wrapped in dynamic loss
  scaling (`loss_scale.py`)."""
  return loss_scale.wrap(_optimizer(config, learning_rate), config.precision)


def _optimizer(config, learning_rate):
  if config.optimizer == 'momentum':
    return keras.optimizers.SGD(learning_rate, momentum=config.momentum, nesterov=True)
  if config.optimizer == 'adam':
    return keras.optimizers.Adam(learning_rate)
  if config.optimizer == 'lars':
    return LARS(learning_rate, momentum=config.momentum, weight_decay=config.weight_decay,
                exclude_from_weight_decay=DEFAULT_EXCLUDE, eeta=config.lars_eeta)
  raise ValueError(f'Unknown optimizer {config.optimizer!r} (momentum, adam or lars).')


def weight_decay_variables(variables, optimizer_name):
  """The variables that get the explicit L2 term for this optimizer."""
  if optimizer_name == 'lars':
    return [v for v in variables if 'head_supervised' in v.path and 'bias' not in v.path]
  return [v for v in variables if 'batch_normalization' not in v.path]


def weight_decay_loss(variables, optimizer_name, weight_decay):
  chosen = weight_decay_variables(variables, optimizer_name)
  if not chosen or not weight_decay:
    return tf.constant(0.0, variables[0].dtype if variables else tf.float32)
  return weight_decay * tf.add_n([tf.nn.l2_loss(at_least_float32(v)) for v in chosen])
