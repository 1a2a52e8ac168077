"""--encoder=convnet: the RandBits notebook's ConvN encoder, layer for layer."""
import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf

from original_code import REFERENCE
from tf2.config import Config
from tf2.models.convnet import ConvNet
from tf2.models.model import SimCLRModel
from tf2.models.resnet import LayerArgs

NOTEBOOK = os.path.join(REFERENCE, 'colabs', 'intriguing_properties', 'randbits_mnist.ipynb')
CHANNELS = 13  # RGB and 10 bits.


def test_shapes_and_parameters_follow_the_notebooks_layers():
  net = ConvNet(width_multiplier=2, args=LayerArgs(global_bn=False))
  out, endpoints = net(tf.zeros([3, 28, 28, CHANNELS]), return_endpoints=True)
  assert out.shape == (3, 256)
  assert [endpoints[k].shape[1:] for k in ('conv_block1', 'conv_block2', 'conv_block3')] == [
      (13, 13, 64), (6, 6, 128), (2, 2, 128)]
  kernels = 3 * 3 * (CHANNELS * 64 + 64 * 128 + 128 * 128) + 2 * 2 * 128 * 256
  batch_norm = 4 * (64 + 128 + 128 + 256)  # gamma, beta, moving mean and variance
  assert sum(int(np.prod(v.shape)) for v in net.variables) == kernels + batch_norm
  # The weight decay and LARS exclude BN by the path (tf2/training/optimizers.py).
  assert sum('batch_normalization' in v.path for v in net.variables) == 16


def notebook_convn():
  """The notebook's own ConvN (its model cell executed under tf_keras, the Keras it was
  written for), or None without a copy."""
  if not os.path.isfile(NOTEBOOK):
    return None
  tf_keras = pytest.importorskip('tf_keras')
  with open(NOTEBOOK) as f:
    cells = [''.join(c['source']) for c in json.load(f)['cells'] if c['cell_type'] == 'code']
  namespace = {'tf': types.SimpleNamespace(keras=tf_keras, stop_gradient=tf.stop_gradient)}
  exec(next(c for c in cells if 'class ConvN' in c), namespace)  # pylint: disable=exec-used
  return namespace['ConvN']


def test_equals_the_notebooks_encoder_given_its_weights():
  convn = notebook_convn()
  if convn is None:
    pytest.skip('no copy of the original notebook (../shared/reference/original)')
  rng = np.random.default_rng(0)
  images = tf.constant(rng.random((4, 28, 28, CHANNELS)), tf.float32)
  theirs = convn(1)
  theirs(images, False)
  ours = ConvNet(1, LayerArgs(global_bn=False))
  ours(images)
  # Both list kernel, then gamma, beta, moving mean, moving variance, layer by layer.
  pairs = list(zip(ours.variables, theirs.enc.variables))
  assert len(pairs) == len(theirs.enc.variables) == 20
  for mine, other in pairs:
    assert mine.shape == other.shape, (mine.path, other.path)
    value = rng.uniform(0.5, 1.5, mine.shape) if 'variance' in mine.path or 'gamma' in mine.path \
        else rng.normal(0, 0.2, mine.shape)
    mine.assign(value)
    other.assign(value)
  want = theirs.enc(images, training=False).numpy()
  got = ours(images, training=False).numpy()
  # BN's epsilon: the notebook has Keras' 1e-3, the project the original's 1e-5.
  np.testing.assert_allclose(got, want, rtol=5e-3, atol=5e-3 * np.abs(want).max())
  assert np.abs(want).max() > 0.1


def test_the_model_takes_views_with_bit_channels():
  config = Config(encoder='convnet', image_size=28, randbits=10, num_proj_layers=2,
                  proj_out_dim=64, global_bn=False, use_tpu=False).validate()
  model = SimCLRModel(config, 10).build_for()
  outputs = model(tf.zeros([5, 28, 28, 2 * CHANNELS]), training=True)
  assert outputs['proj_head_input'].shape == (10, 128)
  assert outputs['proj_head_output'].shape == (10, 64)
  assert outputs['logits_sup'].shape == (10, 10)
  assert model.projection_shape(5) == [10, 64]
  first = [v for v in model.trainable_variables if 'conv_block1' in v.path][0]
  assert first.shape == (3, 3, CHANNELS, 32)
