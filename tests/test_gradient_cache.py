"""Micro-batched steps (gradient caching) against the unchunked step and direct autodiff."""
import numpy as np
import pytest
import tensorflow as tf

from tf2.config import Config, ConfigError
from tf2.models.batch_norm import BatchNormalization
from tf2.models.model import SimCLRModel
from tf2.training import gradient_cache
from tf2.training import resume
from tf2.training import memory
from tf2.training import nt_xent
from tf2.training.optimizers import build_optimizer, weight_decay_loss
from tf2.training.objective import supervised_loss
from tf2.training.train_step import TrainStep, unpack
from test_memory import run_steps
from test_train_step import CFG, assert_same_step, make_batch, randomized_initial_weights

# Plain SGD: the update is -learning_rate * gradient, so updates compare gradients.
SGD = CFG.replace(optimizer='momentum', momentum=0.0, learning_rate=1.0, weight_decay=1e-3,
                  precision='float64')


def build(cfg, strategy, initial, freeze_bn=False, views=2, teacher=None):
  """(model, step) from `initial`; with --memory_size the momentum network starts there too."""
  def network():
    net = SimCLRModel(cfg, num_classes=10).build_for(views=views)
    net.set_weights(initial)
    if freeze_bn:
      for layer in net._flatten_layers():  # pylint: disable=protected-access
        if isinstance(layer, BatchNormalization):
          layer.trainable = False
    return net

  with strategy.scope():
    model = network()
    ema = network() if cfg.memory_size else None
    optimizer = build_optimizer(cfg, cfg.learning_rate)
  step = TrainStep(cfg, model, optimizer, strategy, teacher, ema_model=ema)
  step.build_optimizer_state()
  return model, step


def run_step(step, strategy, batch):
  ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat())
  metrics, steps, finite = unpack(step.make_loop()(iter(ds), tf.constant(1)))
  assert steps == 1 and finite
  return metrics


def stepped(cfg, initial, batch, strategy=None, **kwargs):
  strategy = strategy or tf.distribute.get_strategy()
  model, step = build(cfg, strategy, initial, views=batch[0].shape[-1] // 3, **kwargs)
  return model, run_step(step, strategy, batch)


def test_views_major_and_chunks_major_are_inverse_layouts(rng):
  # 3 chunks of 2 images: chunk c holds [first views of its images; second views].
  chunks, m, d = 3, 2, 4
  first, second = rng.rand(chunks * m, d), rng.rand(chunks * m, d)
  cache = np.stack([np.concatenate([first[c * m:(c + 1) * m], second[c * m:(c + 1) * m]])
                    for c in range(chunks)])
  whole = gradient_cache.views_major(tf.constant(cache)).numpy()
  np.testing.assert_array_equal(whole, np.concatenate([first, second]))
  np.testing.assert_array_equal(gradient_cache.chunks_major(tf.constant(whole), chunks), cache)


def test_a_microbatch_that_does_not_divide_the_replica_batch_is_refused():
  with pytest.raises(ConfigError, match='--microbatch_size=3 must be 0'):
    Config(train_batch_size=16, microbatch_size=3).validate()
  with pytest.raises(ValueError, match=r'over 8 replica\(s\) is 2 images each'):
    gradient_cache.check_microbatch_size(4, 16, 8)
  assert gradient_cache.check_microbatch_size(2, 16, 8) == 1


@pytest.mark.parametrize('precision', ['float32', 'mixed_bfloat16'])
def test_one_chunk_is_the_unchunked_step_exactly(precision):
  """--microbatch_size equal to the per-replica batch: the same update, bit for bit
  (LARS, linear eval while pretraining, no blur), in float32 and in bfloat16."""
  cfg = CFG.replace(precision=precision)
  batch = make_batch(cfg, views=2)
  initial = randomized_initial_weights(cfg)
  plain, plain_metrics = stepped(cfg, initial, batch)
  chunked, chunked_metrics = stepped(cfg.replace(microbatch_size=cfg.train_batch_size),
                                     initial, batch)
  for a, b in zip(plain.variables, chunked.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  assert chunked_metrics == plain_metrics


def memory_state(step):
  """Everything a step with the memory writes, as arrays."""
  return [v.numpy() for v in step.state_variables() + step.optimizer.variables]


def test_with_the_memory_one_chunk_is_the_unchunked_step_exactly():
  """Two steps, the second against the first's keys in the memory: the online and
  momentum networks, the optimizer, the queue and its ring index, bit for bit."""
  cfg = CFG.replace(memory_size=64, momentum_decay=0.9)
  batches = [make_batch(cfg, views=2, seed=s) for s in (1, 2)]
  initial = randomized_initial_weights(cfg)
  runs = []
  for microbatch_size in (0, cfg.train_batch_size):
    _, step = build(cfg.replace(microbatch_size=microbatch_size), tf.distribute.get_strategy(),
                    initial)
    metrics = run_steps(step, tf.distribute.get_strategy(), batches)
    runs.append((memory_state(step), metrics))
  (plain, plain_metrics), (chunked, chunked_metrics) = runs
  assert len(plain) == len(chunked)
  for a, b in zip(plain, chunked):
    np.testing.assert_array_equal(a, b)
  assert chunked_metrics == plain_metrics


def distill_teacher(initial_seed=9):
  teacher_cfg = SGD.replace(train_mode='finetune', lineareval_while_pretraining=False)
  teacher = SimCLRModel(teacher_cfg, num_classes=10).build_for(views=1)
  rng = np.random.RandomState(initial_seed)
  teacher.set_weights([w + rng.normal(0, 0.1, w.shape) * (w.ndim > 1)
                       for w in teacher.get_weights()])
  return teacher


@pytest.mark.parametrize('module,function,flags', [
    ('blur', 'batch_random_blur', {'use_blur': True}),
    ('color', 'batch_random_color_jitter', {'use_blur': False, 'color_jitter_on_device': True})])
def test_device_augmentations_are_drawn_once_per_step_for_both_passes(monkeypatch, module,
                                                                       function, flags):
  """Both passes must see the same images: the only blur (or device colour distortion) of
  the chunked step is the one before the chunks (one random draw per image and step), never
  one inside the model's passes."""
  from tf2 import data  # pylint: disable=g-import-not-at-top
  target = getattr(data, module)
  calls = []
  real = getattr(target, function)

  def counted(images, *args, **kwargs):
    calls.append(images.shape[0])
    return real(images, *args, **kwargs)

  monkeypatch.setattr(target, function, counted)
  cfg = CFG.replace(microbatch_size=4, **flags)
  _, metrics = stepped(cfg, randomized_initial_weights(cfg), make_batch(cfg, views=2))
  # Traced once: both views of all 16 images, in the step's preparation.
  assert calls == [2 * cfg.train_batch_size] and np.isfinite(metrics['total_loss'])


@pytest.mark.parametrize('train_mode', ['pretrain', 'finetune', 'distill'])
def test_with_bn_frozen_the_gradient_is_the_full_batch_gradient(train_mode):
  """Frozen BN makes the network per-example: 4 chunks of 4 images give the
  gradient of the loss of all 16 (float64, to 1e-6 relative)."""
  views = 2 if train_mode == 'pretrain' else 1
  cfg = SGD.replace(train_mode=train_mode, teacher_checkpoint='t' if train_mode == 'distill'
                    else None, distill_alpha=0.5).validate()
  teacher = distill_teacher() if train_mode == 'distill' else None
  batch = make_batch(cfg, views=views, seed=3)
  initial = randomized_initial_weights(cfg)
  plain, plain_metrics = stepped(cfg, initial, batch, freeze_bn=True, teacher=teacher)
  chunked, chunked_metrics = stepped(cfg.replace(microbatch_size=4), initial, batch,
                                     freeze_bn=True, teacher=teacher)
  moved = 0
  for a, b, w0 in zip(plain.variables, chunked.variables, initial):
    grad_full, grad_chunked = w0 - a.numpy(), w0 - b.numpy()
    scale = np.abs(grad_full).max()
    moved += scale > 0
    assert np.abs(grad_chunked - grad_full).max() <= 1e-6 * scale, a.path
  assert moved == len(plain.trainable_variables)
  assert chunked_metrics.keys() == plain_metrics.keys()
  for name in plain_metrics:
    assert chunked_metrics[name] == pytest.approx(plain_metrics[name], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize('memory_size', [0, 64])
def test_with_bn_per_chunk_the_gradient_and_moving_averages_are_exact(memory_size):
  """Training-mode BN over each micro-batch: the chunked step's gradient equals
  direct autodiff of the same network (one tape over every chunk) in float64,
  and each BN moving average advances once, by the mean of the chunks' statistics.
  With the memory, the keys are the momentum network's, chunk by chunk (at step 1 the
  online network's, without gradient); its moving averages advance the same way, and
  the queue then holds the normalised keys."""
  cfg = SGD.replace(microbatch_size=4, memory_size=memory_size, momentum_decay=0.9)
  chunks = cfg.train_batch_size // cfg.microbatch_size
  images, labels = make_batch(cfg, views=2, seed=4)
  initial = randomized_initial_weights(cfg)
  chunked, step = build(cfg, tf.distribute.get_strategy(), initial)
  metrics = run_step(step, tf.distribute.get_strategy(), (images, labels))

  reference = SimCLRModel(cfg, num_classes=10).build_for()
  reference.set_weights(initial)
  image_chunks = np.split(images, chunks)
  with tf.GradientTape() as tape:
    outputs = [reference(x, training=True) for x in image_chunks]
    hidden = [tf.split(o['proj_head_output'], 2) for o in outputs]
    hidden = tf.concat([h[0] for h in hidden] + [h[1] for h in hidden], 0)
    if memory_size:
      keys = memory.gather_keys(hidden, cfg.hidden_norm)  # Without gradient.
      dim = hidden.shape[1]
      contrast, _, _ = memory.memory_nt_xent_loss(
          hidden, keys, tf.zeros([memory_size, dim], tf.float64),
          tf.zeros([memory_size], tf.float64), temperature=cfg.temperature)
    else:
      contrast, _, _ = nt_xent.nt_xent_loss(hidden, temperature=cfg.temperature)
    sup = tf.add_n([supervised_loss(np.tile(y, 2), o['logits_sup'])
                    for o, y in zip(outputs, np.split(labels, chunks))]) / chunks
    wd = weight_decay_loss(reference.trainable_variables, cfg.optimizer, cfg.weight_decay)
    loss = contrast + sup + wd
  grads = tape.gradient(loss, reference.trainable_variables)
  assert metrics['total_loss'] == pytest.approx(float(loss), rel=1e-6)
  assert metrics['contrast_loss'] == pytest.approx(float(contrast), rel=1e-6)
  by_path = {v.path: v for v in chunked.trainable_variables}
  for v, g in zip(reference.trainable_variables, grads):
    w0 = initial[[u.path for u in reference.variables].index(v.path)]
    update = w0 - by_path[v.path].numpy()
    assert np.abs(update - g.numpy()).max() <= 1e-9 * np.abs(g.numpy()).max(), v.path

  # The stem's BN normalises the first convolution's outputs, chunk by chunk.
  conv = [reference(x, training=False, return_endpoints=True)['initial_conv'].numpy()
          for x in image_chunks]
  mean = np.mean([c.mean(axis=(0, 1, 2)) for c in conv], 0)
  variance = np.mean([c.var(axis=(0, 1, 2)) for c in conv], 0)
  decay = cfg.batch_norm_decay
  for network in [chunked] + ([step.ema_model] if memory_size else []):
    stem_bn = network.resnet_model.stem.bn
    np.testing.assert_allclose(stem_bn.moving_mean.numpy(), (1 - decay) * mean, rtol=1e-9)
    np.testing.assert_allclose(stem_bn.moving_variance.numpy(),
                               decay + (1 - decay) * variance, rtol=1e-9)
  if memory_size:
    n_keys = 2 * cfg.train_batch_size
    np.testing.assert_allclose(step.memory.queue.numpy()[:n_keys], keys.numpy(), rtol=1e-9,
                               atol=1e-15)
    assert int(step.memory.filled.numpy()) == int(step.memory.pointer.numpy()) == n_keys
    ema = {v.path: v.numpy() for v in step.ema_model.trainable_variables}
    for v, w0 in zip(chunked.variables, initial):
      if v.path in ema:
        np.testing.assert_allclose(ema[v.path], 0.9 * w0 + 0.1 * v.numpy(), rtol=1e-12,
                                   atol=1e-15)


@pytest.mark.slow
@pytest.mark.parametrize('memory_size', [0, 64])
def test_eight_replicas_equal_one_device(strategy8, memory_size):
  """8 replicas of 4 images in chunks of 2, global BN, against one device with
  chunks of 16: the one device's chunk c is the replicas' chunks c together
  (the batch reordered to match; NT-Xent, with the memory too, does not depend on
  the order). With the memory, the momentum network's keys are gathered from every
  replica's chunks. The small ConvNet (BN in every layer): the chunked step across
  replicas is what is tested, and any encoder takes it alike."""
  cfg = CFG.replace(precision='float64', train_batch_size=32, encoder='convnet',
                    image_size=16, memory_size=memory_size, momentum_decay=0.5)
  replicas, per_replica, m = 8, 4, 2
  images, labels = make_batch(cfg, views=2, seed=6)
  order = [r * per_replica + c * m + i for c in range(per_replica // m)
           for r in range(replicas) for i in range(m)]
  initial = randomized_initial_weights(cfg)
  single, single_metrics = stepped(cfg.replace(microbatch_size=replicas * m), initial,
                                   (images[order], labels[order]))
  dist, dist_metrics = stepped(cfg.replace(microbatch_size=m), initial, (images, labels),
                               strategy=strategy8)
  for name in single_metrics:
    assert dist_metrics[name] == pytest.approx(single_metrics[name], rel=1e-6, abs=1e-7), name
  assert_same_step(single, dist, initial, weight_rtol=1e-9, update_rtol=1e-7)


@pytest.mark.slow
def test_chunked_replica_functions_compile_with_xla():
  """TPUs compile every replica function: the compiled chunked step with the memory
  computes the plain chunked one's update (float64), and the step with blur and
  without the memory compiles and runs."""
  cfg = CFG.replace(precision='float64', microbatch_size=4, memory_size=64)
  batch = make_batch(cfg, views=2, seed=7)
  initial = randomized_initial_weights(cfg)
  ref, _ = stepped(cfg, initial, batch)
  xla, _ = stepped(cfg.replace(jit_compile=True), initial, batch)
  assert_same_step(ref, xla, initial, weight_rtol=1e-9, update_rtol=1e-6)
  _, blur_metrics = stepped(cfg.replace(jit_compile=True, use_blur=True, memory_size=0),
                            initial, batch)
  assert np.isfinite(blur_metrics['total_loss'])


def test_repeated_calls_run_with_grappler_on():
  """The suite turns grappler off to save compile time; users run with it on. Its
  arithmetic optimizer once turned the chunk loop's gradient sums (nested in the
  steps loop) into temporary variables that the second call found still alive."""
  options = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': False})
  try:
    cfg = Config(resnet_depth=18, image_size=32, train_batch_size=32, use_blur=False,
                 precision='float32', microbatch_size=16).validate()
    model, step = build(cfg, tf.distribute.get_strategy(),
                        SimCLRModel(cfg, num_classes=10).build_for().get_weights())
    images = np.random.RandomState(0).rand(32, 32, 32, 6).astype(np.float32)
    ds = tf.data.Dataset.from_tensors((images, np.zeros(32, np.int64))).repeat()
    iterator, loop = iter(ds), step.make_loop()
    losses = [unpack(loop(iterator, tf.constant(1)))[0]['total_loss'] for _ in range(2)]
    assert step.optimizer.iterations.numpy() == 2 and losses[1] != losses[0]
  finally:
    tf.config.optimizer.set_experimental_options(options)


def test_a_resumed_micro_batched_run_continues_bit_for_bit_from_todays_checkpoints(tmp_path):
  """Checkpoints hold today's variables only (the per-replica sums are not
  saved). A micro-batched run resumes, into a new model and optimizer, from a
  micro-batched or an unchunked run's checkpoint with the state saved, and from
  its own takes the next step bit for bit as the uninterrupted run does."""
  cfg = CFG.replace(microbatch_size=4)
  strategy = tf.distribute.get_strategy()
  first, second = make_batch(cfg, views=2, seed=1), make_batch(cfg, views=2, seed=2)
  initial = randomized_initial_weights(cfg)
  uninterrupted, step = build(cfg, strategy, initial)
  run_step(step, strategy, first)
  run_step(step, strategy, second)
  want = [v.numpy() for v in uninterrupted.variables + step.optimizer.variables]
  keys = {}
  for saved_by in (cfg, cfg.replace(microbatch_size=0)):
    model, step = build(saved_by, strategy, initial)
    run_step(step, strategy, first)
    saved = [v.numpy() for v in model.variables + step.optimizer.variables]
    model_dir = str(tmp_path / f'm{saved_by.microbatch_size}')
    resume.make_manager(model, step.optimizer, model_dir, 1).save(checkpoint_number=1)
    keys[saved_by.microbatch_size] = {name for name, _ in tf.train.list_variables(model_dir)}
    resumed, step = build(cfg, strategy, randomized_initial_weights(cfg, seed=11))
    manager = resume.make_manager(resumed, step.optimizer, model_dir, 1)
    assert resume.restore_or_initialize(cfg, resumed, step.optimizer, manager) == 1
    state = resumed.variables + step.optimizer.variables
    assert len(state) == len(saved) == len(want)
    for a, b in zip(saved, state):
      np.testing.assert_array_equal(a, b.numpy(), err_msg=b.path)
    run_step(step, strategy, second)
    if saved_by.microbatch_size:
      for a, b in zip(want, state):
        np.testing.assert_array_equal(a, b.numpy(), err_msg=b.path)
  assert keys[4] == keys[0]


@pytest.mark.parametrize('distribution', ['logsumexp', 'normal'])
def test_the_generalized_loss_in_micro_batches_equals_the_plain_step(distribution):
  """The generalized loss couples the whole batch as NT-Xent does, and its random draws
  depend on the step alone: with BN frozen (a per-example network) 4 chunks of 4 images
  give the plain step's update and metrics (float64)."""
  cfg = SGD.replace(contrastive_loss='generalized', gcl_distribution=distribution,
                    gcl_lambda=0.5, gcl_loss_scaling=2.0).validate()
  batch = make_batch(cfg, views=2, seed=4)
  initial = randomized_initial_weights(cfg)
  plain, plain_metrics = stepped(cfg, initial, batch, freeze_bn=True)
  chunked, chunked_metrics = stepped(cfg.replace(microbatch_size=4), initial, batch,
                                     freeze_bn=True)
  for a, b, w0 in zip(plain.variables, chunked.variables, initial):
    scale = np.abs(w0 - a.numpy()).max()
    assert np.abs((w0 - b.numpy()) - (w0 - a.numpy())).max() <= 1e-6 * scale, a.path
  assert {'align_loss', 'dist_loss'} <= set(plain_metrics) and plain_metrics['dist_loss'] != 0
  assert chunked_metrics.keys() == plain_metrics.keys()
  for name in plain_metrics:
    assert chunked_metrics[name] == pytest.approx(plain_metrics[name], rel=1e-9, abs=1e-12)
