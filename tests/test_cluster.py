"""Multi-worker training on loopback: two `run.py` workers with TF_CONFIG.

Each test starts two worker processes on 127.0.0.1 (free ports) through
`tests/harness.py`, which runs `run.py` with fixed training data,
and bounds every wait with a timeout. Slow (~1-2 min each on 2 cores).
"""
import glob
import json
import os
import re
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tf2 import cluster
from tf2.config import Config
from tf2.runner import build_ema_model, build_model
from tf2.training import resume
from tf2.training.train_step import TrainStep
from tf2.training.train_step import unpack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  pylint: disable=g-import-not-at-top

FLAGS = ['--dataset=shapes', f'--image_size={harness.IMAGE_SIZE}',
         '--resnet_depth=18', '--resnet_base_width=8', '--train_batch_size=8',
         '--checkpoint_steps=1', '--steps_per_loop=1', '--use_blur=False',
         '--learning_rate=0.5', '--keep_checkpoint_max=10', '--use_tpu=False',
         '--eval_split=test']
TIMEOUT = 240


def start_workers(out_dir, flags, step_seconds=0.0, **env):
  """Two worker processes on 127.0.0.1 (worker 0 is the chief); `env`: harness hooks."""
  ports = harness.free_ports(2)
  cluster_spec = {'worker': [f'127.0.0.1:{p}' for p in ports]}
  return [harness.start(out_dir, FLAGS + flags,
                        {'cluster': cluster_spec, 'task': {'type': 'worker', 'index': i}},
                        SIMCLR_TEST_STEP_SECONDS=step_seconds, **env) for i in range(2)]


def logs(procs):
  return '\n'.join(harness.output(p)[-3000:] for p in procs)


def variables_of(path):
  with np.load(path) as npz:
    return [npz[f'arr_{i}'] for i in range(len(npz.files))]


def scalar_events(directory, tag):
  """{step: value} of a scalar summary in the event files directly in `directory`."""
  values = {}
  for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor))
  return values


def reference_step(model_dir, from_step):
  """(TrainStep, metrics) of one single-process step from `model_dir`'s checkpoint at
  `from_step` (with the momentum network and memory of --memory_size) on the global
  batch the two workers' input pipelines produced for the next step."""
  with open(os.path.join(model_dir, 'flags.json')) as f:
    config = Config(**json.load(f)).replace(model_dir='')
  strategy = tf.distribute.get_strategy()
  model, optimizer = build_model(config, strategy, harness.NUM_CLASSES, 10000)
  ema = build_ema_model(config, strategy, harness.NUM_CLASSES)
  trainer = TrainStep(config, model, optimizer, strategy, ema_model=ema)
  trainer.build_optimizer_state()
  resume.training_checkpoint(model, optimizer, **trainer.checkpointed()).restore(
      os.path.join(model_dir, f'ckpt-{from_step}')).assert_existing_objects_matched()
  per_worker = config.train_batch_size // 2
  batches = [harness.pipeline_batches(w, per_worker) for w in (0, 1)]
  images = np.concatenate([b[0][from_step] for b in batches])
  labels = np.concatenate([b[1][from_step] for b in batches])
  dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
  return trainer, unpack(trainer.make_loop()(iter(dataset), tf.constant(1)))[0]


def assert_close_weights(got, want, rtol):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert np.abs(g - w).max() <= rtol * max(np.abs(w).max(), 1e-12)


@pytest.mark.slow
def test_two_workers_train_as_one_process_and_only_the_chief_writes(tmp_path):
  model_dir = str(tmp_path / 'run')
  procs = start_workers(tmp_path, ['--precision=float64', '--train_steps=2',
                                   '--mode=train_then_eval', '--eval_steps=1',
                                   '--eval_batch_size=8', f'--model_dir={model_dir}'])
  assert harness.wait_all(procs, TIMEOUT) == [0, 0], logs(procs)
  for i in (0, 1):
    assert 'MultiWorkerMirroredStrategy, 2 replicas' in harness.output(procs[i])
  assert 'worker 0 of 2 workers (chief' in harness.output(procs[0])
  assert 'worker 1 of 2 workers (not the chief' in harness.output(procs[1])

  # Both workers hold the same weights: those of the chief's last checkpoint.
  chief = variables_of(tmp_path / 'weights_worker_0.npz')
  other = variables_of(tmp_path / 'weights_worker_1.npz')
  for a, b in zip(chief, other):
    np.testing.assert_array_equal(a, b)

  # Negatives and BN statistics span both workers: step 2 from the chief's
  # ckpt-1 equals one single-process step on both workers' batches together.
  trainer, metrics = reference_step(model_dir, from_step=1)
  saved = tf.train.load_checkpoint(os.path.join(model_dir, 'ckpt-2'))
  assert_close_weights(chief, [v.numpy() for v in trainer.model.variables], rtol=1e-9)
  losses = scalar_events(model_dir, 'train/total_loss')
  assert losses[2] == pytest.approx(metrics['total_loss'], rel=1e-6)  # float32 summaries
  assert scalar_events(model_dir, 'train/contrast_loss')[2] == pytest.approx(
      metrics['contrast_loss'], rel=1e-6)
  assert saved.get_tensor('global_step/.ATTRIBUTES/VARIABLE_VALUE') == 2

  # Only the chief wrote: one events file, checkpoints, results and the export
  # in model_dir; the other worker's scratch (workertemp_1) is gone.
  names = sorted(os.listdir(model_dir))
  assert len([n for n in names if n.startswith('events.out')]) == 1, names
  assert {'checkpoint', 'ckpt-1.index', 'ckpt-2.index', 'flags.json', 'result.json',
          'result_2.json', 'saved_model', 'eval'} <= set(names), names
  assert not [n for n in names if n.startswith('workertemp')], names
  assert os.listdir(os.path.join(model_dir, 'saved_model')) == ['2']
  assert len(os.listdir(os.path.join(model_dir, 'eval'))) == 1


@pytest.mark.slow
def test_two_workers_with_the_memory_train_as_one_process(tmp_path):
  """--memory_size across workers: keys gathered from both, the ring wrapping at step 3
  (32 slots, 16 keys a step). Step 3 from the chief's ckpt-2 equals one single-process
  step on both workers' batches: online and momentum weights, queue and ring index."""
  model_dir = str(tmp_path / 'run')
  procs = start_workers(tmp_path, ['--precision=float64', '--train_steps=3', '--mode=train',
                                   '--memory_size=32', '--momentum_decay=0.5',
                                   f'--model_dir={model_dir}'])
  assert harness.wait_all(procs, TIMEOUT) == [0, 0], logs(procs)
  chief = variables_of(tmp_path / 'weights_worker_0.npz')
  for a, b in zip(chief, variables_of(tmp_path / 'weights_worker_1.npz')):
    np.testing.assert_array_equal(a, b)
  trainer, _ = reference_step(model_dir, from_step=2)
  assert_close_weights(chief, [v.numpy() for v in trainer.model.variables], rtol=1e-9)
  saved = tf.train.load_checkpoint(os.path.join(model_dir, 'ckpt-3'))
  names = [name for name, _ in tf.train.list_variables(os.path.join(model_dir, 'ckpt-3'))]
  queue = [n for n in names if n.startswith('memory/queue/')]
  pointer = [n for n in names if n.startswith('memory/pointer/')]
  assert len(queue) == len(pointer) == 1, names
  np.testing.assert_allclose(saved.get_tensor(queue[0]), trainer.memory.queue.numpy(),
                             rtol=1e-9, atol=1e-12)
  assert saved.get_tensor(pointer[0]) == int(trainer.memory.pointer.numpy()) == 16
  restored = build_ema_model(trainer.config, tf.distribute.get_strategy(), harness.NUM_CLASSES)
  tf.train.Checkpoint(ema_model=restored).restore(
      os.path.join(model_dir, 'ckpt-3')).expect_partial()
  assert_close_weights([v.numpy() for v in restored.variables],
                       [v.numpy() for v in trainer.ema_model.variables], rtol=1e-9)


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_and_a_restart_resumes(tmp_path):
  model_dir = str(tmp_path / 'run')
  flags = ['--mode=train', f'--model_dir={model_dir}']
  procs = start_workers(tmp_path, flags + ['--train_steps=1000'], step_seconds=0.5)
  harness.wait_for(lambda: os.path.exists(os.path.join(model_dir, 'ckpt-3.index')), procs,
                   TIMEOUT, 'ckpt-3')
  procs[1].kill()  # SIGKILL: no chance to say goodbye.
  killed_at = time.time()
  assert harness.wait_all(procs[:1], 120)[0] == 1
  waited = time.time() - killed_at
  log = harness.output(procs[0])
  latest = tf.train.latest_checkpoint(model_dir)
  assert 'error: worker 0: another worker of the 2-worker run stopped' in log, log[-3000:]
  assert f'The last checkpoint is {latest}' in log
  assert waited < 60, waited
  resumed_from = int(latest.rsplit('-', 1)[1])
  assert resumed_from >= 3

  # Both restart from the chief's latest checkpoint and finish.
  procs = start_workers(tmp_path, flags + [f'--train_steps={resumed_from + 1}'])
  assert harness.wait_all(procs, TIMEOUT) == [0, 0], logs(procs)
  for p in procs:
    assert f'Resuming from {latest}' in harness.output(p)
    assert f'from step {resumed_from} to {resumed_from + 1}' in harness.output(p)
  assert tf.train.latest_checkpoint(model_dir).endswith(f'ckpt-{resumed_from + 1}')
  for a, b in zip(variables_of(tmp_path / 'weights_worker_0.npz'),
                  variables_of(tmp_path / 'weights_worker_1.npz')):
    np.testing.assert_array_equal(a, b)
  assert not glob.glob(os.path.join(model_dir, 'workertemp_*'))


@pytest.mark.slow
def test_workers_that_start_apart_with_default_pacing_run_the_same_calls(tmp_path):
  """Default pacing sizes calls from each process's clock. Worker 1 starts 10 s after
  worker 0 (whose first call then waits for it) and sleeps 1 s after every call (so
  worker 0 measures its steps slower): their own proposals differ, and different call
  lengths would leave collectives unmatched, a hang. Every worker must run the chief's."""
  model_dir = str(tmp_path / 'run')
  ports = harness.free_ports(2)
  spec = {'worker': [f'127.0.0.1:{p}' for p in ports]}
  flags = FLAGS + ['--steps_per_loop=0', '--log_every_secs=5', '--train_steps=40',
                   '--checkpoint_steps=40', '--mode=train', f'--model_dir={model_dir}']
  procs = [harness.start(tmp_path, flags, {'cluster': spec, 'task': {'type': 'worker',
                                                                     'index': 0}})]
  time.sleep(10)
  procs.append(harness.start(tmp_path, flags, {'cluster': spec, 'task': {'type': 'worker',
                                                                         'index': 1}},
                             SIMCLR_TEST_STEP_SECONDS=1.0))
  assert harness.wait_all(procs, 200) == [0, 0], logs(procs)
  logged = [[int(m) for m in re.findall(r'step (\d+)/40 ', harness.output(p))] for p in procs]
  assert logged[0] == logged[1] and logged[0][-1] == 40, logged
  assert max(b - a for a, b in zip(logged[0], logged[0][1:])) > 1, logged  # Paced, not 1 by 1.
  for a, b in zip(variables_of(tmp_path / 'weights_worker_0.npz'),
                  variables_of(tmp_path / 'weights_worker_1.npz')):
    np.testing.assert_array_equal(a, b)


def test_roles_follow_tensorflows_chief_convention():
  assert cluster.Role('worker', 0, 2, '/m').is_chief
  assert not cluster.Role('worker', 1, 2, '/m').write_dir == '/m'
  assert cluster.Role('worker', 1, 2, '/m').write_dir == '/m/workertemp_1'
  assert not cluster.Role('worker', 0, 3, '/m', has_chief=True).is_chief
  assert cluster.Role('chief', 0, 3, '/m', has_chief=True).write_dir == '/m'
  single = cluster.role_of(tf.distribute.get_strategy(), '/m')
  assert single.is_chief and not single.multi_worker and single.write_dir == '/m'


def test_lost_worker_message_names_the_reason_and_the_checkpoint():
  error = tf.errors.UnavailableError(None, None, (
      'Graph execution error:\n\nDetected at node x\nFile "a.py"\n'
      'UNAVAILABLE: failed to connect to all addresses; Connection refused'))
  message = str(cluster.Role('worker', 0, 2, '/m').lost_worker(error, '/m/ckpt-3'))
  assert 'UnavailableError: UNAVAILABLE: failed to connect' in message
  assert 'The last checkpoint is /m/ckpt-3' in message
  assert 'same command and TF_CONFIG' in message
