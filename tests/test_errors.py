"""The error family: one base that run.py catches, each kind also its built-in kind."""
from tf2 import errors
from tf2.errors import ConfigError


def test_every_user_error_shares_one_base_and_keeps_its_builtin_kind():
  """run.py catches SimCLRError alone; callers that catch the built-in kinds still can."""
  assert all(issubclass(e, errors.SimCLRError) for e in (
      ConfigError, errors.DatasetError, errors.CheckpointMismatchError,
      errors.CheckpointNotFoundError, errors.CheckpointWriteError, errors.ExportError,
      errors.StrategyError, errors.WorkerLostError, errors.ServiceError,
      errors.DivergenceError))
  assert issubclass(ConfigError, ValueError) and issubclass(errors.DatasetError, ValueError)
  assert issubclass(errors.CheckpointNotFoundError, FileNotFoundError)
  assert issubclass(errors.DivergenceError, FloatingPointError)
  assert issubclass(errors.CheckpointWriteError, OSError)


def test_first_line_skips_tensorflows_wrapping():
  wrapped = RuntimeError('Graph execution error:\n\nDetected at node x\n  File "a.py", line 1\n'
                         'No space left on device\nmore')
  assert errors.first_line(wrapped) == 'No space left on device'
  assert errors.first_line(ValueError('')) == 'ValueError'
  assert errors.first_line(OSError('x' * 400), limit=10) == 'x' * 10
