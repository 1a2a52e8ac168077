"""`run.py` with test hooks, for the tests that run whole processes
(tests/test_cluster.py: two workers on loopback; tests/test_loop.py: kill -9).

`python tests/harness.py OUT_DIR -- RUN_FLAGS...` runs `run.py` unchanged but for:
- fixed training data, a known function of the input pipeline
  (`pipeline_batches`), so a test can rebuild each step's global batch; a
  resumed process skips the batches of the steps already taken, so a run
  killed and resumed sees the data of an uninterrupted one;
- SIMCLR_TEST_SEED=N: Keras' (and TensorFlow's) random seed N, so two runs
  start from the same weights;
- OUT_DIR/weights_<task>.npz: this process's weights when training ends;
- OUT_DIR/saved_<task>.txt: after every checkpoint, `<step> <digest>` of the
  weights and optimizer state just saved; OUT_DIR/restored_<task>.txt: the
  same right after a restore (`state_digest`); <task> is `single_0` without
  TF_CONFIG, else e.g. `worker_1`;
- SIMCLR_TEST_STEP_SECONDS: a sleep after every call, so a test can kill mid-run;
- SIMCLR_TEST_FILE_SIZE_LIMIT=BYTES: no file may grow past BYTES (RLIMIT_FSIZE,
  as when the disk fills: writes fail with EFBIG);
- SIMCLR_TEST_REPLICAS=N: the CPU split into N logical devices and the run on a
  MirroredStrategy over them (what several GPUs give), for the checks that
  need several replicas in one process;
- SIMCLR_TEST_OFFLINE=1: every connection off the loopback address fails, as on a
  machine without the network;
- SIMCLR_TEST_CIFAR10='URL SIZE SHA256': TFDS's cifar10 builder downloads from URL
  (tests/tfds_server.py), registered with that size and checksum;
- SIMCLR_TEST_KILL_AT_SAVE=N: SIGKILL itself inside the N-th checkpoint save
  of the process, after the files are written and before the checkpoint
  state names them (a kill in the middle of a checkpoint write).
"""
import hashlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

IMAGE_SIZE = 16
NUM_CLASSES = 6  # The `shapes` dataset.
NUM_BATCHES = 64  # Per pipeline, repeated.


def pipeline_batches(pipeline_id, batch_size, views=2):
  """The fixed per-replica batches that input pipeline `pipeline_id` yields, in order."""
  rng = np.random.RandomState(100 + pipeline_id)
  images = rng.rand(NUM_BATCHES, batch_size, IMAGE_SIZE, IMAGE_SIZE, 3 * views)
  labels = rng.randint(0, NUM_CLASSES, (NUM_BATCHES, batch_size))
  return images.astype(np.float32), labels.astype(np.int64)


def start(out_dir, flags, tf_config=None, **env):
  """Starts this script on `flags` (output in out_dir/log_<task>_<n>.txt)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='1', **{k: str(v) for k, v in env.items()})
  task = 'single_0'
  if tf_config:
    env['TF_CONFIG'] = json.dumps(tf_config)
    task = '{type}_{index}'.format(**tf_config['task'])
  log_path = os.path.join(str(out_dir), f'log_{task}_{len(os.listdir(str(out_dir)))}.txt')
  with open(log_path, 'w') as log:
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(out_dir), '--']
                            + list(flags), env=env, stdout=log, stderr=subprocess.STDOUT)
  proc.log_path = log_path
  return proc


def free_ports(n):
  """`n` ports free on 127.0.0.1 now."""
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(('127.0.0.1', 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def output(proc):
  with open(proc.log_path) as f:
    return f.read()


def wait_all(procs, timeout):
  """Return codes; kills every process and raises if they outlive `timeout` seconds."""
  deadline = time.time() + timeout
  try:
    for p in procs:
      p.wait(timeout=max(deadline - time.time(), 1))
  except subprocess.TimeoutExpired as e:
    for p in procs:
      p.kill()
    raise AssertionError(f'still running after {timeout} s:\n{output(procs[0])[-3000:]}') from e
  return [p.returncode for p in procs]


def wait_for(condition, procs, timeout, what):
  """Polls `condition()` until true; fails early if a process ends, or after `timeout`."""
  deadline = time.time() + timeout
  while not condition():
    ended = [p for p in procs if p.poll() is not None]
    if ended or time.time() > deadline:
      for p in procs:
        p.kill()
      why = f'a process ended (rc {ended[0].returncode})' if ended else f'{timeout} s passed'
      raise AssertionError(f'waiting for {what}: {why}:\n{output((ended or procs)[0])[-3000:]}')
    time.sleep(0.05)


def state_digest(model, optimizer):
  """sha256 over every model and optimizer variable (weights, slots, step)."""
  digest = hashlib.sha256()
  for v in list(model.variables) + list(optimizer.variables):
    digest.update(np.ascontiguousarray(v.numpy()).tobytes())
  return digest.hexdigest()


def _append(path, line):
  with open(path, 'a') as f:
    f.write(line + '\n')
    f.flush()
    os.fsync(f.fileno())


def main():
  out_dir = sys.argv[1]
  assert sys.argv[2] == '--'
  if os.environ.get('SIMCLR_TEST_FILE_SIZE_LIMIT'):
    import resource  # pylint: disable=g-import-not-at-top
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # A write past the limit fails instead.
    resource.setrlimit(resource.RLIMIT_FSIZE,
                       (int(os.environ['SIMCLR_TEST_FILE_SIZE_LIMIT']),
                        resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
  run_flags = sys.argv[3:]
  if os.environ.get('SIMCLR_TEST_OFFLINE'):
    real_connect = socket.create_connection

    def loopback_only(address, *args, **kwargs):
      if address[0] not in ('127.0.0.1', 'localhost'):
        raise socket.gaierror(-2, 'Name or service not known')
      return real_connect(address, *args, **kwargs)

    socket.create_connection = loopback_only
  if os.environ.get('SIMCLR_TEST_CIFAR10'):
    import tfds_server  # pylint: disable=g-import-not-at-top
    url, size, checksum = os.environ['SIMCLR_TEST_CIFAR10'].split()
    tfds_server.redirect_cifar10(url, int(size), checksum, setattr)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  replicas = int(os.environ.get('SIMCLR_TEST_REPLICAS', 0))
  if replicas:
    from tf2 import strategies  # pylint: disable=g-import-not-at-top
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices('CPU')[0],
        [tf.config.LogicalDeviceConfiguration()] * replicas)
    strategies.make_strategy = lambda config, environ=None: tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices('CPU')])
  if os.environ.get('SIMCLR_TEST_SEED'):
    import keras  # pylint: disable=g-import-not-at-top
    keras.utils.set_random_seed(int(os.environ['SIMCLR_TEST_SEED']))
  from tensorflow.python.checkpoint import checkpoint_management  # pylint: disable=g-import-not-at-top
  from tf2.data import input_pipeline  # pylint: disable=g-import-not-at-top
  from tf2.training import loop  # pylint: disable=g-import-not-at-top
  from tf2.training import resume  # pylint: disable=g-import-not-at-top

  real_make_input_fn = input_pipeline.make_input_fn
  resumed = {'step': 0}  # The step this process restored.

  def fixed_input_fn(source, config, is_training, split=None, global_batch_size=None,
                     keep=None, through_service=False):
    if not (is_training and global_batch_size is None):
      return real_make_input_fn(source, config, is_training, split, global_batch_size, keep,
                                through_service)

    def input_fn(input_context):
      per_replica = input_context.get_per_replica_batch_size(config.train_batch_size)
      images, labels = pipeline_batches(input_context.input_pipeline_id, per_replica)
      # Each step takes one batch for each replica the pipeline feeds.
      taken = resumed['step'] * (input_context.num_replicas_in_sync //
                                 input_context.num_input_pipelines)
      return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().skip(taken)
    return input_fn

  input_pipeline.make_input_fn = fixed_input_fn

  task = json.loads(os.environ.get('TF_CONFIG', '{}')).get('task', {'type': 'single',
                                                                    'index': 0})
  tag = f'{task["type"]}_{task["index"]}'
  delay = float(os.environ.get('SIMCLR_TEST_STEP_SECONDS', 0))
  kill_at_save = int(os.environ.get('SIMCLR_TEST_KILL_AT_SAVE', 0))
  saves = []
  real_update_state = checkpoint_management.update_checkpoint_state_internal

  def update_state(save_dir, model_checkpoint_path, *args, **kwargs):
    if model_checkpoint_path not in saves:
      saves.append(model_checkpoint_path)
      if len(saves) == kill_at_save:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_update_state(save_dir, model_checkpoint_path, *args, **kwargs)

  checkpoint_management.update_checkpoint_state_internal = update_state

  real_restore = resume.restore_or_initialize

  def restore_and_record(config, model, optimizer, manager, restore_dir=None):
    step = real_restore(config, model, optimizer, manager, restore_dir)
    resumed['step'] = step
    if step:
      _append(os.path.join(out_dir, f'restored_{tag}.txt'),
              f'{step} {state_digest(model, optimizer)}')
    real_save = manager.save

    def save_and_record(checkpoint_number=None, **kwargs):
      path = real_save(checkpoint_number=checkpoint_number, **kwargs)
      _append(os.path.join(out_dir, f'saved_{tag}.txt'),
              f'{int(optimizer.iterations.numpy())} {state_digest(model, optimizer)}')
      return path

    manager.save = save_and_record
    return step

  resume.restore_or_initialize = restore_and_record
  real_train = loop.train

  def train_and_save_weights(config, model, *args, **kwargs):
    if delay:
      kwargs['on_loop_end'] = lambda step: time.sleep(delay)
    step = real_train(config, model, *args, **kwargs)
    np.savez(os.path.join(out_dir, f'weights_{tag}.npz'),
             *[v.numpy() for v in model.variables])
    return step

  loop.train = train_and_save_weights
  sys.argv = [os.path.join(ROOT, 'run.py')] + run_flags
  runpy.run_path(sys.argv[0], run_name='__main__')


if __name__ == '__main__':
  main()
