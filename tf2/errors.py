"""The one family of errors a user can cause, and fix.

Every error that bad input, a missing file or a failing machine can cause
derives from `SimCLRError` and says what is wrong and what to do. `run.py`
catches this one base and prints its message as one `error:` line, with no
traceback; anything else is a bug and keeps its traceback. Each subclass also
derives from the built-in exception it refines (a missing file is still a
`FileNotFoundError`), so callers may catch either.

This module imports nothing, so `run.py` can catch the family before
TensorFlow is imported.
"""


class SimCLRError(Exception):
  """An error the user can fix; its message says how."""


class ConfigError(SimCLRError, ValueError):
  """A setting, or a combination of settings, that cannot work; names the flag."""


class DatasetError(SimCLRError, ValueError):
  """A dataset that cannot be read, with what to do about it."""


class CheckpointNotFoundError(SimCLRError, FileNotFoundError):
  """A --checkpoint or --teacher_checkpoint path that holds no checkpoint."""


class CheckpointMismatchError(SimCLRError, ValueError):
  """A checkpoint whose variables do not fit the model being built."""


class CheckpointWriteError(SimCLRError, OSError):
  """A checkpoint could not be written (full disk, read-only directory)."""


class ExportError(SimCLRError, OSError):
  """An export could not be written (full disk, read-only directory)."""


class StrategyError(SimCLRError, RuntimeError):
  """The requested devices cannot be used."""


class WorkerLostError(SimCLRError, RuntimeError):
  """Another worker of a multi-worker run stopped or became unreachable."""


class ServiceError(SimCLRError, RuntimeError):
  """The tf.data service cannot be used, with what to do."""


class DivergenceError(SimCLRError, FloatingPointError):
  """Training produced NaN or infinite values; the last checkpoint is intact."""


def first_line(error, limit=300):
  """The informative first line of an exception's message, for a message of ours
  (past TensorFlow's 'Graph execution error:' and its node and file lines)."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  useful = [line for line in lines
            if not line.startswith(('Graph execution error', 'Detected at node', 'File "'))]
  return (useful or lines or [type(error).__name__])[0][:limit]
