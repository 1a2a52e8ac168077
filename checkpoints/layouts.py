"""Where each of our model's variables lives in the original implementations' checkpoints.

TF1 (name-based, `gs://simclr-checkpoints/...`): layers are named by creation
counters inside `base_model/` (`conv2d`, `conv2d_1`, ..., `batch_normalization`,
`batch_normalization_1`, ...; a block's projection shortcut is created before
its branch convolutions), heads are `head_contrastive/nl_<i>/{dense,
batch_normalization}/...` and `head_supervised/linear_layer/dense/...`. Our
model creates its variables in the same order (verified against the
reference listings), so the TF1 names follow from counting.

tf2 (object-based, written by the original tf2 `run.py`): keys such as
`model/resnet_model/block_groups/0/layers/0/projection_layers/1/conv2d/kernel`.
The tensors are put into our creation order by a structural sort key.

Both produce a list of names aligned with `model.variables`.
"""
import re

BN_PARAMS = ('gamma', 'beta', 'moving_mean', 'moving_variance')
VARIABLE_SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'


def _layer_of(variable):
  return variable.path.rsplit('/', 1)[0]


def tf1_names(model, encoder_scope='base_model'):
  """TF1 names of `model.variables`, in order (`encoder_scope='ema_model'` for EMA copies)."""
  names, layer_names = [], {}
  counters = {'conv2d': 0, 'batch_normalization': 0}
  for variable in model.variables:
    path = variable.path
    param = path.rsplit('/', 1)[1]
    top = path.split('/')[1] if path.count('/') > 1 else ''
    if top in ('head_contrastive', 'head_supervised'):
      names.append(path[path.index(top):])
      continue
    layer = _layer_of(variable)
    if layer not in layer_names:
      kind = 'batch_normalization' if param in BN_PARAMS else 'conv2d'
      index = counters[kind]
      counters[kind] += 1
      layer_names[layer] = kind + (f'_{index}' if index else '')
    names.append(f'{encoder_scope}/{layer_names[layer]}/{param}')
  return names


# --- original tf2 layout -----------------------------------------------------

# Creation order of the sub-layers of the original's selective-kernel layer.
_SK_ORDER = {'conv2d_fixed_padding': 0, 'batch_norm_relu': 1, 'conv2d_0': 2,
             'batch_norm_relu_1': 3, 'conv2d_1': 4}
_PARAM_ORDER = {'kernel': 0, 'bias': 1, 'gamma': 0, 'beta': 1, 'moving_mean': 2,
                'moving_variance': 3}
_SECTIONS = {'resnet_model': 0, '_projection_head': 1, 'supervised_head': 2}
_BLOCK_PARTS = {'shortcut_layers': 0, 'projection_layers': 0, 'conv2d_bn_layers': 1,
                'conv_relu_dropblock_layers': 1}


def is_tf2_variable_key(key):
  return (key.startswith('model/') and key.endswith(VARIABLE_SUFFIX)
          and '.OPTIMIZER_SLOT' not in key)


_ENCODER_PARTS = {'initial_conv_relu_max_pool': 0, 'block_groups': 1,
                  'dense': 0, 'bn_relu': 1}  # (the last two: head layers)


def _component_rank(part):
  if part in _ENCODER_PARTS:
    return (0, _ENCODER_PARTS[part], part)
  if part.isdigit():
    return (0, int(part), '')
  if part in _BLOCK_PARTS:
    return (1, _BLOCK_PARTS[part], part)
  if part in _SK_ORDER:
    return (2, _SK_ORDER[part], part)
  if part in _PARAM_ORDER:
    return (3, _PARAM_ORDER[part], part)
  return (4, 0, part)


def tf2_sort_key(key):
  """Sorts original tf2 checkpoint keys into our variables' creation order."""
  parts = key[:-len(VARIABLE_SUFFIX)].split('/')[1:]
  section = _SECTIONS.get(parts[0], 3)
  return (section,) + tuple(_component_rank(p) for p in parts[1:])


def tf2_keys_in_order(keys):
  """The original tf2 model's variable keys (no optimizer slots) in our creation order."""
  return sorted((k for k in keys if is_tf2_variable_key(k)), key=tf2_sort_key)


def tf2_section(key):
  """'encoder', 'head_contrastive' or 'head_supervised' for an original tf2 key."""
  return {'resnet_model': 'encoder', '_projection_head': 'head_contrastive',
          'supervised_head': 'head_supervised'}.get(key.split('/')[1], 'other')


def section_of(name):
  """'encoder', 'head_contrastive' or 'head_supervised' for a TF1 name."""
  head = re.match(r'(head_contrastive|head_supervised)/', name)
  return head.group(1) if head else 'encoder'


# --- original tf2 SavedModel -------------------------------------------------
# Its variables file keeps no layer paths: trainable variables are stored as
# `trainable_variables_list/<i>` (the original model's trainable_variables
# order), the others as `model/resnet_model/variables/<n>` and
# `model/_projection_head/variables/<n>` (indices into each layer's
# variables, trainable ones first).

def saved_model_key(*parts):
  return '/'.join(str(p) for p in parts) + VARIABLE_SUFFIX


def original_tf2_order(variables):
  """Our variables in the order the original tf2 Keras layers list them.

  Differences from our creation order: a basic (ResNet-18/34) block lists its
  projection shortcut after its branch (a bottleneck block lists it first,
  like us), and a projection-head layer lists its BatchNorm before its dense
  kernel.
  """
  block = re.compile(r'(.*?/block_group\d+/block_\d+)/')
  head_layer = re.compile(r'(.*?/head_contrastive/nl_\d+)/')
  bottleneck = {block.match(v.path).group(1) for v in variables
                if block.match(v.path) and re.search(r'/(conv_2|batch_normalization_2)/', v.path)}
  first, keyed = {}, []
  for position, variable in enumerate(variables):
    path = variable.path
    match = block.match(path) or head_layer.match(path)
    if match is None:
      keyed.append(((position, 0, position), variable))
      continue
    start = first.setdefault(match.group(1), position)
    if '/block_group' in path:
      late = '/shortcut/' in path and match.group(1) not in bottleneck
    else:
      late = '/dense/' in path
    keyed.append(((start, int(late), position), variable))
  return [v for _, v in sorted(keyed, key=lambda item: item[0])]


def saved_model_keys(model):
  """[(variable, key)] for every variable of `model` in an original tf2 SavedModel."""
  pairs = []
  trainable = original_tf2_order([v for v in model.variables if v.trainable])
  pairs += [(v, saved_model_key('trainable_variables_list', i)) for i, v in enumerate(trainable)]
  for layer, name in ((model.resnet_model, 'resnet_model'),
                      (model.projection_head, '_projection_head')):
    offset = len([v for v in layer.variables if v.trainable])
    frozen = original_tf2_order([v for v in layer.variables if not v.trainable])
    pairs += [(v, saved_model_key('model', name, 'variables', offset + j))
              for j, v in enumerate(frozen)]
  return pairs
