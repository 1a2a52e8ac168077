"""Learning rate: linear warmup then cosine decay to zero (SimCLR appendix B.1).

Exactly the original `WarmUpAndCosineDecay`:
    scaled = base * batch / 256                     ('linear' scaling)
           = base * sqrt(batch)                     ('sqrt' scaling)
    warmup_steps = int(round(warmup_epochs * num_examples // batch))
    total_steps  = train_steps or num_examples * train_epochs // batch + 1
    lr(step) = step / warmup_steps * scaled                      step < warmup
             = scaled * 0.5 * (1 + cos(pi * min(step - warmup, T) / T))  after,
with T = total_steps - warmup_steps.
"""
import math

import keras
import tensorflow as tf


def train_steps(num_examples, train_epochs, batch_size, explicit_steps=0):
  """Total training steps: `train_steps` if set, else the epoch-derived count."""
  return explicit_steps or (num_examples * train_epochs // batch_size + 1)


def scaled_learning_rate(base_learning_rate, batch_size, scaling):
  if scaling == 'linear':
    return base_learning_rate * batch_size / 256.0
  if scaling == 'sqrt':
    return base_learning_rate * math.sqrt(batch_size)
  raise ValueError(f'Unknown learning rate scaling {scaling!r} (use linear or sqrt).')


def warmup_steps(warmup_epochs, num_examples, batch_size):
  return int(round(warmup_epochs * num_examples // batch_size))


class WarmUpAndCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
  """lr(step) for the step count held by the optimizer."""

  def __init__(self, base_learning_rate, num_examples, batch_size, warmup_epochs,
               total_steps, scaling='linear'):
    super().__init__()
    self.base_learning_rate = base_learning_rate
    self.num_examples = num_examples
    self.batch_size = batch_size
    self.warmup_epochs = warmup_epochs
    self.total_steps = total_steps
    self.scaling = scaling
    self.scaled_lr = scaled_learning_rate(base_learning_rate, batch_size, scaling)
    self.warmup_steps = warmup_steps(warmup_epochs, num_examples, batch_size)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = float(self.warmup_steps)
    if self.warmup_steps:
      warmup_lr = step / warmup * self.scaled_lr
    else:
      warmup_lr = self.scaled_lr
    decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
    progress = tf.minimum(step - warmup, decay_steps) / decay_steps
    cosine_lr = self.scaled_lr * 0.5 * (1.0 + tf.cos(math.pi * progress))
    return tf.where(step < warmup, warmup_lr, cosine_lr)

  def get_config(self):
    return dict(base_learning_rate=self.base_learning_rate, num_examples=self.num_examples,
                batch_size=self.batch_size, warmup_epochs=self.warmup_epochs,
                total_steps=self.total_steps, scaling=self.scaling)


def schedule_from_config(config, num_examples):
  return WarmUpAndCosineDecay(
      config.learning_rate, num_examples, config.train_batch_size, config.warmup_epochs,
      train_steps(num_examples, config.train_epochs, config.train_batch_size,
                  config.train_steps),
      config.learning_rate_scaling)
