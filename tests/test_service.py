"""tf.data service on loopback: a dispatcher and two workers as processes on 127.0.0.1,
and `run.py` pretraining through them, one worker killed on the way."""
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests import harness
from tf2.config import Config
from tf2.data import service

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
