"""Convert released SimCLR checkpoints (TF1 name-based, original tf2) into this project's model.

    python -m checkpoints.convert SRC DST [--ema] [--ft_proj_selector=N]

SRC: a TF1 checkpoint (directory or prefix, e.g. gs://simclr-checkpoints/
simclrv2/pretrained/r50_1x_sk0/), an original tf2 checkpoint (keys
model/resnet_model/block_groups/...) or SavedModel (gs://simclr-checkpoints-
tf2/.../saved_model/: variables stored as trainable_variables_list/<i> and
model/<layer>/variables/<n>, mapped through the original's variable order),
local or on any file system TensorFlow reads. The architecture (depth, width, selective kernels, projection head,
class count, CIFAR stem) is inferred from the tensors. DST receives:
`ckpt-1` (our checkpoint: `run.py --checkpoint=DST`), `saved_model/0/` (our
SavedModel export) and `flags.json` (the run.py flags of the architecture).
Anything that does not fit -- a missing or extra tensor, a shape that
disagrees -- raises ConversionError naming it, and nothing is written.
"""
import argparse
import json
import os
import re

import numpy as np
import tensorflow as tf

from checkpoints import layouts
from tf2.models import warm_start
from tf2 import export
from tf2.config import Config
from tf2.models.model import SimCLRModel


class ConversionError(ValueError):
  """The source does not fit the model: names the first bad tensor."""


BOTTLENECK_DEPTHS = {16: 50, 33: 101, 50: 152, 63: 200}   # blocks -> depth
BASIC_DEPTHS = {8: 18, 16: 34}
# Optimizer slots and bookkeeping in TF1 checkpoints: never model weights.
_IGNORED = re.compile(r'(^|/)(global_step|Momentum|LARSOptimizer|Adam(_\d+)?)($|/)|'
                      r'beta[12]_power|_CHECKPOINTABLE_OBJECT_GRAPH')


def open_reader(path):
  """(reader, format) with format 'tf1', 'tf2' (original tf2) or 'ours'."""
  prefix = warm_start.resolve_checkpoint_path(path)
  reader = tf.train.load_checkpoint(prefix)
  keys = reader.get_variable_to_shape_map()
  if any(k.startswith('base_model/') for k in keys):
    return reader, 'tf1'
  if any(k.startswith('model/resnet_model/block_groups/') for k in keys):
    return reader, 'tf2'
  if layouts.saved_model_key('trainable_variables_list', 0) in keys:
    return reader, 'tf2_saved_model'
  if any(k.startswith('model/resnet_model/block_group1/') for k in keys):
    return reader, 'ours'
  raise ConversionError(f'{prefix} is neither a TF1 SimCLR checkpoint (base_model/...) nor '
                        'an original tf2 one (model/resnet_model/block_groups/...).')


def _tf1_index(name):
  match = re.match(r'[^/]+/(conv2d|batch_normalization)(?:_(\d+))?/', name)
  return int(match.group(2) or 0)


def source_tensors(reader, fmt, ema=False):
  """[(name, shape)] of the model's tensors in our creation order, for inference."""
  shapes = reader.get_variable_to_shape_map()
  if fmt == 'tf2':
    return [(k, list(shapes[k])) for k in layouts.tf2_keys_in_order(shapes)]
  if fmt == 'tf2_saved_model':
    return _saved_model_tensors(shapes)
  scope = 'ema_model/' if ema else 'base_model/'
  if ema and not any(k.startswith(scope) for k in shapes):
    raise ConversionError('--ema: this checkpoint has no ema_model/ variables.')
  convs = sorted((k for k in shapes if k.startswith(scope + 'conv2d') and not _IGNORED.search(k)),
                 key=_tf1_index)
  heads = [k for k in shapes if k.startswith(('head_contrastive/', 'head_supervised/'))
           and not _IGNORED.search(k)]
  return [(k, list(shapes[k])) for k in convs + sorted(heads)]


def _first_index(shapes, prefix):
  found = [int(k[len(prefix):].split('/')[0]) for k in shapes if k.startswith(prefix)]
  return min(found) if found else None


def _saved_model_tensors(shapes):
  """Trainable tensors of an original tf2 SavedModel under TF1-style names (for inference).

  The first index of `model/resnet_model/variables/` is the encoder's number
  of trainable variables, that of `model/_projection_head/variables/` the
  projection head's; the rest of `trainable_variables_list` is the linear head.
  """
  count = len([k for k in shapes if k.startswith('trainable_variables_list/')])
  listed = [list(shapes[layouts.saved_model_key('trainable_variables_list', i)])
            for i in range(count)]
  encoder = _first_index(shapes, 'model/resnet_model/variables/')
  head = _first_index(shapes, 'model/_projection_head/variables/') or 0
  if encoder is None:
    raise ConversionError('The SavedModel has no model/resnet_model/variables/: not a SimCLR '
                          'tf2 export.')
  tensors = [(f'base_model/conv2d_{i}/kernel', s) for i, s in enumerate(listed[:encoder])
             if len(s) == 4]
  tensors += [(f'head_contrastive/nl_{i}/dense/kernel', s)
              for i, s in enumerate(x for x in listed[encoder:encoder + head] if len(x) == 2)]
  tensors += [('head_supervised/linear_layer/dense/kernel', s)
              for s in listed[encoder + head:] if len(s) == 2]
  return tensors


def infer_config(tensors, fmt, ft_proj_selector=0, base_width=64):
  """(Config, num_classes) of the model that has these tensors (encoder kernels, heads)."""
  # TF1 names, and the TF1-style names _saved_model_tensors gives, share one rule.
  section = layouts.tf2_section if fmt == 'tf2' else layouts.section_of
  kernels = [s for n, s in tensors if section(n) == 'encoder' and re.search(r'/kernel(/|$)', n)]
  if any(section(n) == 'encoder' and re.search(r'/bias(/|$)', n) for n, _ in tensors):
    raise ConversionError('The encoder has convolution biases (squeeze-excitation); no released '
                          'SimCLR model has them and the converter does not infer --se_ratio.')
  first = kernels[0]
  if first[:2] == [7, 7]:
    stem, width, sk, cifar = 1, first[3] // base_width, False, False
  elif first[:2] == [3, 3] and len(kernels) > 2 and kernels[1] == [3, 3, first[3], first[3]] \
      and kernels[2] == [3, 3, first[3], 2 * first[3]]:  # SK stem: 3x3 convs c, c, 2c
    stem, width, sk, cifar = 3, first[3] // (base_width // 2), True, False
  elif first[:2] == [3, 3]:
    stem, width, sk, cifar = 1, first[3] // base_width, False, True
  else:
    raise ConversionError(f'Unrecognised stem kernel shape {first}.')
  bottleneck = kernels[stem][3] == 4 * kernels[stem][2]
  per_block = (5 if sk else 3) if bottleneck else 2
  table = BOTTLENECK_DEPTHS if bottleneck else BASIC_DEPTHS
  blocks, rest = divmod(len(kernels) - stem - 4, per_block)
  depth = table.get(blocks)
  if rest or depth is None:
    expected = ', '.join(f'{stem + 4 + b * per_block} (ResNet-{d})' for b, d in table.items())
    raise ConversionError(f'The checkpoint has {len(kernels)} encoder kernels, which fits no '
                          f'ResNet with these blocks; expected one of {expected}: a missing or '
                          'extra convolution?')
  proj = [s for n, s in tensors if section(n) == 'head_contrastive' and 'dense/kernel' in n]
  sup = [s for n, s in tensors if section(n) == 'head_supervised' and 'kernel' in n]
  return Config(
      resnet_depth=depth, width_multiplier=width, sk_ratio=0.0625 if sk else 0.0,
      image_size=32 if cifar else 224, proj_head_mode='nonlinear' if proj else 'none',
      num_proj_layers=max(len(proj), 1), proj_out_dim=proj[-1][1] if proj else 128,
      ft_proj_selector=ft_proj_selector if proj else 0, lineareval_while_pretraining=bool(sup),
      train_mode='pretrain', use_tpu=False, resnet_base_width=base_width), (
          sup[0][1] if sup else 0)


def _target_names(model, fmt, reader, ema):
  if fmt == 'tf2_saved_model':
    by_variable = {id(v): key for v, key in layouts.saved_model_keys(model)}
    names = [by_variable[id(v)] for v in model.variables]
    return names, [k for k in reader.get_variable_to_shape_map()
                   if k.endswith(layouts.VARIABLE_SUFFIX) and not k.startswith('save_counter')]
  if fmt == 'tf1':
    unused = 'base_model/' if ema else 'ema_model/'
    names = layouts.tf1_names(model, 'ema_model' if ema else 'base_model')
    return names, [n for n in reader.get_variable_to_shape_map()
                   if not _IGNORED.search(n) and not n.startswith(unused)]
  shapes = reader.get_variable_to_shape_map()
  ordered = layouts.tf2_keys_in_order(shapes)
  return ordered, ordered


def plan_assignment(model, reader, fmt, ema=False):
  """[(variable, source name)] after checking names and shapes; raises ConversionError."""
  shapes = reader.get_variable_to_shape_map()
  names, available = _target_names(model, fmt, reader, ema)
  if fmt == 'tf2' and len(names) != len(model.variables):
    short = min(len(names), len(model.variables))
    for name, variable in zip(names[:short], model.variables[:short]):
      if list(shapes[name]) != list(variable.shape):
        break
    raise ConversionError(
        f'The checkpoint has {len(names)} model tensors, the model {len(model.variables)}; '
        f'first disagreement at {name} {list(shapes[name])} vs our '
        f'{variable.path} {list(variable.shape)}.')
  pairs = []
  for variable, name in zip(model.variables, names):
    if name not in shapes:
      raise ConversionError(f'The checkpoint has no tensor {name} (for {variable.path} '
                            f'{list(variable.shape)}): another depth, width or SK setting?')
    if list(shapes[name]) != list(variable.shape):
      raise ConversionError(f'{name} has shape {list(shapes[name])} in the checkpoint but '
                            f'{variable.path} is {list(variable.shape)}: another width, SK '
                            'or head setting?')
    pairs.append((variable, name))
  extra = sorted(set(available) - set(names))
  if extra:
    raise ConversionError(f'The checkpoint has tensors the model lacks, first {extra[0]} '
                          f'{list(shapes[extra[0]])}: a deeper model or another head?')
  return pairs


def assign(pairs, reader):
  values = [(v, reader.get_tensor(name)) for v, name in pairs]  # read everything first
  for variable, value in values:
    variable.assign(np.asarray(value, variable.dtype))


def convert(src, dst=None, ema=False, ft_proj_selector=0, base_width=64):
  """Returns (model, config); writes DST (checkpoint, SavedModel, flags.json) if given.

  `base_width` is 64 for every released model (other values: tests' tiny models).
  """
  reader, fmt = open_reader(src)
  if fmt == 'ours':
    raise ConversionError(f'{src} is already in this project\'s format: pass it to '
                          'run.py --checkpoint directly.')
  config, num_classes = infer_config(source_tensors(reader, fmt, ema), fmt, ft_proj_selector,
                                     base_width)
  model = SimCLRModel(config, num_classes).build_for(image_size=min(config.image_size, 64))
  assign(plan_assignment(model, reader, fmt, ema), reader)
  if dst:
    tf.io.gfile.makedirs(dst)
    tf.train.Checkpoint(model=model).save(os.path.join(dst, 'ckpt'))
    export.export_saved_model(model, dst, 0)
    flags = dict(resnet_depth=config.resnet_depth, width_multiplier=config.width_multiplier,
                 sk_ratio=config.sk_ratio, proj_head_mode=config.proj_head_mode,
                 num_proj_layers=config.num_proj_layers, proj_out_dim=config.proj_out_dim,
                 image_size=config.image_size, num_classes=num_classes, source=src,
                 source_format=fmt, ema=ema)
    with tf.io.gfile.GFile(os.path.join(dst, 'flags.json'), 'w') as f:
      json.dump(flags, f, indent=1)
  return model, config


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('src')
  parser.add_argument('dst')
  parser.add_argument('--ema', action='store_true',
                      help='use the ema_model/ weights of a TF1 checkpoint')
  parser.add_argument('--ft_proj_selector', type=int, default=0,
                      help='projection-head layer the supervised head reads (as in run.py)')
  args = parser.parse_args(argv)
  try:
    _, config = convert(args.src, args.dst, args.ema, args.ft_proj_selector)
  except (ConversionError, FileNotFoundError) as e:
    raise SystemExit(f'error: {e}')
  print(f'Wrote {args.dst}: ResNet-{config.resnet_depth} {config.width_multiplier}x '
        f'sk_ratio={config.sk_ratio}; use run.py --checkpoint={args.dst} with '
        f'--resnet_depth={config.resnet_depth} --width_multiplier={config.width_multiplier} '
        f'--sk_ratio={config.sk_ratio} --num_proj_layers={config.num_proj_layers}')


if __name__ == '__main__':
  main()
