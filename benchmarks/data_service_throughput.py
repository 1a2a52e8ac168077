"""Images per second of the pretraining input through a local tf.data service, and without it.

    python -m benchmarks.data_service_throughput [--workers 1,2] [--seconds 20]
        [--image_size 224] [--batch 64] [--color_jitter_on_device]

Writes 256 photo-like 500x375 JPEGs to a temporary folder, then reads our
pretraining input pipeline (`input_pipeline.make_input_fn`, the one run.py
trains from) for `--seconds`: once on this process, then through a
dispatcher and N workers started here as processes on 127.0.0.1
(`python -m tf2.data.service`). On one machine the workers share its cores,
so this measures what the service costs and that it works, not how it
scales: the gain comes from workers on other machines.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

from benchmarks.augment_throughput import measure
from benchmarks.children import ROOT
from benchmarks.input_side_by_side import photo_like_jpegs
from tf2 import hardware
from tf2.config import Config
from tf2.data import datasets


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--workers', default='1,2')
  parser.add_argument('--seconds', type=float, default=20)
  parser.add_argument('--image_size', type=int, default=224)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--color_jitter_on_device', action='store_true')
  args = parser.parse_args()
  print(hardware.describe(), flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    for i, data in enumerate(photo_like_jpegs(256)):
      path = os.path.join(tmp, 'train', f'c{i % 4}', f'{i}.jpg')
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, 'wb') as f:
        f.write(data)
    source = datasets.build_source(tmp, None, ['train'], scan_cache_dir='')
    config = Config(image_size=args.image_size, train_batch_size=args.batch,
                    train_mode='pretrain', train_split='train', model_dir=tmp,
                    color_jitter_on_device=args.color_jitter_on_device)
    print(f'{args.image_size} px, batch {args.batch}, 2 views, colour on '
          f'{"device" if args.color_jitter_on_device else "host"}, {args.seconds:g} s each',
          flush=True)
    local = measure(source, config, args.seconds, warmup=3)
    print(f'local (no service): {local:.0f} images/s', flush=True)
    for n in [int(w) for w in args.workers.split(',')]:
      port = free_port()
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
      cmd = [sys.executable, '-m', 'tf2.data.service']
      procs = [subprocess.Popen(cmd + ['dispatcher', f'--port={port}'], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
      procs += [subprocess.Popen(cmd + ['worker', f'--dispatcher=127.0.0.1:{port}'], cwd=ROOT,
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(n)]
      try:
        time.sleep(8)  # the workers import TensorFlow and register
        served = config.replace(data_service_address=f'grpc://127.0.0.1:{port}',
                                model_dir=os.path.join(tmp, f'job{n}'))
        served_rate = measure(source, served, args.seconds, through_service=True, warmup=3)
        print(f'{n} local worker(s): {served_rate:.0f} images/s', flush=True)
      finally:
        for p in procs:
          p.kill()


if __name__ == '__main__':
  main()
