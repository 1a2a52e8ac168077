"""The original SimCLR's own modules, imported in tests where a copy is present.

A copy is a checkout named by $SIMCLR_ORIGINAL, or the reference copy of its
modules in ../shared/reference/original/ (read in place). Tests that compare
with the original skip, or fall back to the paper's parameters, without one.
"""
import importlib.util
import os

REFERENCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
                         'shared', 'reference', 'original')


def path_of(path):
  """Where the original's file `path` (e.g. 'tf2/data_util.py') is, or None."""
  for root in (os.environ.get('SIMCLR_ORIGINAL'), REFERENCE):
    if root and os.path.isfile(os.path.join(root, path)):
      return os.path.join(root, path)
  return None


def load(path='tf2/data_util.py'):
  """The original's module at `path` (it imports only TensorFlow), or None."""
  file = path_of(path)
  if file is None:
    return None
  spec = importlib.util.spec_from_file_location('original_' + os.path.basename(path)[:-3], file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
