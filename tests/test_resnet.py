"""ResNet/SK-ResNet: parameter counts, endpoints, padding, freezing, SK and SE."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.models import param_count
from tf2.models.resnet import LayerArgs, ResNet, fixed_padding


@pytest.mark.parametrize('depth,width,sk', [(50, 1, False), (50, 1, True), (101, 1, False)])
def test_parameter_counts_match_published_table(depth, width, sk):
  millions = param_count.backbone_parameters(depth, width, sk) / 1e6
  published = param_count.PUBLISHED_MILLIONS[(depth, width, sk)]
  assert abs(millions - published) < 1.0, (millions, published)


def test_exact_counts_of_known_architectures():
  # ResNet-50 (torchvision's 25,557,032 minus its 2,049,000-parameter fc layer).
  assert param_count.backbone_parameters(50, 1, False) == 25557032 - 2049000
  # ResNet-18 with SimCLR's projection shortcut in block group 1 (64x64 1x1
  # conv + BN) on top of torchvision's 11,689,512 - 513,000 fc parameters.
  encoder = ResNet(18, 1, cifar_stem=False)
  encoder(tf.zeros([1, 32, 32, 3]))
  count = sum(int(np.prod(v.shape)) for v in encoder.trainable_variables)
  assert count == 11689512 - 513000 + 64 * 64 + 2 * 64


@pytest.mark.parametrize('cifar,size,expected', [
    (True, 32, {'initial_conv': (32, 32, 64), 'initial_max_pool': (32, 32, 64),
                'block_group1': (32, 32, 64), 'block_group2': (16, 16, 128),
                'block_group3': (8, 8, 256), 'block_group4': (4, 4, 512),
                'final_avg_pool': (512,)}),
    (False, 224, {'initial_conv': (112, 112, 64), 'initial_max_pool': (56, 56, 64),
                  'block_group1': (56, 56, 64), 'block_group2': (28, 28, 128),
                  'block_group3': (14, 14, 256), 'block_group4': (7, 7, 512),
                  'final_avg_pool': (512,)}),
])
def test_endpoint_shapes(cifar, size, expected):
  encoder = ResNet(18, 1, cifar_stem=cifar)
  out, endpoints = encoder(tf.zeros([2, size, size, 3]), return_endpoints=True)
  assert {k: tuple(v.shape[1:]) for k, v in endpoints.items()} == expected
  np.testing.assert_array_equal(out.numpy(), endpoints['final_avg_pool'].numpy())


def test_bottleneck_and_sk_shapes_and_stem():
  encoder = ResNet(50, 2, cifar_stem=False, args=LayerArgs(sk_ratio=0.0625))
  out, endpoints = encoder(tf.zeros([1, 64, 64, 3]), return_endpoints=True)
  assert out.shape == (1, 4096)
  assert endpoints['initial_conv'].shape == (1, 32, 32, 128)
  # ResNet-D stem: three 3x3 convs (64, 64, 128 filters at width 2).
  stem_kernels = [v.shape for v in encoder.stem.trainable_variables if 'kernel' in v.path]
  assert stem_kernels == [(3, 3, 3, 64), (3, 3, 64, 64), (3, 3, 64, 128)]
  # SK: a 3x3 conv with 2x filters and an attention reduced to max(32, f/16).
  sk = encoder.block_group1.block_0.sk
  assert sk.conv.conv2d.kernel.shape == (3, 3, 128, 256)
  assert sk.attention_reduce.kernel.shape == (1, 1, 128, 32)
  assert sk.attention_expand.kernel.shape == (1, 1, 32, 256)


def test_fixed_padding_matches_original_rule():
  x = tf.reshape(tf.range(25, dtype=tf.float32), [1, 5, 5, 1])
  padded = fixed_padding(x, 7)  # 3 before, 3 after
  assert padded.shape == (1, 11, 11, 1)
  assert fixed_padding(x, 2).shape == (1, 6, 6, 1)  # 0 before, 1 after
  np.testing.assert_array_equal(fixed_padding(x, 2).numpy()[0, :5, :5, 0], x.numpy()[0, :, :, 0])
  # A strided conv sees the same windows as TF1's conv2d_fixed_padding: the
  # output at (0, 0) covers rows/cols -1..1 of the input for a 3x3 kernel.
  encoder = ResNet(18, 1, cifar_stem=False)
  conv = encoder.stem.conv_0  # 7x7 stride 2
  y = conv(tf.ones([1, 8, 8, 3]))
  assert y.shape == (1, 4, 4, 64)


def test_squeeze_excitation_is_built_and_gates_channels():
  encoder = ResNet(18, 1, cifar_stem=True, args=LayerArgs(se_ratio=0.25))
  encoder(tf.zeros([1, 8, 8, 3]))
  se = encoder.block_group2.block_0.se
  assert se.se_reduce.kernel.shape == (1, 1, 128, 32)
  assert se.se_expand.kernel.shape == (1, 1, 32, 128)
  x = tf.random.normal([2, 4, 4, 128])
  gates = tf.sigmoid(se.se_expand(tf.nn.relu(se.se_reduce(tf.reduce_mean(x, [1, 2], True)))))
  np.testing.assert_allclose(se(x).numpy(), (gates * x).numpy(), rtol=1e-6)


def test_last_bn_of_each_residual_branch_is_zero_initialised():
  encoder = ResNet(50, 1, cifar_stem=True)
  encoder(tf.zeros([1, 8, 8, 3]))
  for group in encoder.block_groups():
    for block in group.blocks():
      assert not block.bn_2.gamma.numpy().any()
      assert block.bn_0.gamma.numpy().all()


@pytest.mark.parametrize('after', [0, 2, 4])
def test_fine_tune_after_block_freezes_earlier_layers(after):
  encoder = ResNet(18, 1, cifar_stem=True, fine_tune_after_block=after)
  x = tf.random.uniform([4, 8, 8, 3])
  encoder(x)
  frozen = [encoder.stem] + encoder.block_groups()[:after]
  live = encoder.block_groups()[after:]
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(encoder(x, training=True)))
  trainable = encoder.trainable_variables
  grads = dict(zip([v.path for v in trainable], tape.gradient(loss, trainable)))
  for layer in frozen:
    assert not layer.trainable_variables
    assert all(not v.path in grads for v in layer.variables)
    # Frozen BN runs in inference mode: its moving statistics did not move.
    assert all(not v.numpy().any() for v in layer.variables if 'moving_mean' in v.path)
  for layer in live:
    assert layer.trainable_variables
    # (Branch layers before the zero-initialised last BN get no gradient at
    # initialisation; that BN and the shortcut do.)
    nonzero = [np.abs(grads[v.path].numpy()).sum() > 0 for v in layer.trainable_variables
               if 'batch_normalization_1' in v.path or 'shortcut' in v.path]
    assert nonzero and all(nonzero)
