"""The training loop: step plan, checkpoints, interruption and resume with optimizer state."""
import os
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

import harness
from tf2.errors import CheckpointMismatchError
from tf2.training import loop as training
from tf2.training import resume
from tf2.config import Config
from tf2.data.datasets import array_source
from tf2.training.lr_schedule import schedule_from_config
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer
from tf2.training.train_step import TrainStep

CONFIG = Config(resnet_depth=18, image_size=16, use_tpu=False, global_bn=False,
                resnet_base_width=8, train_batch_size=8, train_steps=4, checkpoint_steps=2,
                train_summary_steps=1, use_blur=False, warmup_epochs=0)


def test_plan_follows_the_original_formulas():
  plan = training.make_plan(Config(train_batch_size=512, train_epochs=100), 50000)
  assert plan.train_steps == 50000 * 100 // 512 + 1
  assert plan.epoch_steps == round(50000 / 512) == 98
  assert plan.checkpoint_steps == 98
  assert plan.loop_steps == 0  # Paced by --log_every_secs.
  plan = training.make_plan(Config(train_batch_size=512, train_epochs=100, log_every_secs=0),
                            50000)
  assert plan.loop_steps == 98  # min(checkpoint, summary=100)
  plan = training.make_plan(Config(train_steps=10, checkpoint_steps=4, steps_per_loop=3), 100)
  assert (plan.train_steps, plan.checkpoint_steps, plan.loop_steps) == (10, 4, 3)


@pytest.fixture
def source(rng):
  images = rng.randint(0, 256, [32, 16, 16, 3]).astype(np.uint8)
  return array_source('arrays', {'train': (images, rng.randint(0, 3, 32))}, 3)


def build(config, num_examples=32):
  strategy = tf.distribute.get_strategy()
  model = SimCLRModel(config, 3).build_for()
  optimizer = build_optimizer(config, schedule_from_config(config, num_examples))
  return model, optimizer, strategy


def optimizer_state(optimizer):
  return {v.path: v.numpy() for v in optimizer.variables}


def test_interrupted_run_saves_and_resumes_with_the_same_optimizer_state(source, tmp_path):
  model_dir = str(tmp_path)
  model, optimizer, strategy = build(CONFIG)
  seen = {}

  def preempt(step):
    if step == 1:
      seen['state'] = optimizer_state(optimizer)
      seen['weights'] = [v.numpy() for v in model.variables]
      os.kill(os.getpid(), signal.SIGTERM)  # What a preempted VM receives.

  config = CONFIG.replace(steps_per_loop=1)
  with pytest.raises(KeyboardInterrupt):
    training.train(config, model, optimizer, strategy, source, model_dir, on_loop_end=preempt)
  # Step 1 is not a checkpoint step: the interrupt handler saved it.
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-1')
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(
      signal.getsignal(signal.SIGTERM))

  model2, optimizer2, strategy = build(CONFIG)
  TrainStep(config, model2, optimizer2, strategy).build_optimizer_state()
  manager = resume.make_manager(model2, optimizer2, model_dir, 5)
  assert resume.restore_or_initialize(config, model2, optimizer2, manager) == 1
  restored = optimizer_state(optimizer2)
  assert restored.keys() == seen['state'].keys()
  momenta = [k for k in restored if 'momentum' in k.lower()]
  assert momenta
  for key, value in seen['state'].items():
    np.testing.assert_array_equal(restored[key], value, err_msg=key)
  assert any(np.abs(restored[k]).sum() > 0 for k in momenta)
  for a, b in zip(seen['weights'], model2.variables):
    np.testing.assert_array_equal(a, b.numpy())

  final = training.train(config, model2, optimizer2, strategy, source, model_dir)
  assert final == 4 and tf.train.latest_checkpoint(model_dir).endswith('ckpt-4')


def test_checkpoints_at_the_interval_and_summaries(source, tmp_path):
  model, optimizer, strategy = build(CONFIG)
  assert training.train(CONFIG, model, optimizer, strategy, source, str(tmp_path)) == 4
  state = tf.train.get_checkpoint_state(str(tmp_path))
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ['ckpt-2', 'ckpt-4']
  tags, learning_rates = set(), {}
  for name in os.listdir(tmp_path):
    if name.startswith('events.out.tfevents'):
      for event in tf.compat.v1.train.summary_iterator(str(tmp_path / name)):
        for value in event.summary.value:
          tags.add(value.tag)
          if value.tag == 'learning_rate':
            learning_rates[event.step] = float(tf.make_ndarray(value.tensor))
  # No warmup, 4 steps: half way down the cosine at step 2 (base 0.3 x 8 / 256).
  np.testing.assert_allclose(learning_rates[2], 0.3 * 8 / 256 * 0.5, rtol=1e-6)
  metrics = {'weight_decay', 'total_loss', 'contrast_loss', 'contrast_acc', 'contrast_entropy',
             'supervised_loss', 'supervised_acc'}
  assert {f'train/{m}' for m in metrics} | {'learning_rate', 'train/augmented_view_0',
                                            'train/augmented_view_1'} <= tags
  # A finished run does nothing more when started again.
  model, optimizer, strategy = build(CONFIG)
  assert training.train(CONFIG, model, optimizer, strategy, source, str(tmp_path)) == 4


def summary_steps(directory, tag='train/total_loss'):
  steps = []
  for name in sorted(os.listdir(directory)):
    if name.startswith('events.out.tfevents'):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
        steps += [event.step for value in event.summary.value if value.tag == tag]
  return sorted(steps)


def call_ends(config, source, model_dir):
  """Trains `config` from scratch; the step at which each tf.function call ended."""
  model, optimizer, strategy = build(config)
  ends = []
  training.train(config, model, optimizer, strategy, source, str(model_dir),
                 on_loop_end=ends.append)
  return ends


def test_steps_per_loop_wins_over_a_shorter_summary_interval(source, tmp_path):
  """--steps_per_loop=30 with summaries every 10 steps: two calls of 30 steps (the
  original's loop writes its summaries once per loop), a summary after each."""
  assert call_ends(CONFIG.replace(train_steps=60, checkpoint_steps=60, steps_per_loop=30,
                                  train_summary_steps=10), source, tmp_path) == [30, 60]
  assert summary_steps(tmp_path) == [30, 60]


def test_paced_calls_stop_at_summary_boundaries(source, tmp_path):
  ends = call_ends(CONFIG.replace(train_steps=12, checkpoint_steps=12, train_summary_steps=5,
                                  log_every_secs=1000), source, tmp_path)
  assert ends == [1, 5, 10, 12]  # One traced step, then up to each boundary.
  assert summary_steps(tmp_path) == [1, 5, 10, 12]  # After every paced call.


def test_weights_are_read_on_the_host_only_when_the_device_flag_says_non_finite(
    source, tmp_path, monkeypatch):
  """Each call returns one all-finite flag computed on the device; the host reads the
  variables (hundreds of remote reads on a TPU) only to name a bad one."""
  reads = []
  real = training.nonfinite
  monkeypatch.setattr(training, 'nonfinite', lambda variables: reads.append(1) or real(variables))
  config = CONFIG.replace(steps_per_loop=1)
  model, optimizer, strategy = build(config)
  assert training.train(config, model, optimizer, strategy, source, str(tmp_path)) == 4
  assert not reads


def test_resuming_into_another_architecture_is_refused(source, tmp_path):
  model, optimizer, strategy = build(CONFIG.replace(train_steps=2))
  training.train(CONFIG.replace(train_steps=2), model, optimizer, strategy, source,
                 str(tmp_path))
  other = CONFIG.replace(resnet_base_width=16)
  model, optimizer, strategy = build(other)
  with pytest.raises(CheckpointMismatchError, match='new --model_dir'):
    training.train(other, model, optimizer, strategy, source, str(tmp_path))


@pytest.mark.parametrize('precision, poison', [('float32', 'loss'), ('float32', 'weights'),
                                               ('mixed_bfloat16', 'loss')])
def test_nonfinite_values_stop_the_run_before_anything_is_saved(source, tmp_path, precision,
                                                                poison):
  """A NaN that reaches the loss (a kernel), or an Inf only in the weights (a BN moving mean,
  which the training loss does not see), after the step-2 checkpoint."""
  config = CONFIG.replace(steps_per_loop=1, precision=precision)
  model, optimizer, strategy = build(config)
  name = 'stem' if poison == 'loss' else 'moving_mean'
  target = next(v for v in model.variables if name in v.path and 'kernel' in v.path) if (
      poison == 'loss') else next(v for v in model.variables if name in v.path)

  def poison_after_checkpoint(step):
    if step == 2:
      target.assign(tf.fill(target.shape, float('nan' if poison == 'loss' else 'inf')))

  with pytest.raises(FloatingPointError) as error:
    training.train(config, model, optimizer, strategy, source, str(tmp_path),
                   on_loop_end=poison_after_checkpoint)
  message = str(error.value)
  assert 'between steps 2 and 3' in message and 'ckpt-2' in message, message
  assert ('loss became nan' in message) == (poison == 'loss'), message
  saved = tf.train.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths
  assert [os.path.basename(p) for p in saved] == ['ckpt-2']
  reader = tf.train.load_checkpoint(saved[0])
  for key in reader.get_variable_to_shape_map():
    value = reader.get_tensor(key)
    if np.issubdtype(np.asarray(value).dtype, np.floating):
      assert np.all(np.isfinite(value)), key


def test_a_truncated_last_checkpoint_resumes_from_the_one_before(source, tmp_path):
  model_dir = str(tmp_path)
  model, optimizer, strategy = build(CONFIG)
  saved = {}

  def record(step):
    saved[step] = [v.numpy() for v in model.variables] + [optimizer_state(optimizer)]

  training.train(CONFIG, model, optimizer, strategy, source, model_dir,
                 on_checkpoint=record)  # ckpt-2, ckpt-4
  for step in (4, 2):
    data = os.path.join(model_dir, f'ckpt-{step}.data-00000-of-00001')
    with open(data, 'rb') as f:
      content = f.read()
    with open(data, 'wb') as f:  # Cut short, as by a full disk or a copy that broke off.
      f.write(content[:len(content) // 3])
    model, optimizer, _ = build(CONFIG)
    TrainStep(CONFIG, model, optimizer, strategy).build_optimizer_state()
    manager = resume.make_manager(model, optimizer, model_dir, 5)
    if step == 4:
      assert resume.restore_or_initialize(CONFIG, model, optimizer, manager) == 2
      for got, want in zip([v.numpy() for v in model.variables], saved[2][:-1]):
        np.testing.assert_array_equal(got, want)
      state = optimizer_state(optimizer)
      assert set(state) == set(saved[2][-1])
      for name, value in saved[2][-1].items():
        np.testing.assert_array_equal(state[name], value)
      assert any(np.any(a != b) for a, b in zip(saved[2][:-1], saved[4][:-1]))  # ckpt-4 differs.
    else:
      with pytest.raises(CheckpointMismatchError, match='None of the checkpoints'):
        resume.restore_or_initialize(CONFIG, model, optimizer, manager)


def _records(path):
  """[(step, digest)] from a harness saved_/restored_ file, in order."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [(int(step), digest) for step, digest in (line.split() for line in f)]


@pytest.mark.slow
def test_kill_9_anywhere_resumes_from_the_last_complete_checkpoint(tmp_path):
  """SIGKILL inside a checkpoint write (fault injection, after the files and
  before the checkpoint state) and at random moments: every restart resumes
  from the last complete checkpoint, with weights, optimizer slots and step
  equal (sha256) to what the killed process held when it saved them."""
  model_dir = str(tmp_path / 'run')
  out = tmp_path / 'out'
  out.mkdir()
  flags = ['--dataset=shapes', '--image_size=16', '--resnet_depth=18', '--resnet_base_width=8',
           '--train_batch_size=8', '--checkpoint_steps=1', '--steps_per_loop=1',
           '--use_blur=False', '--mode=train', '--use_tpu=False', '--keep_checkpoint_max=3',
           f'--model_dir={model_dir}']
  saved, restored = str(out / 'saved_single_0.txt'), str(out / 'restored_single_0.txt')

  def latest_step():
    latest = tf.train.latest_checkpoint(model_dir)
    return int(latest.rsplit('-', 1)[1]) if latest else 0

  def check_resumed(proc, step):
    """`proc` restored `step` with the state the saver recorded for it."""
    harness.wait_for(lambda: len(_records(restored)) > resumes, [proc], 120, 'the restore')
    assert f'Resuming from {model_dir}/ckpt-{step}' in harness.output(proc)
    recorded = [r for r in _records(saved) if r[0] == step]
    # (Unrecorded only if the kill fell between the save and the record.)
    assert _records(restored)[-1] == (recorded[-1] if recorded else _records(restored)[-1])
    return bool(recorded)

  # 1. Killed inside the 3rd save: ckpt-3's files exist, but only ckpt-2 counts.
  proc = harness.start(out, flags + ['--train_steps=1000'], SIMCLR_TEST_KILL_AT_SAVE=3)
  assert harness.wait_all([proc], 180) == [-signal.SIGKILL]
  assert os.path.exists(os.path.join(model_dir, 'ckpt-3.index'))
  assert latest_step() == 2 and [s for s, _ in _records(saved)] == [1, 2]
  # 2. Restarts, each killed at a random moment after its next checkpoint.
  rng = np.random.RandomState(0)
  resumes = compared = 0
  for _ in range(2):
    step = latest_step()
    proc = harness.start(out, flags + ['--train_steps=1000'], SIMCLR_TEST_STEP_SECONDS=0.2)
    compared += check_resumed(proc, step)
    resumes += 1
    harness.wait_for(lambda: latest_step() > step, [proc], 120, 'a new checkpoint')
    time.sleep(rng.uniform(0, 1.0))  # Anywhere: in a step, a save, or a sweep.
    proc.kill()
    proc.wait()
  # 3. The last restart finishes the run from the newest complete checkpoint.
  step = latest_step()
  proc = harness.start(out, flags + [f'--train_steps={step + 1}'])
  compared += check_resumed(proc, step)
  assert compared >= 2
  assert harness.wait_all([proc], 120) == [0]
  assert latest_step() == step + 1
  assert [s for s, _ in _records(saved)][-1] == step + 1


@pytest.mark.slow
def test_a_disk_that_fills_during_a_checkpoint_keeps_the_previous_one(tmp_path):
  """Run 1 writes ckpt-1 and ckpt-2; run 2 resumes where no file may exceed
  half a checkpoint (RLIMIT_FSIZE, writes fail as on a full disk): it stops
  with one message and ckpt-2 stays the intact latest checkpoint."""
  model_dir = str(tmp_path / 'run')
  out = tmp_path / 'out'
  out.mkdir()
  flags = ['--dataset=shapes', '--image_size=16', '--resnet_depth=18', '--resnet_base_width=8',
           '--train_batch_size=8', '--checkpoint_steps=1', '--steps_per_loop=1',
           '--use_blur=False', '--mode=train', '--use_tpu=False', f'--model_dir={model_dir}']
  assert harness.wait_all([harness.start(out, flags + ['--train_steps=2'])], 120) == [0]
  data = os.path.join(model_dir, 'ckpt-2.data-00000-of-00001')
  before = {n: os.path.getsize(os.path.join(model_dir, n)) for n in os.listdir(model_dir)}
  proc = harness.start(out, flags + ['--train_steps=4'],
                       SIMCLR_TEST_FILE_SIZE_LIMIT=os.path.getsize(data) // 2)
  assert harness.wait_all([proc], 120) == [1]
  log = harness.output(proc)
  assert (f'error: Writing the checkpoint of step 3 to {model_dir} failed' in log
          and 'is the disk full' in log), log[-3000:]
  assert f'The last complete checkpoint, {model_dir}/ckpt-2, is intact' in log
  assert tf.train.latest_checkpoint(model_dir) == os.path.join(model_dir, 'ckpt-2')
  for name in ('ckpt-2.index', 'ckpt-2.data-00000-of-00001', 'ckpt-1.index'):
    assert os.path.getsize(os.path.join(model_dir, name)) == before[name]
  reader = tf.train.load_checkpoint(os.path.join(model_dir, 'ckpt-2'))
  assert reader.get_tensor('global_step/.ATTRIBUTES/VARIABLE_VALUE') == 2
  for key in reader.get_variable_to_shape_map():  # Every tensor reads back whole.
    reader.get_tensor(key)
