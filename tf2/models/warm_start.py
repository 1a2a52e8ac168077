"""Warm start: a model's weights from another run, a converted release, or a teacher.

A run that does not resume (`tf2/training/resume.py`) may start from
`--checkpoint` (a directory, a checkpoint prefix or an exported SavedModel:
another run of ours, or a released model after `python -m checkpoints.convert`),
and `--train_mode=distill` loads its teacher the same way
(`tf2/models/teacher.py`). The variables taken are those whose *schema name*
matches `--variable_schema` (`re.match`, like the original's variable filter
in its tf2 `try_restore_from_checkpoint`). Schema names are the original's
variable names: `base_model/...` for the encoder, `head_contrastive/...`,
`head_supervised/...`, and `global_step`; e.g.
`(?!global_step|(?:.*/|^)Momentum|head)` restores the encoder only. The
optimizer is never initialised from another run.

A checkpoint that does not fit (a missing tensor or a shape that disagrees)
raises `CheckpointMismatchError` naming the first bad variable and the flag
that most likely differs; nothing is assigned in that case.

Checkpoint keys are found by following object paths in the stored object
graph (`SavedGraph`), never by spelling them: a training checkpoint stores
each variable once under its shortest path, which may run through the
optimizer.
"""
import collections
import os
import re

from absl import logging
import keras
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from tf2.config import compile_schema
from tf2.errors import CheckpointMismatchError, CheckpointNotFoundError
from tf2.errors import first_line

# What reading a missing, truncated or damaged checkpoint raises: TensorFlow's errors
# (DataLoss, OutOfRange, InvalidArgument, NotFound, and a bare OpError for an index file
# too short to be an sstable) and IndexError for a short read.
DAMAGED_ERRORS = (tf.errors.OpError, IndexError)


def damaged_error(prefix, error):
  return CheckpointMismatchError(
      f'{prefix} cannot be read whole ({type(error).__name__}: {first_line(error)}): the '
      'checkpoint is truncated or damaged (a copy or download cut short?). Copy it again; '
      'nothing was assigned.')


def schema_name(variable):
  """The original's name of a model variable: base_model/..., head_*/...."""
  path = variable.path
  prefix = path.split('/', 1)[0] + '/'
  path = path[len(prefix):] if path.startswith(prefix) else path
  if path.startswith('resnet/'):
    path = 'base_model/' + path[len('resnet/'):]
  return path


def object_paths(root):
  """{id(variable): (child names from root)} for every variable reachable from `root`."""
  view = tf.train.TrackableView(root)
  paths, seen = {}, {id(root)}
  queue = collections.deque([(root, ())])
  while queue:
    obj, prefix = queue.popleft()
    for name, child in view.children(obj).items():
      if id(child) in seen:
        continue
      seen.add(id(child))
      if isinstance(child, (tf.Variable, keras.Variable)):
        paths[id(child)] = prefix + (name,)
      else:
        queue.append((child, prefix + (name,)))
  return paths


class SavedGraph:
  """The object graph stored in a checkpoint: tensor keys found by attribute path.

  A variable is stored once under its shortest path from the root (in a
  training checkpoint that may run through the optimizer), so keys are found
  by following the path's edges, never by spelling it.
  """

  def __init__(self, reader):
    self.proto = trackable_object_graph_pb2.TrackableObjectGraph()
    self.proto.ParseFromString(reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))

  def node(self, path):
    node_id = 0
    for name in path:
      children = {c.local_name: c.node_id for c in self.proto.nodes[node_id].children}
      if name not in children:
        return None
      node_id = children[name]
    return node_id

  def key(self, path):
    node_id = self.node(path)
    if node_id is None:
      return None
    for attribute in self.proto.nodes[node_id].attributes:
      if attribute.name == 'VARIABLE_VALUE':
        return attribute.checkpoint_key
    return None

  def variable_keys_under(self, path):
    """Tensor keys of every variable below `path` (with the path of each)."""
    start = self.node(path)
    found, seen = {}, {start}
    queue = collections.deque([(start, tuple(path))]) if start is not None else []
    while queue:
      node_id, prefix = queue.popleft()
      for attribute in self.proto.nodes[node_id].attributes:
        if attribute.name == 'VARIABLE_VALUE':
          found[attribute.checkpoint_key] = '/'.join(prefix)
      for child in self.proto.nodes[node_id].children:
        if child.node_id not in seen:
          seen.add(child.node_id)
          queue.append((child.node_id, prefix + (child.local_name,)))
    return found


def resolve_checkpoint_path(path):
  """A checkpoint prefix from a directory, a prefix, or a SavedModel directory."""
  if tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
    return os.path.join(path, 'variables', 'variables')
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:  # No "checkpoint" state file: the newest *.index in the folder.
      prefixes = [p[:-len('.index')] for p in tf.io.gfile.glob(os.path.join(path, '*.index'))]
      step = lambda p: int(re.search(r'(\d*)$', p).group(1) or -1)
      latest = max(prefixes, key=step) if prefixes else None
    if latest is None:
      raise CheckpointNotFoundError(
          f'{path} is a directory without a checkpoint (no *.index file) and is not a '
          f'SavedModel. Pass a checkpoint prefix such as {path}/ckpt-100, or the '
          'saved_model/<step> directory of an export.')
    return latest
  if not tf.io.gfile.exists(path + '.index'):
    raise CheckpointNotFoundError(f'{path}: no such checkpoint ({path}.index is missing).')
  return path


def flag_hint(name):
  """The flag that most likely differs when variable `name` does not fit."""
  if name.startswith('head_supervised'):
    return ('the number of classes differs (another --dataset?); leave the head out with '
            "--variable_schema='(?!global_step|(?:.*/|^)Momentum|head_supervised)'")
  if name.startswith('head_contrastive'):
    return '--proj_head_mode, --num_proj_layers, --proj_out_dim or --width_multiplier'
  if '/se/' in name:
    return '--se_ratio'
  if 'stem' in name:
    return ('--image_size (CIFAR stem up to 32 px), --sk_ratio (selective kernels), '
            '--width_multiplier or --resnet_base_width')
  return ('--resnet_depth, --width_multiplier, --sk_ratio (selective kernels) or '
          '--resnet_base_width')


def model_variable_paths(model):
  """[(schema name, variable, object path)] with paths as saved under `model`."""
  paths = object_paths(tf.train.Checkpoint(model=model))
  return [(schema_name(v), v, paths[id(v)]) for v in model.variables]


def initialize_from_checkpoint(model, path, variable_schema='.*', global_step=None):
  """Restores the variables matching `variable_schema` from `path`.

  Returns the list of schema names restored. Raises CheckpointMismatchError
  (nothing assigned) if a selected variable is missing or has another shape,
  or if the checkpoint holds selected model variables the model does not have.
  """
  prefix = resolve_checkpoint_path(path)
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    graph = SavedGraph(reader)
  except DAMAGED_ERRORS as e:
    raise damaged_error(prefix, e) from e
  pattern = compile_schema(variable_schema)
  every = model_variable_paths(model)
  selected = [(n, v, graph.key(p), p) for n, v, p in every if pattern.match(n)]
  if not selected:
    raise CheckpointMismatchError(
        f'--variable_schema={variable_schema!r} matches none of the model\'s variables.')
  if all(key is None for _, _, key, _ in selected):
    raise CheckpointMismatchError(
        f'{prefix} is not a checkpoint or export of this project: it holds none of the '
        f'model\'s variables (first missing: {selected[0][0]}). A released SimCLR checkpoint '
        'or hub module must be converted first: python -m checkpoints.convert SRC DST.')
  for name, variable, key, object_path in selected:
    if key is None:
      raise CheckpointMismatchError(
          f'{prefix} has no variable for {name} (object path {"/".join(object_path)}). The '
          f'checkpoint was made for another architecture: check {flag_hint(name)}.')
    if list(shapes[key]) != list(variable.shape):
      raise CheckpointMismatchError(
          f'{name} has shape {list(variable.shape)} in the model but '
          f'{list(shapes[key])} in {prefix}: check {flag_hint(name)}.')
  wanted = {k for _, _, k, _ in selected}
  if all(pattern.match(n) for n, _, _ in every if n.startswith('base_model/')):
    stored = graph.variable_keys_under(('model', 'resnet_model'))
    extra = sorted(path for key, path in stored.items() if key not in wanted)
    if extra:
      raise CheckpointMismatchError(
          f'{prefix} holds encoder variables the model does not have, first {extra[0]}: it '
          f'was made for a deeper or different encoder; check {flag_hint(extra[0])}.')
  try:  # Read everything before assigning anything.
    values = [reader.get_tensor(key) for _, _, key, _ in selected]
  except DAMAGED_ERRORS as e:
    raise damaged_error(prefix, e) from e
  for (_, variable, _, _), value in zip(selected, values):
    variable.assign(tf.cast(value, variable.dtype))
  restored = [n for n, _, _, _ in selected]
  if global_step is not None and pattern.match('global_step'):
    key = graph.key(('global_step',))
    if key is not None:
      global_step.assign(reader.get_tensor(key))
      restored.append('global_step')
  logging.info('Initialised %d variables from %s (schema %r).', len(restored), prefix,
               variable_schema)
  return restored


def zero_init_logits(model):
  """--zero_init_logits_layer: the supervised head starts at zero after initialisation."""
  if model.supervised_head is None:
    return
  for variable in model.supervised_head.trainable_variables:
    variable.assign(tf.zeros_like(variable))
