"""torchvision state_dict layout: names, NCHW shapes and values of the exported encoder."""
import numpy as np
import pytest

from checkpoints import torch_export
from tf2.config import Config
from tf2.models.model import SimCLRModel

BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def torchvision_resnet50_keys(num_classes):
  """The key list of torchvision.models.resnet50's state_dict, written out independently."""
  keys = ['conv1.weight'] + [f'bn1.{k}' for k in BN_KEYS]
  for layer, blocks in enumerate([3, 4, 6, 3], start=1):
    for b in range(blocks):
      for i in (1, 2, 3):
        keys += [f'layer{layer}.{b}.conv{i}.weight']
        keys += [f'layer{layer}.{b}.bn{i}.{k}' for k in BN_KEYS]
      if b == 0:
        keys += [f'layer{layer}.0.downsample.0.weight']
        keys += [f'layer{layer}.0.downsample.1.{k}' for k in BN_KEYS]
  return keys + ['fc.weight', 'fc.bias'] if num_classes else keys


def test_resnet50_layout(tmp_path):
  config = Config(resnet_depth=50, image_size=224, use_tpu=False, train_mode='finetune')
  model = SimCLRModel(config, 10).build_for(image_size=64)
  tensors = torch_export.save_npz(model, tmp_path / 'r50.npz')
  assert sorted(tensors) == sorted(torchvision_resnet50_keys(10))
  loaded = np.load(tmp_path / 'r50.npz')
  assert loaded['conv1.weight'].shape == (64, 3, 7, 7)
  assert loaded['layer1.0.conv2.weight'].shape == (64, 64, 3, 3)
  assert loaded['layer4.2.conv3.weight'].shape == (2048, 512, 1, 1)
  assert loaded['fc.weight'].shape == (10, 2048)
  stem = model.resnet_model.stem.conv_0.conv2d.kernel.numpy()
  np.testing.assert_array_equal(loaded['conv1.weight'], stem.transpose(3, 2, 0, 1))
  np.testing.assert_array_equal(loaded['layer2.0.downsample.1.running_var'],
                                model.resnet_model.block_group2.block_0.shortcut.bn
                                .moving_variance.numpy())
  encoder_and_fc = sum(int(np.prod(v.shape)) for v in model.variables
                       if 'head_contrastive' not in v.path)
  assert sum(v.size for k, v in tensors.items() if 'num_batches' not in k) == encoder_and_fc


def test_selective_kernels_are_refused():
  model = SimCLRModel(Config(resnet_depth=50, sk_ratio=0.0625, resnet_base_width=8,
                             use_tpu=False), 10).build_for(image_size=32)
  with pytest.raises(ValueError, match='torchvision'):
    torch_export.state_dict(model)


def test_command_exports_a_tf1_checkpoint(tmp_path):
  from test_convert import randomised, write_tf1  # pylint: disable=g-import-not-at-top
  source = randomised(Config(resnet_depth=18, image_size=224, use_tpu=False), 10)
  prefix = write_tf1(source, str(tmp_path / 'model.ckpt-1'))
  torch_export.main([prefix, str(tmp_path / 'r18.npz')])
  loaded = np.load(tmp_path / 'r18.npz')
  np.testing.assert_allclose(
      loaded['conv1.weight'],
      source.resnet_model.stem.conv_0.conv2d.kernel.numpy().transpose(3, 2, 0, 1))
  assert loaded['fc.weight'].shape == (10, 512)
  assert 'layer1.0.downsample.0.weight' in loaded  # The original's extra projection.
