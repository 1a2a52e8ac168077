"""The rooms of tf2/ and their arrows (docs/development.md#layout), read from the imports.

data -> models -> training -> evaluation -> runner: a room may import the shared
base modules and the rooms before it, never one after it; the base imports no room.
"""
import ast
import inspect
import os

import keras

from tf2.models import model as model_lib
from tf2.models import heads, resnet

TF2 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tf2')
BASE = {'tf2.config', 'tf2.errors', 'tf2.dtypes', 'tf2.views'}
# What each room may import besides the base and itself.
ALLOWED = {
    'data': set(),
    'models': set(),
    'training': {'tf2.data', 'tf2.models'},
    'evaluation': {'tf2.data', 'tf2.models', 'tf2.training', 'tf2.export'},
}


def tf2_imports(path):
  """The tf2 names a file imports (`from tf2.x import y` counts as tf2.x.y)."""
  with open(path) as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith('tf2'))
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('tf2'):
      found.update(f'{node.module}.{a.name}' for a in node.names)
  return found


def modules():
  for directory, _, files in os.walk(TF2):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(directory, name)
        relative = os.path.relpath(path, os.path.dirname(TF2))[:-3].replace(os.sep, '.')
        yield relative.removesuffix('.__init__'), path


def allowed(imported, owner):
  return any(imported == p or imported.startswith(p + '.') for p in BASE | owner)


def test_every_room_imports_only_the_base_and_the_rooms_before_it():
  checked = {room: 0 for room in ALLOWED}
  for name, path in modules():
    parts = name.split('.')
    if name in BASE:
      bad = {m for m in tf2_imports(path) if not allowed(m, set())}
    elif len(parts) > 2 and parts[1] in ALLOWED:
      checked[parts[1]] += 1
      owner = ALLOWED[parts[1]] | {f'tf2.{parts[1]}'}
      bad = {m for m in tf2_imports(path) if not allowed(m, owner)}
    else:
      continue
    assert not bad, f'{name} imports {sorted(bad)}'
  assert all(count >= 3 for count in checked.values()), checked


def test_the_models_never_augment():
  """No layer's call takes an augmentation argument: augmenting is the train step's job."""
  classes = [obj for module in (model_lib, heads, resnet) for obj in vars(module).values()
             if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)
             and obj.__module__.startswith('tf2.')]
  assert model_lib.SimCLRModel in classes and len(classes) > 5
  for cls in classes:
    parameters = inspect.signature(cls.call).parameters
    assert not [p for p in parameters if 'augment' in p], cls
