"""A full pretraining step: 8 replicas vs one device; XLA compilation; finetune step."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.config import Config
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer
from tf2.training.train_step import TrainStep
from tf2.training.train_step import unpack

CFG = Config(resnet_depth=18, resnet_base_width=16, image_size=16, train_batch_size=16,
             use_blur=False,
             learning_rate=0.5, weight_decay=1e-4, temperature=0.5, num_proj_layers=3,
             lineareval_while_pretraining=True, optimizer='lars').validate()


def make_batch(cfg, views, seed=0):
  rng = np.random.RandomState(seed)
  images = rng.rand(cfg.train_batch_size, cfg.image_size, cfg.image_size,
                    3 * views).astype(np.float32)
  labels = rng.randint(0, 10, cfg.train_batch_size).astype(np.int64)
  return images, labels


def one_step(cfg, strategy, initial_weights, batch):
  with strategy.scope():
    model = SimCLRModel(cfg, num_classes=10).build_for(views=batch[0].shape[-1] // 3)
    if initial_weights is not None:
      model.set_weights(initial_weights)
    optimizer = build_optimizer(cfg, cfg.learning_rate)
  step = TrainStep(cfg, model, optimizer, strategy)
  step.build_optimizer_state()
  ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat())
  metrics, steps, finite = unpack(step.make_loop()(iter(ds), tf.constant(1)))
  assert steps == 1 and finite
  return model, metrics


def randomized_initial_weights(cfg, seed=5):
  """Fresh weights with the zero-initialised BN gammas made random, so that
  every residual branch (and so every variable) gets a gradient at step 1."""
  fresh = SimCLRModel(cfg, num_classes=10).build_for()
  rng = np.random.RandomState(seed)
  return [rng.uniform(0.5, 1.5, w.shape).astype(w.dtype)
          if v.path.endswith('gamma') and not w.any() else w.copy()
          for v, w in zip(fresh.variables, fresh.get_weights())]


def assert_same_step(model_a, model_b, initial, weight_rtol, update_rtol):
  """Same weights (relative to each variable's scale) and same updates."""
  moved = 0
  for va, vb, w0 in zip(model_a.variables, model_b.variables, initial):
    a, b = va.numpy(), vb.numpy()
    assert np.abs(b - a).max() <= weight_rtol * np.abs(a).max(), va.path
    delta = np.abs(a - w0).max()
    moved += delta > 0
    assert np.abs((b - w0) - (a - w0)).max() <= update_rtol * delta, va.path
  assert moved == len(model_a.variables), [
      v.path for v, w0 in zip(model_a.variables, initial) if np.all(v.numpy() == w0)]


@pytest.mark.slow
def test_eight_replicas_equal_one_device(strategy8):
  """float64, so that the comparison sees the algorithm, not float32 noise:
  in float32 the first-step gradient of this random network is so
  cancellation-heavy that two algebraically identical BN formulas on one
  device differ by ~1% of the update."""
  cfg = CFG.replace(precision='float64')
  batch = make_batch(cfg, views=2)
  initial = randomized_initial_weights(cfg)
  single_model, single_metrics = one_step(cfg, tf.distribute.get_strategy(), initial, batch)
  dist_model, dist_metrics = one_step(cfg, strategy8, initial, batch)
  for name in single_metrics:
    assert dist_metrics[name] == pytest.approx(single_metrics[name], rel=1e-6, abs=1e-7), name
  # Every trainable variable and every BN moving statistic moved, to the
  # same value (the spec asks 1e-5 relative; float64 gives far better).
  assert_same_step(single_model, dist_model, initial, weight_rtol=1e-9, update_rtol=1e-7)


@pytest.mark.slow
def test_replica_step_compiles_with_xla():
  """TPUs compile every step with XLA: the replica step must compile."""
  batch = make_batch(CFG, views=2, seed=1)
  # float64: the compiled step computes the same update as the plain one.
  cfg = CFG.replace(jit_compile=True, precision='float64')
  initial = randomized_initial_weights(cfg)
  xla_model, _ = one_step(cfg, tf.distribute.get_strategy(), initial, batch)
  ref_model, _ = one_step(cfg.replace(jit_compile=False), tf.distribute.get_strategy(),
                          initial, batch)
  assert_same_step(ref_model, xla_model, initial, weight_rtol=1e-9, update_rtol=1e-6)
  # float32 with the fused BN kernel, and with the accelerator blur (random
  # ops): compiles, and the forward pass gives the same loss.
  cfg = CFG.replace(jit_compile=True)
  initial = randomized_initial_weights(cfg)
  _, xla_metrics = one_step(cfg, tf.distribute.get_strategy(), initial, batch)
  _, ref_metrics = one_step(cfg.replace(jit_compile=False), tf.distribute.get_strategy(),
                            initial, batch)
  assert xla_metrics['total_loss'] == pytest.approx(ref_metrics['total_loss'], rel=1e-5)
  _, blur_metrics = one_step(cfg.replace(use_blur=True), tf.distribute.get_strategy(),
                             initial, batch)
  assert np.isfinite(blur_metrics['total_loss'])


def test_finetune_step_trains_only_after_block():
  cfg = CFG.replace(train_mode='finetune', fine_tune_after_block=4, global_bn=False,
                    optimizer='momentum', weight_decay=0.0, learning_rate=0.1)
  batch = make_batch(cfg, views=1, seed=2)
  model, metrics = one_step(cfg, tf.distribute.get_strategy(), None, batch)
  trainable = {v.path for v in model.trainable_variables}
  assert trainable and all('head_' in p for p in trainable)
  assert set(metrics) == {'weight_decay', 'total_loss', 'supervised_loss', 'supervised_acc'}
  # The frozen encoder's BN statistics did not move (inference mode).
  for v in model.resnet_model.variables:
    if 'moving_mean' in v.path:
      np.testing.assert_array_equal(v.numpy(), 0)
