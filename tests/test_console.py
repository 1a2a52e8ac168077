"""Start-up noise: benign TensorFlow lines dropped, everything else kept."""
import logging
import os
import platform
import subprocess
import sys

from tf2 import console

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = [
    'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR',
    'I0000 00:00:1795383314.806699    5878 cudart_stub.cc:31] Could not find cuda drivers on '
    'your machine, GPU will not be used.',
    'E0000 00:00:1795383377.024466    6581 cuda_platform.cc:52] failed call to cuInit: INTERNAL: '
    'CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)',
    'I0000 00:00:1795383315.905330    5878 cpu_feature_guard.cc:227] This TensorFlow binary is '
    'optimized to use available CPU instructions in performance-critical operations.',
    'To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow '
    'with the appropriate compiler flags.',
    'I0000 00:00:1796237171.264151    5006 port.cc:153] oneDNN custom operations are on. You may '
    'see slightly different numerical results due to floating-point round-off errors from '
    'different computation orders. To turn them off, set the environment variable '
    '`TF_ENABLE_ONEDNN_OPTS=0`.',
]
REAL = [
    'E0000 00:00:1795383377.024466    6581 cuda_platform.cc:52] failed call to cuInit: '
    'CUDA_ERROR_OUT_OF_MEMORY: out of memory',
    'E0000 00:00:1.0 1 gpu_device.cc:2020] Could not load dynamic library libcudnn.so.9',
    'Traceback (most recent call last):',
]


def test_only_the_known_benign_lines_are_dropped():
  assert all(console.is_benign(line) for line in NOISE)
  assert not any(console.is_benign(line) for line in REAL)


def test_run_py_starts_without_the_noise_and_shows_it_on_request(tmp_path):
  """TensorFlow imported as run.py does; oneDNN's notice forced on, as on CPUs where
  TensorFlow enables oneDNN by default (AVX-512 ones), so that it is checked here too."""
  command = [sys.executable, '-c', 'import sys; sys.path.insert(0, "."); from tf2 import console;'
             ' dropped = console.quiet_tensorflow_startup(); print(len(dropped))']
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS='1', TF_CPP_MIN_LOG_LEVEL='1')
  quiet = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                         env=dict(env, SIMCLR_STARTUP_LOGS='0'))
  assert not any(console.is_benign(line) for line in quiet.stderr.splitlines())
  assert 'oneDNN custom operations' not in quiet.stderr
  loud = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                        env=dict(env, SIMCLR_STARTUP_LOGS='1'))
  shown = [line for line in loud.stderr.splitlines() if console.is_benign(line)]
  assert len(shown) == int(quiet.stdout.split()[-1])  # What was dropped is what is shown.
  if platform.machine() in ('x86_64', 'AMD64'):
    assert any('oneDNN custom operations are on' in line for line in shown)


def test_tensorflow_info_records_are_filtered_but_not_warnings():
  console.drop_tensorflow_info()
  make = lambda level, path: logging.LogRecord('absl', level, path, 1, 'm', (), None)
  tf_path = os.path.join(os.sep, 'site-packages', 'tensorflow', 'python', 'saver.py')
  assert not console._FILTER.filter(make(logging.INFO, tf_path))
  assert console._FILTER.filter(make(logging.WARNING, tf_path))
  assert console._FILTER.filter(make(logging.INFO, os.path.join(ROOT, 'tf2', 'runner.py')))
