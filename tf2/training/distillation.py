"""Distillation loss of SimCLRv2 (section 2, eq. 2), for self-training on unlabelled images.

    L_distill = - sum_x sum_y P_T(y | x; tau) log P_S(y | x; tau),
    P(y | x; tau) = softmax(logits / tau),

averaged over the batch; the teacher's probabilities are constants (no
gradient). With labels the objective mixes in the supervised loss:

    L = (1 - alpha) L_distill + alpha L_sup   (`--distill_alpha`; 0: teacher only).

The paper writes the same mix with its alpha on the distillation term; ours
is 1 - the paper's. The original's distillation colab multiplies the term by
tau^2 (Hinton et al.); the paper's equation, used here, does not (equal at
the paper's tau = 1).
"""
import tensorflow as tf

from tf2.dtypes import at_least_float32


def distillation_loss(teacher_logits, student_logits, temperature):
  """Mean over the batch of the cross-entropy from P_T(.; tau) to P_S(.; tau)."""
  teacher = tf.stop_gradient(tf.nn.softmax(at_least_float32(teacher_logits) / temperature))
  student = at_least_float32(student_logits) / temperature
  return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=teacher, logits=student))


def agreement(teacher_logits, student_logits):
  """Fraction of examples where the student's top class is the teacher's."""
  same = tf.equal(tf.argmax(teacher_logits, -1), tf.argmax(student_logits, -1))
  return tf.reduce_mean(tf.cast(same, tf.float32))
