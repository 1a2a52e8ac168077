"""Numeric precision: Keras dtype policies and the dtype losses are computed in.

`float32` (default), `mixed_bfloat16` (bf16 compute, float32 variables and
losses: for hardware with native bf16, see `tf2/precision.py`),
`mixed_float16` (float16 compute, float32 variables and losses, with dynamic
loss scaling: `tf2/training/loss_scale.py`) and `float64` (for numerical
verification: distributed vs single-device results agree to ~1e-12 instead
of float32 noise). Losses, logits, BN statistics and kNN similarities are
computed in float32 under both mixed precisions (`at_least_float32`): exp of
an NT-Xent logit overflows float16 above about 11, and NT-Xent's mask of
1e9 is Inf there.
"""
import keras
import tensorflow as tf


def dtype_policy(precision):
  if precision == 'auto':
    raise ValueError("precision 'auto' must be resolved first (tf2.precision.resolve).")
  return None if precision == 'float32' else keras.DTypePolicy(precision)


def loss_dtype(x):
  """float64 stays float64; everything else is computed in float32."""
  return tf.float64 if x.dtype == tf.float64 else tf.float32


def state_dtype(precision):
  """The dtype of what a step keeps beside the weights (gradient sums, the
  memory of negatives): float64 in float64 mode, else float32."""
  return tf.float64 if precision == 'float64' else tf.float32


def at_least_float32(x):
  return tf.cast(x, loss_dtype(x))
