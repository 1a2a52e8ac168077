"""Which worker of a multi-worker run writes what, and what a lost worker means.

Under `MultiWorkerMirroredStrategy` every worker runs the same program: the
same steps, evaluations and saves, because saving reads variables whose
values may need collective ops. Only the chief's files are real. Following
TensorFlow's multi-worker convention, the chief (task `chief`, or `worker` 0
when the cluster has no chief) writes into `--model_dir`; every other worker
writes into `model_dir/workertemp_<task_id>`, removed when the worker ends.
All workers restore from `--model_dir`, so they resume from the same step.

A worker that dies makes the collectives of the others fail (TensorFlow's
peer health check aborts them); `WorkerLostError` turns that into one message
that says what to do.
"""
import dataclasses
import os

from absl import logging
import tensorflow as tf

from tf2.errors import WorkerLostError


# What a collective op raises when a peer is gone or the health check aborted it.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError)


@dataclasses.dataclass(frozen=True)
class Role:
  """This process's place in the run: `write_dir` is where its files go."""
  task_type: str
  task_id: int
  num_workers: int
  model_dir: str
  has_chief: bool = False  # The cluster has a 'chief' task (else worker 0 is the chief).

  @property
  def is_chief(self):
    return self.task_type == 'chief' or (self.task_type == 'worker' and self.task_id == 0
                                         and not self.has_chief)

  @property
  def multi_worker(self):
    return self.num_workers > 1

  @property
  def write_dir(self):
    if self.is_chief:
      return self.model_dir
    return os.path.join(self.model_dir, f'workertemp_{self.task_id}')

  def describe(self):
    if not self.multi_worker:
      return 'single worker'
    what = 'chief: writes checkpoints, summaries, results and exports' if self.is_chief else (
        f'not the chief: its saves go to {self.write_dir}, removed at the end')
    return f'{self.task_type} {self.task_id} of {self.num_workers} workers ({what})'

  def cleanup(self):
    """Removes a non-chief worker's scratch directory."""
    if not self.is_chief and tf.io.gfile.exists(self.write_dir):
      tf.io.gfile.rmtree(self.write_dir)

  def lost_worker(self, error, latest_checkpoint):
    """The WorkerLostError for a collective that failed with `error`."""
    detail = _reason(str(error))
    return WorkerLostError(
        f'{self.task_type} {self.task_id}: another worker of the {self.num_workers}-worker '
        f'run stopped or became unreachable ({type(error).__name__}: {detail[:300]}). This '
        f'worker stops too. The last checkpoint is {latest_checkpoint or "none (none written yet)"}'
        '; start every worker again with the same command and TF_CONFIG to resume from it.')


def _reason(message):
  """The informative line of a collective's error (TensorFlow wraps it in
  'Graph execution error:' and node tracebacks)."""
  lines = [line.strip() for line in message.splitlines() if line.strip()]
  for line in lines:
    if any(word in line for word in ('UNAVAILABLE', 'DEADLINE', 'CANCELLED', 'ABORTED',
                                     'Connection', 'connect', 'peer', 'unreachable')):
      return line
  useful = [line for line in lines if not line.startswith(('Graph execution error',
                                                            'Detected at node', 'File "'))]
  return (useful or lines or [''])[0]


def role_of(strategy, model_dir):
  """The Role of this process in `strategy` (a single worker for every other strategy)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return Role('worker', 0, 1, model_dir)
  spec = resolver.cluster_spec().as_dict()
  has_chief = bool(spec.get('chief'))
  num_workers = len(spec.get('chief', [])) + len(spec.get('worker', []))
  role = Role(resolver.task_type or 'worker', int(resolver.task_id or 0), num_workers,
              model_dir, has_chief)
  logging.info('Worker: %s', role.describe())
  return role


def barrier(strategy):
  """Returns once every worker has called it: one all-reduce (a worker that stopped makes
  it fail with one of PEER_ERRORS, as any collective)."""
  strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)),
                  axis=None)
