"""The training loop: step plan, checkpoints, interruption and resume with optimizer state."""
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

from tf2.training import checkpointing
from tf2.training import loop as training
from tf2.config import Config
from tf2.data.datasets import array_source
from tf2.training.lr_schedule import schedule_from_config
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer

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
  training.TrainStep(config, model2, optimizer2, strategy).build_optimizer_state()
  manager = checkpointing.make_manager(model2, optimizer2, model_dir, 5)
  assert training.restore_or_initialize(config, model2, optimizer2, manager) == 1
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


def test_resuming_into_another_architecture_is_refused(source, tmp_path):
  model, optimizer, strategy = build(CONFIG.replace(train_steps=2))
  training.train(CONFIG.replace(train_steps=2), model, optimizer, strategy, source,
                 str(tmp_path))
  other = CONFIG.replace(resnet_base_width=16)
  model, optimizer, strategy = build(other)
  with pytest.raises(checkpointing.CheckpointMismatchError, match='new --model_dir'):
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
