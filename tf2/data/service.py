"""tf.data service: the pretraining input pipeline on other machines' CPUs.

When one host's cores cannot keep its accelerators fed, `--data_service_address
=grpc://HOST:PORT` sends the training input pipeline (read, augment, batch) to
the workers of a tf.data service (`tf.data.experimental.service`), and the
trainer only receives finished per-replica batches. Start one dispatcher and
any number of workers, each on a machine that sees the data at the same path:

    python -m tf2.data.service dispatcher --port 5050 [--work_dir DIR]
    python -m tf2.data.service worker --dispatcher HOST:5050 [--port 5051]

Processing modes (`--data_service_mode`):
- `parallel_epochs` (the default): every worker runs the whole pipeline,
  shuffled and repeated on its own, and the trainer takes batches from all of
  them. Any source works (TFDS, folders, arrays). SimCLR pretraining counts
  steps, not epochs, and draws fresh augmentations each time, so streams that
  overlap across workers cost nothing; a worker that dies leaves the others
  feeding the run, and one that starts later joins it.
- `distributed_epoch`: the dispatcher splits the source so that each example
  is read once per epoch across all workers. It needs a source that tf.data
  can split (folders and arrays; TFDS's interleaved readers are not).
Every training host reads from one shared job, named after --model_dir (as
given: the same string on every host), so
each batch goes to one consumer. Evaluation reads locally: it must see every
example exactly once.
"""
import argparse
import socket
import time

from absl import logging
import tensorflow as tf

from tf2 import config as config_lib
from tf2.errors import ServiceError

MODES = config_lib.DATA_SERVICE_MODES


def host_port(address, flag='--data_service_address'):
  """'grpc://host:port' or 'host:port' -> ('host', port)."""
  return config_lib.grpc_host_port(address, flag, ServiceError)


def check_reachable(address, timeout=10.0):
  """Fails at once, with what to do, if nothing listens at the dispatcher's address
  (tf.data would otherwise wait for it without end)."""
  host, port = host_port(address)
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host, port), timeout=2.0):
        return
    except OSError as e:
      if time.monotonic() > deadline:
        raise ServiceError(
            f'No tf.data service dispatcher answers at {host}:{port} ({e}). Start one with '
            f'`python -m tf2.data.service dispatcher --port {port}` and at least one worker '
            f'with `python -m tf2.data.service worker --dispatcher {host}:{port}`, or drop '
            '--data_service_address to read locally.') from e
      time.sleep(0.5)


def distribute(ds, address, mode, job_name):
  """`ds` read through the service at `address` (its elements made by the workers)."""
  if mode not in MODES:
    raise ServiceError(f'--data_service_mode={mode!r} is not one of {list(MODES)}.')
  check_reachable(address)
  processing_mode = (tf.data.experimental.service.ShardingPolicy.OFF if mode == 'parallel_epochs'
                     else tf.data.experimental.service.ShardingPolicy.DYNAMIC)
  logging.info('Training input through the tf.data service at %s (%s, job %s).', address, mode,
               job_name)
  # No compression: float32 views barely compress, and compressing every batch costs the
  # workers' CPUs (docs/performance.md#tfdata-service).
  return ds.apply(tf.data.experimental.service.distribute(
      processing_mode=processing_mode, service=address, job_name=job_name, compression=None))


def main(argv=None):
  parser = argparse.ArgumentParser(description='A tf.data service dispatcher or worker.')
  sub = parser.add_subparsers(dest='role', required=True)
  dispatcher = sub.add_parser('dispatcher')
  dispatcher.add_argument('--port', type=int, default=5050)
  dispatcher.add_argument('--work_dir', default=None,
                          help='where the dispatcher journals its state, so that a restarted '
                          'dispatcher resumes its jobs (fault-tolerant mode)')
  worker = sub.add_parser('worker')
  worker.add_argument('--dispatcher', required=True, help='HOST:PORT of the dispatcher')
  worker.add_argument('--port', type=int, default=0, help='0: any free port')
  worker.add_argument('--address', default=None,
                      help='HOST:%%port%% under which trainers reach this worker (default: '
                      'this machine\'s name)')
  args = parser.parse_args(argv)
  service = tf.data.experimental.service
  if args.role == 'dispatcher':
    server = service.DispatchServer(service.DispatcherConfig(
        port=args.port, work_dir=args.work_dir, fault_tolerant_mode=bool(args.work_dir)))
    print(f'tf.data service dispatcher listening on port {args.port}', flush=True)
  else:
    host, port = host_port(args.dispatcher, '--dispatcher')
    config = dict(dispatcher_address=f'{host}:{port}', port=args.port)
    if args.address:
      config['worker_address'] = args.address
    server = service.WorkerServer(service.WorkerConfig(**config))
    print(f'tf.data service worker of {host}:{port} started', flush=True)
  server.join()


if __name__ == '__main__':
  main()
