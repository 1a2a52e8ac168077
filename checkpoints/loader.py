"""One call for every released format: images -> dict of SimCLR outputs.

    features = loader.load(path)
    out = features(images)          # float32 [B, H, W, 3] in [0, 1]
    out['final_avg_pool'], out['logits_sup'], out['block_group4'], ...

`path` may be a TF1 hub module (`gs://simclr-checkpoints/.../hub/`), an
original tf2 SavedModel (`gs://simclr-checkpoints-tf2/.../saved_model/`) or
an export of this project (`model_dir/saved_model/<step>/`). TF2 SavedModels
are called as `module(images, trainable=False)`; TF1 hub modules through
their `default` signature (input `images`), whose `default` output is the
representation (returned as `final_avg_pool` too). For fine-tuning, convert
the checkpoint with `checkpoints.convert` into a Keras model instead.
"""
import os

import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.core.protobuf import saved_model_pb2


class Features:
  """A loaded model that maps images to the dict of SimCLR outputs."""

  def __init__(self, path):
    self.path = path
    # TF1 hub modules hold two graphs (tags {} for inference, {'train'}): pick
    # the inference one; TF2 SavedModels have a single graph.
    self.module = hub.load(path, tags=[] if _num_meta_graphs(path) > 1 else None)
    signatures = getattr(self.module, 'signatures', {})
    if callable(self.module) and hasattr(self.module, '__call__') and (
        'default' not in signatures):
      self.kind = 'tf2'
    elif 'default' in signatures:
      self.kind = 'tf1_signature'
    else:
      raise ValueError(f'{path} is neither callable as module(images, trainable) nor has a '
                       '"default" signature: not a SimCLR export.')

  def __call__(self, images):
    images = tf.convert_to_tensor(images, tf.float32)
    if self.kind == 'tf2':
      out = dict(self.module(images, trainable=False))
    else:
      out = dict(self.module.signatures['default'](images=images))
    if 'final_avg_pool' not in out and 'default' in out:
      out['final_avg_pool'] = out['default']
    out.pop('default', None)
    return out


def _num_meta_graphs(path):
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(hub.resolve(path), 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  return len(saved_model.meta_graphs)


def load(path):
  return Features(path)
