"""Test setup: 8 logical CPU devices for cross-replica tests, shared fixtures.

The CPU is split before TensorFlow initialises its devices, so every test can
compare an 8-replica MirroredStrategy against a single-device computation.
"""
import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from unittest import mock

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import ops  # noqa: E402

# Grappler's graph rewrites do not change results but cost most of the
# compile time of the small graphs here; tests skip them.
tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})

NUM_LOGICAL_DEVICES = 8
_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_DEVICES)

SHARED_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))


@pytest.fixture(scope='session')
def strategy8():
  devices = [d.name for d in tf.config.list_logical_devices('CPU')][:NUM_LOGICAL_DEVICES]
  return tf.distribute.MirroredStrategy(devices)


@pytest.fixture
def rng():
  return np.random.RandomState(0)


@pytest.fixture(autouse=True)
def release_traced_graphs():
  """Lets each test's traced graphs be freed when it ends. Every trace of
  `ReplicaContext.all_reduce` (the optimizer's gradient sum among them) registers a
  custom gradient in TensorFlow's global gradient registry, and its closure holds the
  traced graph, so no such graph is ever freed (tensorflow/tensorflow#80895). A run
  traces its step once; the suite traces hundreds of steps, and one process grew past
  10 GB in two test files. The test's registrations are dropped after it."""
  registry = ops._gradient_registry._registry  # pylint: disable=protected-access
  before = set(registry)
  yield
  for name in set(registry) - before:
    if name.startswith('CustomGradient-'):
      del registry[name]


@pytest.fixture(autouse=True)
def no_global_seed():
  """Each test starts without a global TensorFlow seed. One left by an earlier test gives
  the random ops of a tf.data function equal seeds, so they draw equal values (the
  warning in tf2/data/input_pipeline.py), and a distribution test then sees other views."""
  tf.random.set_seed(None)


def per_replica_slices(strategy, array):
  """Distributes consecutive equal slices of `array` (axis 0) to the replicas."""
  n = strategy.num_replicas_in_sync
  size = array.shape[0] // n

  def value_fn(ctx):
    i = ctx.replica_id_in_sync_group
    return tf.constant(array[i * size:(i + 1) * size])

  return strategy.experimental_distribute_values_from_function(value_fn)


@pytest.fixture(scope='session')
def real_cifar10(tmp_path_factory, worker_id):
  """A TFDS data_dir with CIFAR-10 (2,000 train images, full test) from ../shared, read
  only. Prepared once per run: pytest-xdist's workers share their base directory's parent,
  and the first to take the lock prepares it while the others wait."""
  if not os.path.isdir(SHARED_DIR):
    pytest.skip('../shared is absent')
  root = tmp_path_factory.getbasetemp()
  if worker_id != 'master':
    root = root.parent
  data_dir = root / 'real_cifar10'
  with open(root / 'real_cifar10.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / 'real_cifar10.done').exists():
      shutil.rmtree(data_dir, ignore_errors=True)  # What a failed try left.
      subprocess.run([sys.executable, os.path.join(SHARED_DIR, 'tools', 'prepare_cifar10.py'),
                      '--data_dir', str(data_dir), '--train_limit', '2000'], check=True,
                     capture_output=True)
      (root / 'real_cifar10.done').touch()
  return str(data_dir)


@contextlib.contextmanager
def mock_tfds(num_examples):
  """tfds.testing.mock_data for a run through the runner. Its `download_and_prepare` does
  nothing, so the reachability check before a download has nothing to reach: skip it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tf2.data import download  # pylint: disable=g-import-not-at-top
  with tfds.testing.mock_data(num_examples=num_examples), \
       mock.patch.object(download, 'check_reachable', lambda *args: None):
    yield


# The smallest pretraining run of the tests that run.py accepts (16 px, ResNet-18 of base
# width 8, `shapes`); flags and Config alike.
TINY_RUN = dict(dataset='shapes', eval_split='test', image_size=16, resnet_depth=18,
                resnet_base_width=8, train_batch_size=8, eval_batch_size=8, train_steps=1,
                use_blur=False, use_tpu=False)


@pytest.fixture(scope='session')
def tiny_checkpoints(tmp_path_factory):
  """run/: a model_dir at step 1 of TINY_RUN (ckpt-1, flags.json); cut/: its checkpoint
  truncated; plain/: a SavedModel that is not ours."""
  from tf2 import runner  # pylint: disable=g-import-not-at-top
  from tf2.config import Config  # pylint: disable=g-import-not-at-top
  from tf2.evaluation import results  # pylint: disable=g-import-not-at-top
  from tf2.training import resume  # pylint: disable=g-import-not-at-top
  from tf2.training.train_step import TrainStep  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('checkpoints')
  config = Config(**TINY_RUN, model_dir=str(root / 'run'))
  strategy = tf.distribute.get_strategy()
  model, optimizer = runner.build_model(config, strategy, 6, 100)
  TrainStep(config, model, optimizer, strategy).build_optimizer_state()
  optimizer.iterations.assign(1)
  good = resume.make_manager(model, optimizer, config.model_dir, 1).save(checkpoint_number=1)
  results.write_flags(config, config.model_dir)
  os.makedirs(root / 'cut')
  for name in tf.io.gfile.glob(good + '.*'):
    with open(name, 'rb') as f:
      content = f.read()
    with open(root / 'cut' / os.path.basename(name), 'wb') as f:
      f.write(content[:len(content) // 3] if '.data-' in name else content)
  plain = tf.Module()
  plain.v = tf.Variable(1.0)
  tf.saved_model.save(plain, str(root / 'plain'))
  return root


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: takes over a minute on a 2-core CPU (deselect with -m "not slow")')
