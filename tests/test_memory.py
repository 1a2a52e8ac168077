"""The memory of negatives and the momentum encoder (--memory_size): loss, ring, EMA, steps."""
import os
import signal

import numpy as np
import pytest
import tensorflow as tf

import harness
from tf2 import runner
from tf2.config import Config, ConfigError
from tf2.data.datasets import array_source
from tf2.models.model import SimCLRModel
from tf2.training import resume
from tf2.training import loop as training
from tf2.training import memory
from tf2.training import nt_xent
from tf2.training.optimizers import build_optimizer
from tf2.training.train_step import TrainStep, unpack
from test_train_step import CFG, make_batch, randomized_initial_weights

MEMORY = CFG.replace(memory_size=64, momentum_decay=0.9)
SGD = MEMORY.replace(optimizer='momentum', momentum=0.0, learning_rate=0.5, precision='float64')


def numpy_loss(queries, keys, queue, filled, temperature):
  """The module docstring's equation, one example at a time (one replica)."""
  def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)
  q, k = unit(queries), keys
  n = q.shape[0] // 2
  total = 0.0
  for view, other in ((0, 1), (1, 0)):
    for i in range(n):
      qi = q[view * n + i]
      positive = np.exp(qi @ k[other * n + i] / temperature)
      denominator = sum(np.exp(qi @ k[other * n + j] / temperature) for j in range(n))
      denominator += sum(np.exp(qi @ k[view * n + j] / temperature) for j in range(n) if j != i)
      denominator += sum(np.exp(qi @ queue[s] / temperature) for s in range(filled))
      total += -np.log(positive / denominator)
  return total / n


def test_loss_matches_the_equation_with_queue_negatives_and_masked_empty_slots(rng):
  n, d, size, filled = 4, 5, 10, 6
  queries = rng.randn(2 * n, d)
  keys = rng.randn(2 * n, d)
  keys /= np.linalg.norm(keys, axis=1, keepdims=True)
  queue = rng.randn(size, d)
  queue[:filled] /= np.linalg.norm(queue[:filled], axis=1, keepdims=True)
  queue[filled:] = 50.0  # Empty slots hold garbage: it must never count.
  valid = (np.arange(size) < filled).astype(np.float64)
  loss, logits_ab, labels = memory.memory_nt_xent_loss(
      tf.constant(queries), tf.constant(keys), tf.constant(queue), tf.constant(valid),
      temperature=0.5)
  assert float(loss) == pytest.approx(numpy_loss(queries, keys, queue, filled, 0.5), rel=1e-10)
  assert logits_ab.shape == (n, n) and labels.shape == (n, 2 * n)


def test_with_keys_equal_to_the_queries_and_no_memory_the_loss_is_nt_xent(rng):
  hidden = tf.constant(rng.randn(12, 7))
  want, want_logits, want_labels = nt_xent.nt_xent_loss(hidden, temperature=0.2)
  got, logits, labels = memory.memory_nt_xent_loss(
      hidden, memory.gather_keys(hidden, True), tf.constant(rng.randn(16, 7)),
      tf.zeros([16], tf.float64), temperature=0.2)
  assert float(got) == pytest.approx(float(want), rel=1e-12)
  np.testing.assert_allclose(logits.numpy(), want_logits.numpy(), rtol=1e-12)
  np.testing.assert_array_equal(labels.numpy(), want_labels.numpy())


def test_the_ring_buffer_overwrites_the_oldest_keys_across_wrap_around():
  ring = memory.NegativeMemory(6, 2)
  expected = np.zeros([6, 2], np.float32)
  slots = []
  for block in range(4):
    keys = np.arange(8, dtype=np.float32).reshape(4, 2) + 100 * block
    ring.enqueue(tf.constant(keys))
    for row in keys:
      slot = len(slots) % 6
      expected[slot] = row
      slots.append(slot)
    np.testing.assert_array_equal(ring.queue.numpy(), expected)
    assert int(ring.pointer.numpy()) == len(slots) % 6
    assert int(ring.filled.numpy()) == min(len(slots), 6)
    np.testing.assert_array_equal(ring.valid().numpy(), np.arange(6) < min(len(slots), 6))
  assert slots[:8] == [0, 1, 2, 3, 4, 5, 0, 1]


def test_momentum_update_is_the_ema_formula(rng):
  ema, online = tf.Variable(rng.randn(3, 2)), tf.Variable(rng.randn(3, 2))
  before = ema.numpy()
  memory.momentum_update([ema], [online], 0.999)
  np.testing.assert_allclose(ema.numpy(), 0.999 * before + 0.001 * online.numpy(), rtol=1e-14)


def build(cfg, strategy, initial):
  """(model, momentum model, step), both networks starting from `initial`, as a run does."""
  with strategy.scope():
    model = SimCLRModel(cfg, num_classes=10).build_for()
    ema = SimCLRModel(cfg, num_classes=10).build_for()
    model.set_weights(initial)
    ema.set_weights(initial)
    optimizer = build_optimizer(cfg, cfg.learning_rate)
  step = TrainStep(cfg, model, optimizer, strategy, ema_model=ema)
  step.build_optimizer_state()
  return model, ema, step


def run_steps(step, strategy, batches):
  """Runs one step per global batch in one loop call (each split over the
  replicas in order); the mean metrics."""
  ds = tf.data.Dataset.from_tensor_slices(tuple(np.stack(x) for x in zip(*batches)))
  metrics, steps, finite = unpack(step.make_loop()(
      iter(strategy.experimental_distribute_dataset(ds)), tf.constant(len(batches))))
  assert steps == len(batches) and finite
  return metrics


def projections(cfg, weights, images):
  """proj_head_output of a fresh network with `weights`, in training mode."""
  net = SimCLRModel(cfg, num_classes=10).build_for()
  net.set_weights(weights)
  return net(images, training=True)['proj_head_output'].numpy()


def test_steps_use_the_keys_of_the_momentum_network_and_the_memory_of_past_steps():
  """Step 1 (momentum network = online, empty memory) has NT-Xent's loss; then the
  momentum weights follow the EMA formula while its BN statistics are its own;
  step 2's loss is the equation's, with step 1's keys in the memory."""
  cfg = SGD
  strategy = tf.distribute.get_strategy()
  (x1, y1), (x2, y2) = make_batch(cfg, views=2, seed=1), make_batch(cfg, views=2, seed=2)
  initial = randomized_initial_weights(cfg)
  model, ema, step = build(cfg, strategy, initial)
  plain = TrainStep(cfg.replace(memory_size=0), SimCLRModel(cfg, 10).build_for(),
                    build_optimizer(cfg, cfg.learning_rate), strategy)
  plain.model.set_weights(initial)
  plain.build_optimizer_state()
  want = unpack(plain.make_loop()(iter(tf.data.Dataset.from_tensors((x1, y1)).repeat()),
                                  tf.constant(1)))[0]
  got = run_steps(step, strategy, [(x1, y1)])
  assert got['contrast_loss'] == pytest.approx(want['contrast_loss'], rel=1e-9)

  decay = cfg.momentum_decay
  trainable = {v.path for v in model.trainable_variables}
  for v, e, p, w0 in zip(model.variables, ema.variables, plain.model.variables, initial):
    if v.path in trainable:
      np.testing.assert_allclose(e.numpy(), decay * w0 + (1 - decay) * v.numpy(), rtol=1e-12,
                                 atol=1e-15, err_msg=v.path)
    else:  # BN moving statistics: advanced by the momentum network's own pass at w0.
      np.testing.assert_allclose(e.numpy(), p.numpy(), rtol=1e-12, err_msg=v.path)
      assert np.abs(e.numpy() - w0).max() > 0, v.path
  keys1 = projections(cfg, initial, x1)
  keys1 /= np.linalg.norm(keys1, axis=1, keepdims=True)
  np.testing.assert_allclose(step.memory.queue.numpy()[:2 * cfg.train_batch_size], keys1,
                             rtol=1e-9, atol=1e-12)
  assert int(step.memory.filled.numpy()) == 2 * cfg.train_batch_size
  # The memory holds K x proj_out_dim values (and its two counters), nothing more.
  assert sum(v.shape.num_elements() for v in step.memory.variables) == (
      cfg.memory_size * cfg.proj_out_dim + 2)

  online_weights, ema_weights = model.get_weights(), ema.get_weights()
  got = run_steps(step, strategy, [(x2, y2)])
  keys2 = projections(cfg, ema_weights, x2)
  keys2 /= np.linalg.norm(keys2, axis=1, keepdims=True)
  queue = np.zeros([cfg.memory_size, keys1.shape[1]])
  queue[:len(keys1)] = keys1
  expected = numpy_loss(projections(cfg, online_weights, x2), keys2, queue, len(keys1),
                        cfg.temperature)
  assert got['contrast_loss'] == pytest.approx(expected, rel=1e-7)  # Metrics are float32.
  assert int(step.memory.filled.numpy()) == 4 * cfg.train_batch_size


def test_a_resumed_run_continues_bit_for_bit_with_the_memory_and_momentum_weights(tmp_path):
  """The checkpoint holds the momentum network, the queue and its ring index; a
  run restored from it into new objects takes the next step exactly as the
  uninterrupted run."""
  cfg = MEMORY.replace(memory_size=48)  # 32 keys a step: the second step wraps around.
  strategy = tf.distribute.get_strategy()
  first, second = make_batch(cfg, views=2, seed=1), make_batch(cfg, views=2, seed=2)
  initial = randomized_initial_weights(cfg)

  def state(model, ema, step):
    return [v.numpy() for v in model.variables + ema.variables + step.optimizer.variables
            + list(step.memory.variables)]

  model, ema, step = build(cfg, strategy, initial)
  run_steps(step, strategy, [first, second])
  want = state(model, ema, step)
  model, ema, step = build(cfg, strategy, initial)
  run_steps(step, strategy, [first])
  resume.make_manager(model, step.optimizer, str(tmp_path), 1,
                             **step.checkpointed()).save(checkpoint_number=1)
  names = [name for name, _ in tf.train.list_variables(str(tmp_path))]
  assert any(n.startswith('ema_model/') for n in names)
  assert {'memory/queue/.ATTRIBUTES/VARIABLE_VALUE', 'memory/pointer/.ATTRIBUTES/VARIABLE_VALUE',
          'memory/filled/.ATTRIBUTES/VARIABLE_VALUE'} <= set(names)
  model, ema, step = build(cfg, strategy, randomized_initial_weights(cfg, seed=11))
  manager = resume.make_manager(model, step.optimizer, str(tmp_path), 1,
                                       **step.checkpointed())
  assert resume.restore_or_initialize(cfg, model, step.optimizer, manager) == 1
  run_steps(step, strategy, [second])
  got = state(model, ema, step)
  assert len(got) == len(want)
  for a, b in zip(want, got):
    np.testing.assert_array_equal(a, b)
  assert int(step.memory.pointer.numpy()) == (4 * cfg.train_batch_size) % cfg.memory_size


@pytest.mark.slow
def test_eight_replicas_equal_one_device(strategy8):
  """Two steps on 8 replicas (global BN, keys gathered from every replica) against
  one device on the global batch: online and momentum weights and the queue. The small
  ConvNet: the step across replicas is what is tested, and any encoder takes it alike."""
  cfg = SGD.replace(train_batch_size=32, encoder='convnet', image_size=16, memory_size=128)
  batches = [make_batch(cfg, views=2, seed=s) for s in (6, 7)]
  initial = randomized_initial_weights(cfg)
  one = build(cfg, tf.distribute.get_strategy(), initial)
  one_metrics = run_steps(one[2], tf.distribute.get_strategy(), batches)
  eight = build(cfg, strategy8, initial)
  eight_metrics = run_steps(eight[2], strategy8, batches)
  # The loop's metrics are float32 (8 replica means averaged there): one float32 ulp apart.
  assert eight_metrics['contrast_loss'] == pytest.approx(one_metrics['contrast_loss'], rel=1e-6)
  for a, b in zip(one[0].variables + one[1].variables, eight[0].variables + eight[1].variables):
    np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-9, atol=1e-12, err_msg=a.path)
  np.testing.assert_allclose(eight[2].memory.queue.numpy(), one[2].memory.queue.numpy(),
                             rtol=1e-9, atol=1e-12)
  assert int(eight[2].memory.pointer.numpy()) == int(one[2].memory.pointer.numpy()) == 0


@pytest.mark.slow
def test_the_memory_step_compiles_with_xla():
  """TPUs compile the replica step: compiled, two steps (the second reads the
  memory) give the plain step's weights, momentum weights and queue (float64)."""
  batches = [make_batch(SGD, views=2, seed=s) for s in (3, 4)]
  initial = randomized_initial_weights(SGD)
  runs = []
  for cfg in (SGD, SGD.replace(jit_compile=True)):
    model, ema, step = build(cfg, tf.distribute.get_strategy(), initial)
    run_steps(step, tf.distribute.get_strategy(), batches)
    runs.append([v.numpy() for v in model.variables + ema.variables]
                + [step.memory.queue.numpy()])
  for a, b in zip(*runs):
    np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('flags, message', [
    (dict(memory_size=16, train_batch_size=16), 'smaller than one step of keys'),
    (dict(memory_size=64, train_mode='finetune'), 'is for pretraining'),
    (dict(memory_size=64, momentum_decay=1.5), r'--momentum_decay must be in \[0, 1\]'),
    (dict(evaluate_ema=True), 'needs the momentum network'),
])
def test_settings_that_cannot_work_are_refused(flags, message):
  with pytest.raises(ConfigError, match=message):
    Config(**dict(dict(train_batch_size=16), **flags)).validate()


@pytest.mark.slow
def test_a_run_killed_and_resumed_ends_as_the_uninterrupted_run(tmp_path):
  """run.py with the memory, through the kill/resume harness (fixed data, the
  same seed): killed inside its 3rd checkpoint write and restarted, the run
  resumes from ckpt-2 and its last checkpoint (weights, optimizer, momentum
  network, queue, ring index) is bit for bit the uninterrupted run's."""
  flags = ['--dataset=shapes', f'--image_size={harness.IMAGE_SIZE}', '--resnet_depth=18',
           '--resnet_base_width=8', '--train_batch_size=8', '--use_blur=False', '--mode=train',
           '--use_tpu=False', '--checkpoint_steps=1', '--steps_per_loop=1', '--train_steps=5',
           '--memory_size=24', '--momentum_decay=0.5']
  dirs = {name: (tmp_path / name, str(tmp_path / name / 'run')) for name in ('whole', 'killed')}
  for out, _ in dirs.values():
    out.mkdir()
  out, model_dir = dirs['whole']
  assert harness.wait_all([harness.start(out, flags + [f'--model_dir={model_dir}'],
                                         SIMCLR_TEST_SEED=1)], 180) == [0]
  out, model_dir = dirs['killed']
  proc = harness.start(out, flags + [f'--model_dir={model_dir}'], SIMCLR_TEST_SEED=1,
                       SIMCLR_TEST_KILL_AT_SAVE=3)
  assert harness.wait_all([proc], 180) == [-signal.SIGKILL]
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-2')
  proc = harness.start(out, flags + [f'--model_dir={model_dir}'], SIMCLR_TEST_SEED=1)
  assert harness.wait_all([proc], 180) == [0]
  assert f'Resuming from {model_dir}/ckpt-2' in harness.output(proc)
  readers = [tf.train.load_checkpoint(os.path.join(d, 'ckpt-5')) for _, d in dirs.values()]
  shapes = readers[0].get_variable_to_shape_map()
  assert shapes == readers[1].get_variable_to_shape_map()
  assert any(k.startswith('memory/queue') for k in shapes)
  assert any(k.startswith('ema_model/') for k in shapes)
  for key in shapes:
    if not key.startswith(('save_counter', '_CHECKPOINTABLE_OBJECT_GRAPH')):
      np.testing.assert_array_equal(readers[0].get_tensor(key), readers[1].get_tensor(key),
                                    err_msg=key)


def test_a_new_run_starts_the_momentum_network_as_the_online_one_even_past_step_0(tmp_path,
                                                                                  rng):
  """With --momentum_decay=1 the momentum weights never move, so after training
  they are the online weights the run started from: random ones for a new run,
  and those of --checkpoint for a run initialised from one, whose global step
  (restored with the schema '.*') puts the run's start past step 0."""
  source = array_source('arrays', {'train': (rng.randint(0, 256, [32, 16, 16, 3]).astype(
      np.uint8), rng.randint(0, 3, 32))}, 3)
  cfg = Config(resnet_depth=18, image_size=16, resnet_base_width=8, train_batch_size=8,
               train_steps=2, checkpoint_steps=2, use_blur=False, warmup_epochs=0,
               memory_size=32, momentum_decay=1.0).validate()
  strategy = tf.distribute.get_strategy()
  ends = []
  for run_cfg in (cfg, cfg.replace(train_steps=4, checkpoint=str(tmp_path / 'a'),
                                   variable_schema='.*')):
    model, optimizer = runner.build_model(run_cfg, strategy, 3, 32)
    ema = runner.build_ema_model(run_cfg, strategy, 3)
    start = {v.path: v.numpy() for v in model.trainable_variables}
    model_dir = str(tmp_path / ('a' if not run_cfg.checkpoint else 'b'))
    training.train(run_cfg, model, optimizer, strategy, source, model_dir, ema_model=ema)
    if run_cfg.checkpoint:
      assert int(optimizer.iterations.numpy()) == 4  # Started at the checkpoint's step 2.
      start = ends[0]
    for v in ema.variables:
      if v.path in start:
        np.testing.assert_array_equal(v.numpy(), start[v.path], err_msg=v.path)
    assert any(not np.array_equal(v.numpy(), start[v.path]) for v in model.trainable_variables)
    ends.append({v.path: v.numpy() for v in model.trainable_variables})
