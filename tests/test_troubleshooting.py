"""Every row of docs/troubleshooting.md that ends in an error, run as a `run.py` process.

Each must exit with status 1 and print exactly one `error: ...` line (the message the
row shows, checked by a pattern) and no traceback. The rows are read from the page: a
row marked `error` without a scenario here, or a scenario without its row, fails the
test, so the page and the test cannot drift apart. Rows that need several replicas,
a full disk or fixed training data run through `tests/harness.py` (run.py unchanged,
plus its hooks).
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_RUN
import harness
import recipes
from tf2 import hardware

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [f'--{name}={value}' for name, value in TINY_RUN.items()] + [
    '--eval_steps=2', '--mode=train', '--log_every_secs=0']
TIMEOUT = 240


def error_rows():
  """The `input` cells of the table rows whose `ends` column is `error`."""
  rows = []
  for line in recipes.section('troubleshooting.md', 'Bad inputs and their messages').splitlines():
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if len(cells) == 4 and cells[1] == 'error':
      rows.append(cells[0])
  return rows


def assert_one_error(returncode, output, pattern):
  """Exit status 1, exactly one `error:` line that matches `pattern`, no traceback."""
  errors = [line for line in output.splitlines() if line.startswith('error: ')]
  assert returncode == 1 and len(errors) == 1, (returncode, output[-3000:])
  assert re.search(pattern, errors[0]), errors[0]
  assert 'Traceback' not in output, output[-3000:]


def run_py(flags, env=None, timeout=TIMEOUT):
  """(return code, stdout + stderr) of `python run.py FLAGS`."""
  proc = subprocess.run([sys.executable, os.path.join(ROOT, 'run.py')] + flags,
                        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                        env=dict(os.environ, **(env or {})))
  return proc.returncode, proc.stdout + proc.stderr


def run_harness(out_dir, flags, **env):
  """(return code, output) of run.py through tests/harness.py with its hooks in `env`."""
  os.makedirs(out_dir, exist_ok=True)
  proc = harness.start(out_dir, flags, **env)
  return harness.wait_all([proc], TIMEOUT)[0], harness.output(proc)


def write_images(directory, count, rng, garbage=0):
  os.makedirs(directory, exist_ok=True)
  for i in range(count):
    tf.io.write_file(os.path.join(directory, f'{i}.png'),
                     tf.io.encode_png(rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)))
  for i in range(garbage):
    with open(os.path.join(directory, f'bad{i}.jpg'), 'wb') as f:
      f.write(b'not an image')


def bf16_cpu():
  _, flags = hardware.read_cpuinfo()
  return bool(flags and {'avx512_bf16', 'amx_bf16'} & flags)


# Each scenario: f(tmp_path, fixtures) -> (return code, output, pattern of the error line).
def misspelled_flag(tmp, _):
  return run_py(['--trian_steps=5']) + (r"Unknown command line flag 'trian_steps'\. Did you mean: "
                                         r'train_steps',)


def with_flags(flags, pattern):
  def scenario(tmp, _):
    return run_py(TINY + flags + [f'--model_dir={tmp / "run"}']) + (pattern,)
  return scenario


def folder_without_classes(tmp, _):
  write_images(tmp / 'flat', 3, np.random.RandomState(0))
  return run_py(TINY + [f'--dataset={tmp / "flat"}', '--train_split=train',
                        '--train_mode=finetune', f'--model_dir={tmp / "run"}']) + (
                            'has no labels .*fine-tuning needs labelled data',)


def batch_not_divisible(tmp, _):
  return run_harness(tmp / 'out', TINY + ['--train_batch_size=100', f'--model_dir={tmp / "run"}'],
                     SIMCLR_TEST_REPLICAS=8) + (
                         r'--train_batch_size=100 must be a multiple of the number of replicas '
                         r'\(8\)',)


def unwritable_model_dir(tmp, _):
  (tmp / 'file').write_text('')
  return run_py(TINY + [f'--model_dir={tmp / "file" / "run"}']) + ('cannot be written',)


def disk_full_at_checkpoint(tmp, fixtures):
  model_dir = tmp / 'run'
  shutil.copytree(fixtures['checkpoints'] / 'run', model_dir)
  data = model_dir / 'ckpt-1.data-00000-of-00001'
  return run_harness(tmp / 'out', TINY + ['--train_steps=2', f'--model_dir={model_dir}'],
                     SIMCLR_TEST_FILE_SIZE_LIMIT=os.path.getsize(data) // 2) + (
                         r'Writing the checkpoint of step 2 .* failed .* is the disk full',)


def disk_full_at_export(tmp, fixtures):
  model_dir = tmp / 'run'
  shutil.copytree(fixtures['checkpoints'] / 'run', model_dir)
  # Results and summaries fit in 64 KB; a SavedModel does not.
  return run_harness(tmp / 'out', TINY + ['--mode=eval', f'--model_dir={model_dir}'],
                     SIMCLR_TEST_FILE_SIZE_LIMIT=64 * 1024) + (
                         r'Exporting the SavedModel of step 1 .* failed',)


def no_readable_checkpoint(tmp, fixtures):
  model_dir = tmp / 'run'
  shutil.copytree(fixtures['checkpoints'] / 'run', model_dir)
  for name in os.listdir(model_dir):
    if name.startswith('ckpt-1.'):
      (model_dir / name).write_bytes(b'')
  return run_py(TINY + ['--train_steps=2', f'--model_dir={model_dir}']) + (
      'None of the checkpoints listed in .* can be read',)


def divergence(tmp, _):
  return run_py(TINY + ['--optimizer=momentum', '--learning_rate=1e30', '--warmup_epochs=0',
                        '--train_steps=4', '--checkpoint_steps=1',
                        f'--model_dir={tmp / "run"}']) + (
                            r'(The loss became|became NaN or infinite) .*between steps',)


def tfds_offline(flags, pattern):
  """A TFDS run on a machine without the network (harness: SIMCLR_TEST_OFFLINE)."""
  def scenario(tmp, _):
    return run_harness(tmp / 'out', TINY + flags + [f'--data_dir={tmp / "tfds"}',
                                                    f'--model_dir={tmp / "run"}'],
                       SIMCLR_TEST_OFFLINE=1) + (pattern,)
  return scenario


def tfds_copy(tmp, fixtures, keep):
  """A copy of the prepared CIFAR-10 with the files `keep(name)` refuses left out."""
  source = os.path.join(fixtures['cifar10'](), 'cifar10', '3.0.2')
  target = tmp / 'tfds' / 'cifar10' / '3.0.2'
  os.makedirs(target)
  for name in os.listdir(source):
    if keep(name):
      shutil.copy(os.path.join(source, name), target)
  return target


def tfds_incomplete(tmp, fixtures):
  tfds_copy(tmp, fixtures, lambda name: not name.startswith('cifar10-train.tfrecord'))
  return run_py(TINY + ['--dataset=cifar10', f'--data_dir={tmp / "tfds"}',
                        f'--model_dir={tmp / "run"}']) + (
                            "'cifar10' in .* is incomplete: 1 of the 1 files of split 'train'",)


def tfds_truncated(tmp, fixtures):
  target = tfds_copy(tmp, fixtures, lambda name: True)
  record = next(target / n for n in os.listdir(target) if n.startswith('cifar10-train.tfrecord'))
  content = record.read_bytes()
  record.write_bytes(content[:len(content) // 2])
  return run_py(TINY + ['--dataset=cifar10', f'--data_dir={tmp / "tfds"}',
                        '--train_batch_size=256', '--train_steps=4',
                        f'--model_dir={tmp / "run"}']) + ('A data file is truncated or corrupt',)


def folder_split_missing(tmp, _):
  write_images(tmp / 'root' / 'train' / 'a', 2, np.random.RandomState(0))
  return run_py(TINY + [f'--dataset={tmp / "root"}', '--mode=train_then_eval',
                        f'--model_dir={tmp / "run"}']) + (r"No split 'test' in .*root",)


def folder_unreadable(tmp, _):
  write_images(tmp / 'root' / 'train' / 'a', 0, None, garbage=2)
  return run_py(TINY + [f'--dataset={tmp / "root"}', f'--model_dir={tmp / "run"}']) + (
      'No readable image in .*train: all 2',)


def folder_strict(tmp, _):
  write_images(tmp / 'root' / 'train' / 'a', 2, np.random.RandomState(0), garbage=1)
  return run_py(TINY + [f'--dataset={tmp / "root"}', '--strict_images=True',
                        f'--model_dir={tmp / "run"}']) + ('Not a decodable .*bad0.jpg',)


def checkpoint_flags(path, pattern, more=()):
  def scenario(tmp, fixtures):
    return run_py(TINY + [f'--checkpoint={path(fixtures["checkpoints"])}',
                          f'--model_dir={tmp / "run"}'] + list(more)) + (pattern,)
  return scenario


def foreign_teacher(tmp, fixtures):
  teacher = fixtures['checkpoints'] / 'plain'
  return run_py(TINY + ['--train_mode=distill', f'--teacher_checkpoint={teacher}',
                        f'--model_dir={tmp / "run"}']) + ('no flags.json there',)


def lost_worker(tmp, _):
  from test_cluster import start_workers  # pylint: disable=g-import-not-at-top
  model_dir = tmp / 'run'
  procs = start_workers(tmp, ['--mode=train', f'--model_dir={model_dir}', '--train_steps=1000'],
                        step_seconds=0.5)
  harness.wait_for(lambda: os.path.exists(model_dir / 'ckpt-1.index'), procs, TIMEOUT, 'ckpt-1')
  procs[1].kill()
  return harness.wait_all(procs[:1], 120)[0], harness.output(procs[0]), (
      'another worker of the 2-worker run stopped or became unreachable')


def jit_on_cpu_replicas(tmp, _):
  return run_harness(tmp / 'out', TINY + ['--jit_compile=True', f'--model_dir={tmp / "run"}'],
                     SIMCLR_TEST_REPLICAS=8) + (
                         '--jit_compile=True with 8 replicas on CPU devices',)


def no_tpu(tmp, _):
  flags = [f for f in TINY if f != '--use_tpu=False']
  return run_py(flags + ['--use_tpu=True', f'--model_dir={tmp / "run"}']) + (
      '--use_tpu=True but the TPU .* could not be reached.*--use_tpu=False',)


def strict_precision(tmp, _):
  if bf16_cpu():
    pytest.skip('this CPU computes bf16 natively: nothing to refuse')
  return run_py(TINY + ['--precision=mixed_bfloat16', '--strict_precision=True',
                        f'--model_dir={tmp / "run"}']) + (
                            r'bf16 will be emulated.*refused because --strict_precision=True',)


def capped_bf16(tmp, _):
  if not bf16_cpu():
    pytest.skip('this CPU has no bf16 kernels for ONEDNN_MAX_CPU_ISA to cap')
  return run_py(TINY + ['--precision=mixed_bfloat16', f'--model_dir={tmp / "run"}'],
                env={'ONEDNN_MAX_CPU_ISA': 'AVX2'}) + ('ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN',)


SCENARIOS = {
    'a misspelled flag `--trian_steps=5`': misspelled_flag,
    '`--fine_tune_after_block=2` while pretraining': with_flags(
        ['--fine_tune_after_block=2'], 'Layer freezing is only for fine-tuning'),
    '`--ft_proj_selector=5` with 3 projection layers': with_flags(
        ['--ft_proj_selector=5'], r'--ft_proj_selector=5 is out of range'),
    'a negative rate or count: `--learning_rate=-1`, `--weight_decay=-1e-4`, '
    '`--train_steps=-5`, ...': with_flags(['--learning_rate=-1'],
                                           '--learning_rate must be >= 0, got -1.0'),
    '`--train_mode=finetune` on a folder without classes': folder_without_classes,
    '`--train_mode=distill` without a teacher': with_flags(
        ['--train_mode=distill'], '--train_mode=distill needs --teacher_checkpoint'),
    'a batch size not divisible by the replicas': batch_not_divisible,
    '`--image_size=4`': with_flags(['--image_size=4'], '--image_size=4 is below 8'),
    '`--encoder=convnet --image_size=14`': with_flags(
        ['--encoder=convnet', '--image_size=14'], '--encoder=convnet needs --image_size >= 15'),
    '`--randbits=10 --digits_on_images=16`': with_flags(
        ['--randbits=10', '--digits_on_images=16'],
        '--randbits and --digits_on_images cannot be combined'),
    'a `--model_dir` that cannot be written': unwritable_model_dir,
    'the disk fills while a checkpoint is written': disk_full_at_checkpoint,
    'the disk fills while a SavedModel is exported': disk_full_at_export,
    'no checkpoint listed in `model_dir` can be read': no_readable_checkpoint,
    'a NaN/Inf loss or weight': divergence,
    '... on a machine without the network': tfds_offline(
        ['--dataset=cifar10'], "'cifar10' is not prepared in .* cannot be downloaded here: "
        'www.cs.toronto.edu:443 is unreachable'),
    '... with `--tfds_download=False`': tfds_offline(
        ['--dataset=cifar10', '--tfds_download=False'],
        '--tfds_download=False refuses to download it'),
    '`--dataset=imagenet2012` without its files': tfds_offline(
        ['--dataset=imagenet2012'], 'must be downloaded by hand first. TFDS says: .*'
        'ILSVRC2012_img_train.tar'),
    'a TFDS directory with files missing': tfds_incomplete,
    'a truncated TFDS record file': tfds_truncated,
    'an unknown TFDS name': with_flags(['--dataset=no_such_dataset_xyz'],
                                       "TFDS does not know a dataset named 'no_such_dataset_xyz'"),
    'a folder split that is empty or missing': folder_split_missing,
    'a folder with no readable image': folder_unreadable,
    '... with `--strict_images=True`': folder_strict,
    'a checkpoint of another architecture': checkpoint_flags(
        lambda checkpoints: checkpoints / 'run', r'has shape .* in the model but .*: check',
        ['--resnet_base_width=16']),
    'a `--checkpoint` path with no checkpoint': checkpoint_flags(
        lambda checkpoints: checkpoints / 'missing' / 'ckpt-1', r'no such checkpoint'),
    'a truncated `--checkpoint`': checkpoint_flags(
        lambda checkpoints: checkpoints / 'cut' / 'ckpt-1',
        'cannot be read whole .*truncated or damaged'),
    'a SavedModel that is not ours as `--checkpoint`': checkpoint_flags(
        lambda checkpoints: checkpoints / 'plain',
        'is not a checkpoint or export of this project.*checkpoints.convert'),
    '... as `--teacher_checkpoint`': foreign_teacher,
    'a worker of a multi-worker run dies': lost_worker,
    '`--jit_compile=True` with several replicas on CPUs': jit_on_cpu_replicas,
    '`--use_tpu=True` (the default, as the original\'s) without a reachable TPU': no_tpu,
    '`--data_service_address=grpc://127.0.0.1:1` (no dispatcher listening)': with_flags(
        ['--data_service_address=grpc://127.0.0.1:1'],
        'No tf.data service dispatcher answers at 127.0.0.1:1'),
    '`--data_service_address=not-an-address`': with_flags(
        ['--data_service_address=not-an-address'], 'is not grpc://HOST:PORT'),
    '... with `--strict_precision=True`': strict_precision,
    '`--precision=mixed_bfloat16` on a bf16 CPU with `ONEDNN_MAX_CPU_ISA` below its bf16 '
    'kernels (e.g. `AVX2`)': capped_bf16,
}
SLOW = {'a worker of a multi-worker run dies', 'a truncated TFDS record file'}


def test_every_error_row_of_the_page_has_a_scenario_and_no_other():
  assert sorted(error_rows()) == sorted(SCENARIOS)


@pytest.mark.parametrize('row', [pytest.param(row, marks=pytest.mark.slow) if row in SLOW
                                 else row for row in SCENARIOS])
def test_the_row_ends_in_one_error_line(row, tmp_path, tiny_checkpoints, request):
  fixtures = {'checkpoints': tiny_checkpoints,
              'cifar10': lambda: request.getfixturevalue('real_cifar10')}
  returncode, output, pattern = SCENARIOS[row](tmp_path, fixtures)
  assert_one_error(returncode, output, pattern)
