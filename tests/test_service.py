"""tf.data service on loopback: a dispatcher and two workers as processes on 127.0.0.1,
and `run.py` pretraining through them, one worker killed on the way; the pretraining
input pipeline through in-process servers in distributed_epoch."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import harness
from tf2.config import Config
from tf2.data import datasets, input_pipeline, service

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240


def start(args, log_path):
  """`python ARGS` from the project root, its output in `log_path` (`harness.output`)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='1')
  with open(log_path, 'w') as log:
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
  proc.log_path = str(log_path)
  return proc


def test_an_address_that_is_not_grpc_host_port_or_has_no_dispatcher_is_named():
  with pytest.raises(service.ServiceError, match='is not grpc://HOST:PORT'):
    service.host_port('http://127.0.0.1:5050')
  port = harness.free_ports(1)[0]
  start_time = time.monotonic()
  with pytest.raises(service.ServiceError, match='python -m tf2.data.service dispatcher'):
    service.check_reachable(f'grpc://127.0.0.1:{port}', timeout=1.0)
  assert time.monotonic() - start_time < 10
  with pytest.raises(ValueError, match='data_service_mode'):
    Config(data_service_mode='epochs').validate()


@pytest.mark.slow
def test_pretraining_reads_through_two_workers_and_survives_losing_one(tmp_path):
  port = harness.free_ports(1)[0]
  journal = tmp_path / 'dispatcher'
  procs = [start(['-m', 'tf2.data.service', 'dispatcher', f'--port={port}',
                  f'--work_dir={journal}'], tmp_path / 'dispatcher.log')]
  try:
    for i in range(2):
      procs.append(start(['-m', 'tf2.data.service', 'worker', f'--dispatcher=127.0.0.1:{port}'],
                         tmp_path / f'worker{i}.log'))
    model_dir = tmp_path / 'run'
    trainer = start([os.path.join(ROOT, 'run.py'), '--dataset=shapes', '--image_size=16',
                     '--resnet_depth=18', '--resnet_base_width=8', '--train_batch_size=8',
                     '--train_steps=12', '--checkpoint_steps=1', '--steps_per_loop=1',
                     '--use_blur=False', '--use_tpu=False', '--mode=train',
                     f'--model_dir={model_dir}', f'--data_service_address=grpc://127.0.0.1:{port}'],
                    tmp_path / 'run.log')
    harness.wait_for(lambda: (model_dir / 'ckpt-3.index').exists(), procs + [trainer],
                     TIMEOUT, 'ckpt-3')
    procs[2].send_signal(signal.SIGKILL)
    assert trainer.wait(timeout=TIMEOUT) == 0, harness.output(trainer)[-3000:]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith('ckpt-12')
    log = harness.output(trainer)
    assert 'Training input through the tf.data service at grpc://127.0.0.1' in log
    # The dispatcher journals the job the trainer made, under its shared name.
    journal_bytes = b''.join(p.read_bytes() for p in journal.rglob('*') if p.is_file())
    assert f'simclr_{model_dir}'.encode() in journal_bytes
  finally:
    for p in procs:
      p.kill()


def labels_through_service(source, tmp_path, count):
  """The first `count` labels of the pretraining input read through an in-process
  dispatcher and two workers in distributed_epoch."""
  svc = tf.data.experimental.service
  dispatcher = svc.DispatchServer(svc.DispatcherConfig(port=0))
  address = dispatcher.target.split('://')[1]
  workers = [svc.WorkerServer(svc.WorkerConfig(dispatcher_address=address)) for _ in range(2)]
  config = Config(dataset=source.name, image_size=8, train_batch_size=4, use_blur=False,
                  use_tpu=False, data_service_address=dispatcher.target,
                  data_service_mode='distributed_epoch', model_dir=str(tmp_path)).validate()
  ds = input_pipeline.make_input_fn(source, config, is_training=True, through_service=True)()
  labels = np.concatenate([y.numpy() for _, y in ds.take(count // 4)])
  del ds
  for server in workers + [dispatcher]:
    server.stop()
  return labels


@pytest.mark.parametrize('kind', ['arrays', 'folder'])
def test_distributed_epoch_reads_each_example_once_per_epoch_across_workers(tmp_path, kind):
  """64 images, each its own class, through two workers in distributed_epoch, which
  split each epoch between them: the first 64 views seen are 64 different images (all
  but a few at the epoch's end, where one worker may start the next epoch early), and
  three epochs' worth hold each image about three times. (In parallel_epochs each
  worker reads the whole split, so the first 64 repeat images whenever both workers
  contribute; how much each contributes is up to timing, so that is not asserted.)"""
  n = 64
  images = np.random.RandomState(0).randint(0, 256, (n, 8, 8, 3)).astype(np.uint8)
  if kind == 'arrays':
    source = datasets.array_source('arrays', {'train': (images, np.arange(n))}, n)
  else:
    for i in range(n):
      tf.io.write_file(str(tmp_path / 'data' / 'train' / f'c{i:02d}' / 'x.png'),
                       tf.io.encode_png(images[i]))
    source = datasets.folder_source(str(tmp_path / 'data'), ['train'])
  labels = labels_through_service(source, tmp_path, 3 * n)
  assert len(set(labels[:n].tolist())) >= n - 4, sorted(labels[:n])
  counts = np.bincount(labels, minlength=n)
  assert counts.min() >= 2 and counts.max() <= 4, counts
