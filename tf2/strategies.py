"""Which `tf.distribute` strategy a run uses, chosen from the config and the machine.

- `--use_tpu`: `TPUClusterResolver` (`--tpu_name`/`--master`, `--tpu_zone`,
  `--gcp_project`) and `TPUStrategy`. A TPU that cannot be reached stops the
  run with the resolver's reason and what to do (`--use_tpu=False`).
- otherwise `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than one
  task, `MirroredStrategy` over the visible GPUs, or the default strategy on
  the CPU.
"""
import json
import os

from absl import logging
import tensorflow as tf

from tf2.errors import StrategyError


def check_jit_compile(strategy, jit_compile):
  """Refuses XLA for several replicas on CPUs, where it cannot run.

  A jit-compiled replica step under MirroredStrategy over CPU devices fails
  ("Trying to access resource ... located in device CPU:1 from device
  CPU:0"): XLA's CPU backend compiles for one device. On GPUs and TPUs the
  step compiles with one all-reduce per gather (`nt_xent.cross_replica_concat`).
  """
  if not jit_compile or strategy.num_replicas_in_sync == 1:
    return
  try:
    devices = list(strategy.extended.worker_devices)
  except RuntimeError:  # The default strategy.
    return
  if devices and all('CPU' in d.upper().rsplit('/', 1)[-1] for d in devices):
    raise StrategyError(
        f'--jit_compile=True with {strategy.num_replicas_in_sync} replicas on CPU devices: '
        'XLA compiles a replica step for a single CPU device and cannot run one whose '
        'variables live on the other replicas\' devices. Use --jit_compile=False (XLA is for '
        'GPUs and TPUs), or train on one replica.')


def tpu_strategy(tpu_name=None, tpu_zone=None, gcp_project=None, master=None):
  target = master or tpu_name
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=target, zone=tpu_zone, project=gcp_project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  except Exception as e:  # The resolver raises ValueError, URLError, RuntimeError...
    where = f'{target!r}' if target else 'a local TPU (no --tpu_name given)'
    raise StrategyError(
        f'--use_tpu=True but the TPU {where} could not be reached: '
        f'{type(e).__name__}: {e}. On a TPU VM or with a reachable --tpu_name '
        '(and --tpu_zone/--gcp_project) this works; to run on GPUs or the CPU pass '
        '--use_tpu=False.') from e


def num_tf_config_tasks(environ=None):
  environ = os.environ if environ is None else environ
  raw = environ.get('TF_CONFIG')
  if not raw:
    return 0
  try:
    cluster = json.loads(raw).get('cluster', {})
  except ValueError as e:
    raise StrategyError(f'TF_CONFIG is not valid JSON: {e}') from e
  return sum(len(cluster.get(job, [])) for job in ('chief', 'worker'))


def make_strategy(config, environ=None):
  if config.use_tpu:
    strategy = tpu_strategy(config.tpu_name, config.tpu_zone, config.gcp_project,
                            config.master)
  elif num_tf_config_tasks(environ) > 1:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif tf.config.list_logical_devices('GPU'):
    strategy = tf.distribute.MirroredStrategy()
  else:
    strategy = tf.distribute.get_strategy()
  logging.info('%s', describe(strategy))
  return strategy


def describe(strategy):
  """'Strategy: MirroredStrategy, 2 replicas on /job:localhost/.../GPU:0, ...'."""
  name = type(strategy).__name__.lstrip('_').replace('DefaultDistributionStrategy', 'default')
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    name = 'MultiWorkerMirroredStrategy'  # Its class is CollectiveAllReduceStrategy.
  try:
    devices = ', '.join(strategy.extended.worker_devices)
  except RuntimeError:  # The default strategy: TensorFlow's default device placement.
    gpus = tf.config.list_logical_devices('GPU')
    devices = gpus[0].name if gpus else tf.config.list_logical_devices('CPU')[0].name
  replicas = strategy.num_replicas_in_sync
  return f'Strategy: {name}, {replicas} replica{"s" * (replicas > 1)} on {devices}'
