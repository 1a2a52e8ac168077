"""The step's objective: its terms, metric names and, for the generalized contrastive
loss, the draws every replica shares."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_RUN, per_replica_slices
from tf2 import runner
from tf2.config import Config
from tf2.training import generalized_contrastive as gcl
from tf2.training import objective as objective_lib

CFG = Config(contrastive_loss='generalized', gcl_lambda=0.5, gcl_loss_scaling=2.0,
             temperature=0.3).validate()


def test_metric_names_of_the_generalized_loss_add_its_two_terms():
  names = objective_lib.metric_names(CFG)
  assert {'contrast_loss', 'contrast_acc', 'align_loss', 'dist_loss'} <= set(names)
  assert 'align_loss' not in objective_lib.metric_names(CFG.replace(contrastive_loss='nt_xent'))


@pytest.mark.parametrize('distribution', ['logsumexp', 'uniform'])
def test_the_objective_on_8_replicas_equals_one_device_and_draws_from_the_step(
    distribution, strategy8, rng):
  """The objective seeds the draws with the step counter (a mirrored variable, the same on
  every replica): 8 replicas' mean equals one device's loss on the global batch at the
  same step, and the loss is the function's with that step's seed."""
  cfg = CFG.replace(gcl_distribution=distribution, hidden_norm=distribution == 'logsumexp')
  replicas, n_global, d = strategy8.num_replicas_in_sync, 16, 8
  local = n_global // replicas
  first, second = rng.randn(n_global, d), rng.randn(n_global, d)
  single = objective_lib.Objective(cfg, step=tf.Variable(41, dtype=tf.int64))
  want, metrics = single.contrastive_loss(tf.constant(np.concatenate([first, second])))
  seed = tf.constant([41, objective_lib.GCL_SEED], tf.int64)
  direct, _, _ = gcl.generalized_contrastive_loss(
      tf.constant(first), tf.constant(second), lambda_weight=0.5, temperature=0.3,
      distribution=distribution, hidden_norm=cfg.hidden_norm, loss_scaling=2.0, seed=seed)
  assert want.numpy() == pytest.approx(direct.numpy(), rel=1e-12)
  assert metrics['align_loss'].numpy() > 0 and 0 <= metrics['contrast_acc'].numpy() <= 1
  with strategy8.scope():
    step = tf.Variable(41, dtype=tf.int64)
  shared = objective_lib.Objective(cfg, step=step)
  views = np.concatenate([np.concatenate([first[r * local:(r + 1) * local],
                                          second[r * local:(r + 1) * local]])
                          for r in range(replicas)])

  @tf.function
  def run(x):
    return strategy8.run(lambda v: shared.contrastive_loss(v)[0], (x,))

  losses = [t.numpy() for t in strategy8.experimental_local_results(
      run(per_replica_slices(strategy8, views)))]
  assert np.mean(losses) == pytest.approx(want.numpy(), rel=1e-9)
  step.assign(42)  # Another step, other draws.
  if distribution != 'logsumexp':
    again = [t.numpy() for t in strategy8.experimental_local_results(
        run(per_replica_slices(strategy8, views)))]
    assert np.mean(again) != pytest.approx(want.numpy(), rel=1e-6)


@pytest.mark.parametrize('distribution, hidden_norm', [('normal', True), ('uniform', False)])
def test_run_pretrains_with_the_generalized_loss_and_logs_both_terms(distribution, hidden_norm,
                                                                     tmp_path):
  from tf2 import plot  # pylint: disable=g-import-not-at-top
  config = Config(**dict(TINY_RUN, train_steps=3), contrastive_loss='generalized',
                  gcl_distribution=distribution, hidden_norm=hidden_norm, mode='train',
                  checkpoint_steps=3, train_summary_steps=1, log_every_secs=0,
                  model_dir=str(tmp_path))
  runner.run(config)
  scalars = plot.read_scalars(str(tmp_path))
  for name in ('align_loss', 'dist_loss', 'contrast_loss', 'total_loss'):
    values = [v for _, v in scalars[f'train/{name}']]
    assert len(values) == 3 and np.all(np.isfinite(values)), name
  # The default lambda and loss scaling are 1: the loss is the sum of its terms.
  total = [v for _, v in scalars['train/contrast_loss']]
  assert total == pytest.approx([a + b for (_, a), (_, b) in zip(
      scalars['train/align_loss'], scalars['train/dist_loss'])], rel=1e-5)
