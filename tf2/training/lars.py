"""LARS: layer-wise adaptive rate scaling (You et al. 2017), SimCLR's optimizer.

The update of the original `lars_optimizer.py`, as a Keras 3 optimizer. For a
variable w with gradient g, learning rate lr, momentum m and trust
coefficient eeta:

    g <- g + weight_decay * w                 (unless excluded from decay)
    classic momentum (default):
      trust = eeta * ||w|| / ||g||             (1 if either norm is 0, or excluded)
      v <- m * v + lr * trust * g
      w <- w - v                                (nesterov: w - (m * v + lr * trust * g))
    otherwise:
      v <- m * v + g;  u = v                    (nesterov: u = m * v + g)
      trust = eeta * ||w|| / ||u||
      w <- w - lr * trust * u

Exclusions are regular expressions searched in each variable's `.path`
(Keras' own `exclude_from_weight_decay` does not see layer names of
subclassed models); they are resolved once per variable in `build()`.
Layer adaptation uses the weight-decay exclusions unless given its own.
"""
import re

import keras
import tensorflow as tf

DEFAULT_EXCLUDE = ('batch_normalization', 'bias', 'head_supervised')


class LARS(keras.optimizers.Optimizer):
  """LARS with classic or non-classic momentum and optional Nesterov."""

  def __init__(self, learning_rate=0.001, momentum=0.9, use_nesterov=False,
               weight_decay=0.0, exclude_from_weight_decay=DEFAULT_EXCLUDE,
               exclude_from_layer_adaptation=None, classic_momentum=True,
               eeta=0.001, name='LARS', **kwargs):
    # `weight_decay` is LARS' own coupled decay; the base class' decoupled
    # decay stays off.
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.momentum = momentum
    self.use_nesterov = use_nesterov
    self.lars_weight_decay = weight_decay
    self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())
    self.exclude_from_layer_adaptation = tuple(
        self.exclude_from_weight_decay if exclude_from_layer_adaptation is None
        else exclude_from_layer_adaptation)
    self.classic_momentum = classic_momentum
    self.eeta = eeta

  @staticmethod
  def _matches(path, patterns):
    return any(re.search(p, path) for p in patterns)

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self.momentums = []
    self._decay_flags = {}
    self._adapt_flags = {}
    for var in var_list:
      self.momentums.append(self.add_variable_from_reference(var, 'momentum'))
      key = self._var_key(var)
      self._decay_flags[key] = bool(self.lars_weight_decay) and not self._matches(
          var.path, self.exclude_from_weight_decay)
      self._adapt_flags[key] = not self._matches(var.path, self.exclude_from_layer_adaptation)

  def uses_weight_decay(self, var):
    return self._decay_flags[self._var_key(var)]

  def uses_layer_adaptation(self, var):
    return self._adapt_flags[self._var_key(var)]

  def _trust_ratio(self, w, u):
    w_norm = tf.norm(w, ord=2)
    u_norm = tf.norm(u, ord=2)
    return tf.where(w_norm > 0, tf.where(u_norm > 0, self.eeta * w_norm / u_norm, 1.0), 1.0)

  def update_step(self, gradient, variable, learning_rate):
    lr = tf.cast(learning_rate, variable.dtype)
    grad = tf.cast(gradient, variable.dtype)
    w = tf.convert_to_tensor(variable)
    v = self.momentums[self._get_variable_index(variable)]
    key = self._var_key(variable)
    if self._decay_flags[key]:
      grad = grad + self.lars_weight_decay * w
    adapt = self._adapt_flags[key]
    if self.classic_momentum:
      scaled_lr = lr * self._trust_ratio(w, grad) if adapt else lr
      next_v = self.momentum * v + scaled_lr * grad
      update = self.momentum * next_v + scaled_lr * grad if self.use_nesterov else next_v
      next_w = w - update
    else:
      next_v = self.momentum * v + grad
      update = self.momentum * next_v + grad if self.use_nesterov else next_v
      scaled_lr = lr * self._trust_ratio(w, update) if adapt else lr
      next_w = w - scaled_lr * update
    self.assign(v, next_v)
    self.assign(variable, next_w)

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, use_nesterov=self.use_nesterov,
                  weight_decay=self.lars_weight_decay,
                  exclude_from_weight_decay=list(self.exclude_from_weight_decay),
                  exclude_from_layer_adaptation=list(self.exclude_from_layer_adaptation),
                  classic_momentum=self.classic_momentum, eeta=self.eeta)
    return config
