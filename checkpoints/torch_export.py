"""Export the encoder (and linear head) in torchvision's ResNet `state_dict` layout, as .npz.

    python -m checkpoints.torch_export SRC OUT.npz     # SRC: any checkpoint convert.py reads
No torch needed here; in PyTorch:

    sd = {k: torch.from_numpy(v) for k, v in np.load('OUT.npz').items()}
    model = torchvision.models.resnet50(num_classes=sd['fc.weight'].shape[0])
    model.load_state_dict(sd)

Mapping (our name -> torchvision name; kernels HWIO -> OIHW, dense [in, out] -> [out, in]):
    stem conv_0 / batch_normalization            -> conv1 / bn1
    block_group<g>/block_<b>/conv_<i>, bn_<i>    -> layer<g>.<b>.conv<i+1>, bn<i+1>
    block_group<g>/block_<b>/shortcut conv, bn   -> layer<g>.<b>.downsample.0, .1
    head_supervised linear_layer/dense           -> fc
    BN gamma, beta, moving_mean, moving_variance -> weight, bias, running_mean, running_var
    (plus num_batches_tracked = 0, which torchvision's state_dict has)
Width multipliers > 1 widen every layer (torchvision's wide_resnet widens only the
bottleneck middle), so build those with a custom `width_per_group`/`inplanes`.
ResNet-18/34 as SimCLR builds them have a projection shortcut in layer1.0
(`layer1.0.downsample.*`), which torchvision's resnet18/34 lack: add one.
Selective-kernel models have no torchvision equivalent and are refused.
Numerics: inputs are RGB in [0, 1] without mean/std normalisation, BN epsilon
1e-5 as torch's; TensorFlow's 'SAME' max pool pads only at the end, so for
exact outputs replace torchvision's `maxpool` by
`nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.MaxPool2d(3, 2))` (zero padding
equals -inf padding after the ReLU). CIFAR-stem models (image_size <= 32)
have a 3x3 stride-1 conv1 and no max pool.
"""
import argparse
import collections

import numpy as np

BN_MAP = {'gamma': 'weight', 'beta': 'bias', 'moving_mean': 'running_mean',
          'moving_variance': 'running_var'}


def _conv(conv_layer):
  return np.transpose(conv_layer.conv2d.kernel.numpy(), (3, 2, 0, 1))


def _bn(prefix, bn_layer, out):
  for ours, theirs in BN_MAP.items():
    out[f'{prefix}.{theirs}'] = getattr(bn_layer, ours).numpy()
  out[f'{prefix}.num_batches_tracked'] = np.zeros([], np.int64)


def state_dict(model):
  """OrderedDict torchvision name -> numpy array for a SimCLRModel (non-SK)."""
  resnet = model.resnet_model
  if model.config.sk_ratio > 0 or model.config.se_ratio > 0:
    raise ValueError('Selective-kernel (and squeeze-excitation) ResNets have no torchvision '
                     'equivalent; export a non-SK model.')
  out = collections.OrderedDict()
  out['conv1.weight'] = _conv(resnet.stem.conv_0)
  _bn('bn1', resnet.stem.bn, out)
  for g, group in enumerate(resnet.block_groups(), start=1):
    for b, block in enumerate(group.blocks()):
      prefix = f'layer{g}.{b}'
      i = 0
      while hasattr(block, f'conv_{i}'):
        out[f'{prefix}.conv{i + 1}.weight'] = _conv(getattr(block, f'conv_{i}'))
        _bn(f'{prefix}.bn{i + 1}', getattr(block, f'bn_{i}'), out)
        i += 1
      if block.shortcut is not None:
        out[f'{prefix}.downsample.0.weight'] = _conv(block.shortcut.conv)
        _bn(f'{prefix}.downsample.1', block.shortcut.bn, out)
  if model.supervised_head is not None:
    dense = model.supervised_head.linear_layer.dense
    out['fc.weight'] = np.transpose(dense.kernel.numpy())
    out['fc.bias'] = dense.bias.numpy()
  return out


def save_npz(model, path):
  tensors = state_dict(model)
  np.savez(path, **tensors)
  try:  # Optional: safetensors when the library is installed.
    from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  except ImportError:
    return tensors
  save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
            str(path).rsplit('.npz', 1)[0] + '.safetensors')
  return tensors


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('src')
  parser.add_argument('out')
  parser.add_argument('--ema', action='store_true')
  args = parser.parse_args(argv)
  from checkpoints import convert  # pylint: disable=g-import-not-at-top
  model, _ = convert.convert(args.src, None, args.ema)
  tensors = save_npz(model, args.out)
  print(f'Wrote {len(tensors)} tensors to {args.out}')


if __name__ == '__main__':
  main()
