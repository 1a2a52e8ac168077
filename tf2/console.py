"""A clean start-up: TensorFlow's import-time noise filtered, everything else kept.

Importing TensorFlow and probing for GPUs prints lines from C++ before any
logging is configured, so `TF_CPP_MIN_LOG_LEVEL` does not reach them (TF
2.21). On a machine without a GPU they read like failures ("failed call to
cuInit: ... UNKNOWN ERROR (303)"). On CPUs where TensorFlow turns oneDNN's
custom operations on, the same notice comes twice ("oneDNN custom operations
are on ... To turn them off, set ..."); a newcomer cannot act on it, and turning them
off (`TF_ENABLE_ONEDNN_OPTS=0`) changes numerics and speed, so the setting
stays and the notice goes. `quiet_tensorflow_startup()` imports TensorFlow
with file descriptor 2 redirected to a temporary file, then writes back
every line except the known benign ones below. Set `SIMCLR_STARTUP_LOGS=1`
to see them all.

`drop_tensorflow_info()` keeps TensorFlow's own INFO records (e.g. the
checkpoint saver's "Sharding callback duration") out of our absl log, where
they would sit between the progress lines; its warnings and errors stay.
"""
import contextlib
import logging
import os
import re
import sys
import tempfile

BENIGN = (
    re.compile(r'^WARNING: All log messages before absl::InitializeLog\(\) is called'),
    re.compile(r'cudart_stub\.cc:\d+\] Could not find cuda drivers'),
    re.compile(r'cuda_platform\.cc:\d+\] failed call to cuInit: .*(UNKNOWN ERROR \(303\)|'
               r'CUDA_ERROR_NO_DEVICE)'),
    re.compile(r'cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized'),
    re.compile(r'^To enable the following instructions: .* rebuild TensorFlow'),
    re.compile(r'port\.cc:\d+\] oneDNN custom operations are on\. '),
)


def is_benign(line):
  return any(p.search(line) for p in BENIGN)


@contextlib.contextmanager
def _stderr_captured():
  """Yields a list filled, on exit, with the lines written to fd 2 meanwhile."""
  lines = []
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield lines
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      lines.extend(capture.read().decode('utf-8', 'replace').splitlines())


def quiet_tensorflow_startup(environ=None):
  """Imports TensorFlow and lists its GPUs; returns the lines dropped."""
  environ = os.environ if environ is None else environ
  if environ.get('SIMCLR_STARTUP_LOGS', '') not in ('', '0'):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices('GPU')
    return []
  with _stderr_captured() as lines:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices('GPU')
  kept = [line for line in lines if not is_benign(line)]
  if kept:
    sys.stderr.write('\n'.join(kept) + '\n')
  return [line for line in lines if is_benign(line)]


class _TensorFlowInfoFilter(logging.Filter):

  def filter(self, record):
    in_tensorflow = f'{os.sep}tensorflow{os.sep}' in record.pathname
    return not (in_tensorflow and record.levelno < logging.WARNING)


_FILTER = _TensorFlowInfoFilter()


def drop_tensorflow_info():
  """Filters INFO records logged from inside the tensorflow package (idempotent)."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  for logger in (absl_logging.get_absl_logger(), logging.getLogger('tensorflow')):
    if _FILTER not in logger.filters:
      logger.addFilter(_FILTER)
