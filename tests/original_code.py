"""The original SimCLR's own modules, imported in tests where a copy is present.

A copy is a checkout named by $SIMCLR_ORIGINAL, or the git mirror that the
development tools fetch (github:google-research/simclr). Tests that compare
with the original skip, or fall back to the paper's parameters, without one.
"""
import importlib.util
import os
import subprocess
import tempfile

MIRROR = '/work/.mirror/google-research+simclr/repo'


def _source(path):
  checkout = os.environ.get('SIMCLR_ORIGINAL')
  if checkout and os.path.isfile(os.path.join(checkout, path)):
    with open(os.path.join(checkout, path)) as f:
      return f.read()
  if os.path.isdir(MIRROR):
    result = subprocess.run(['git', '--git-dir', MIRROR, 'show', f'HEAD:{path}'],
                            capture_output=True, text=True, check=False)
    if result.returncode == 0:
      return result.stdout
  return None


def load(path='tf2/data_util.py'):
  """The original's module at `path` (it imports only TensorFlow), or None."""
  text = _source(path)
  if text is None:
    return None
  directory = tempfile.mkdtemp(prefix='simclr_original_')
  file = os.path.join(directory, os.path.basename(path))
  with open(file, 'w') as f:
    f.write(text)
  spec = importlib.util.spec_from_file_location('original_' + os.path.basename(path)[:-3], file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
