"""`python -m tf2.selfcheck`: does this machine run the project correctly, and how fast?

The tests run on CPUs; GPUs, TPUs and XLA on them are checked here, by the
user, on the machine at hand (docs/distributed.md#running-on-new-hardware).
It prints a table (and writes it as JSON with `--json`) and exits 1 if any
check fails:
- setup: the devices, the strategy `run.py` would use, what
  `--precision=auto` picks and why;
- replicas: one training step on every replica equals one step on one
  device over the whole batch (global BatchNorm, NT-Xent's negatives across
  replicas). A lone CPU is split into logical devices for it; with one GPU
  it is n/a (split, the GPU's memory would be shared, and the speed figures
  need all of it). TensorFloat-32 is off for these checks;
- xla: the step compiled with XLA (`--jit_compile`) equals the uncompiled one;
- precision: each mixed precision the hardware runs natively gives a finite
  step close to float32's on the same device (bounds as in
  tests/test_loss_scale.py);
- export: an exported SavedModel reloads and gives the same features;
- speed: seconds per step and images/s of a small and a standard model in
  each precision, and the input pipeline's images/s at the standard model's
  image size against what its step consumes, with what to do when the input
  is the bottleneck.

Model sizes per device kind are in MODELS; `--quick` uses the smallest
everywhere (what the tests run).
"""
import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

# Bounds on the relative difference of two steps: of the kernels' whole update (a step on a
# random network cancels heavily, so single values would differ far more), and of the loss.
UPDATE_TOLERANCE = {'float32': 0.01, 'mixed_float16': 0.02, 'mixed_bfloat16': 0.1}
LOSS_TOLERANCE = {'float32': 1e-4, 'mixed_float16': 2e-2, 'mixed_bfloat16': 5e-2}

# (small, standard) model per device kind: Config fields and the global batch.
MODELS = {
    'quick': [dict(resnet_depth=18, resnet_base_width=8, image_size=16, batch=16)],
    'cpu': [dict(resnet_depth=18, resnet_base_width=16, image_size=32, batch=64),
            dict(resnet_depth=18, resnet_base_width=64, image_size=32, batch=32)],
    'gpu': [dict(resnet_depth=18, resnet_base_width=64, image_size=32, batch=256),
            dict(resnet_depth=50, resnet_base_width=64, image_size=224, batch=64)],
    'tpu': [dict(resnet_depth=18, resnet_base_width=64, image_size=32, batch=1024),
            dict(resnet_depth=50, resnet_base_width=64, image_size=224, batch=512)],
}
PASS, FAIL, NA = 'pass', 'FAIL', 'n/a'


@dataclasses.dataclass
class Check:
  name: str
  status: str
  detail: str
  figures: dict = dataclasses.field(default_factory=dict)


def split_devices(replicas):
  """Splits a lone CPU into `replicas` logical devices before TensorFlow uses it; returns
  why the replica check cannot run (or None). A lone GPU is not split: its logical
  devices would share its memory, and the speed figures need all of it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    return None if len(gpus) > 1 else 'one GPU'
  cpus = tf.config.list_physical_devices('CPU')
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
  except (RuntimeError, ValueError) as e:  # TensorFlow already runs: split before, or not.
    if len(tf.config.list_logical_devices('CPU')) > 1:
      return None
    return f'cannot split the CPU ({e})'
  return None


def base_config(fields, precision='float32', **extra):
  """The README's CIFAR-10 pretraining recipe (LARS, two views, global BN), on `fields`."""
  from tf2.config import Config  # pylint: disable=g-import-not-at-top
  fields = dict(fields)
  batch = fields.pop('batch')
  return Config(train_batch_size=batch, use_blur=False, use_tpu=False, optimizer='lars',
                learning_rate=0.5, weight_decay=1e-4, temperature=0.5, global_bn=True,
                lineareval_while_pretraining=True, precision=precision,
                **fields, **extra).validate()


def batch_of(config, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(seed)
  size, n = config.image_size, config.train_batch_size
  return (rng.rand(n, size, size, 6).astype(np.float32),
          rng.randint(0, 10, n).astype(np.int64))


def initial_weights(config):
  """Fresh weights with the zero-initialised BN gammas made random: every variable moves."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tf2.models.model import SimCLRModel  # pylint: disable=g-import-not-at-top
  model = SimCLRModel(config, 10).build_for()
  rng = np.random.RandomState(5)
  return [rng.uniform(0.5, 1.5, w.shape).astype(w.dtype)
          if v.path.endswith('gamma') and not w.any() else w
          for v, w in zip(model.variables, model.get_weights())]


def trainer(config, strategy, data, weights=None):
  """(model, optimizer, the multi-step loop, its iterator over `data` repeated)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2.models.model import SimCLRModel  # pylint: disable=g-import-not-at-top
  from tf2.training.optimizers import build_optimizer  # pylint: disable=g-import-not-at-top
  from tf2.training.train_step import TrainStep  # pylint: disable=g-import-not-at-top
  with strategy.scope():
    model = SimCLRModel(config, 10).build_for()
    if weights is not None:
      model.set_weights(weights)
    optimizer = build_optimizer(config, config.learning_rate)
  step = TrainStep(config, model, optimizer, strategy)
  step.build_optimizer_state()
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(data).repeat())
  return model, optimizer, step.make_loop(), iter(dataset)


def one_step(config, strategy, weights, data, scale=None):
  """([(path, weight)] after one step, its LoopResult) from `weights` on `data`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2.training.train_step import unpack  # pylint: disable=g-import-not-at-top
  model, optimizer, loop, iterator = trainer(config, strategy, data, weights)
  if scale is not None:
    optimizer.dynamic_scale.assign(scale)
  result = unpack(loop(iterator, tf.constant(1)))
  return list(zip([v.path for v in model.variables], model.get_weights())), result


def compare(reference, other, initial, precision):
  """(passed, detail, figures): two steps' kernel updates (BN's parameters follow from
  them; their own gradients cancel too much to compare) and losses against the bounds."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  (weights_a, result_a), (weights_b, result_b) = reference, other
  moved = [(a - w0, b - w0) for (path, a), (_, b), w0 in zip(weights_a, weights_b, initial)
           if path.endswith('kernel') and np.any(a != w0)]
  error = float(np.linalg.norm(np.concatenate([(b - a).ravel() for a, b in moved]))
                / max(np.linalg.norm(np.concatenate([a.ravel() for a, _ in moved])), 1e-30))
  loss_a, loss_b = result_a[0]['contrast_loss'], result_b[0]['contrast_loss']
  loss_error = abs(loss_b - loss_a) / max(abs(loss_a), 1e-30)
  finite = bool(np.isfinite(loss_b) and all(np.all(np.isfinite(w)) for _, w in weights_b))
  passed = (finite and result_b[1] == 1 and result_b.skipped == 0
            and error <= UPDATE_TOLERANCE[precision] and loss_error <= LOSS_TOLERANCE[precision])
  detail = (f'kernel update differs by {error:.2g} (bound {UPDATE_TOLERANCE[precision]:g}), '
            f'contrastive loss by {loss_error:.2g} (bound {LOSS_TOLERANCE[precision]:g})'
            + ('' if finite else ', NOT FINITE') + (', step skipped' if result_b.skipped else ''))
  return passed, detail, {'update_error': error, 'loss_error': loss_error, 'finite': finite}


def replica_check(strategy, fields, why_not):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  replicas = strategy.num_replicas_in_sync
  if replicas < 2:
    return Check('replicas', NA, f'one device ({why_not or "no other to compare"})')
  config = base_config(dict(fields, batch=2 * replicas * max(1, fields['batch'] // (2 * replicas))))
  data, initial = batch_of(config), initial_weights(config)
  one = one_step(config, tf.distribute.get_strategy(), initial, data)
  many = one_step(config, strategy, initial, data)
  passed, detail, figures = compare(one, many, initial, 'float32')
  return Check('replicas', PASS if passed else FAIL,
               f'{replicas} replicas against one device, float32: {detail}', figures)


def xla_check(strategy, fields):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if 'TPU' in type(strategy).__name__:
    return Check('xla', NA, 'TPUs always compile with XLA: the replica check ran compiled')
  config = base_config(fields)
  data, initial = batch_of(config), initial_weights(config)
  device = tf.distribute.get_strategy()
  plain = one_step(config, device, initial, data)
  compiled = one_step(config.replace(jit_compile=True), device, initial, data)
  passed, detail, figures = compare(plain, compiled, initial, 'float32')
  return Check('xla', PASS if passed else FAIL, f'one device, float32: {detail}', figures)


def precision_check(precision, fields, device):
  config = base_config(fields)
  data, initial = batch_of(config), initial_weights(config)
  reference = one_step(config, device, initial, data)
  # A scale the small model's float16 gradients hold (the run's starts at 2^15 and adapts).
  scale = 2.0 ** 12 if precision == 'mixed_float16' else None
  other = one_step(config.replace(precision=precision), device, initial, data, scale)
  passed, detail, figures = compare(reference, other, initial, precision)
  return Check(f'precision {precision}', PASS if passed else FAIL,
               f'against float32: {detail}', figures)


def export_check(fields):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2 import export  # pylint: disable=g-import-not-at-top
  from tf2.models.model import SimCLRModel  # pylint: disable=g-import-not-at-top
  config = base_config(fields)
  model = SimCLRModel(config, 10).build_for()
  model.set_weights(initial_weights(config))
  images = tf.constant(batch_of(config)[0][..., :3])
  expected = model(images, training=False, return_endpoints=True)['final_avg_pool'].numpy()
  with tempfile.TemporaryDirectory() as directory:
    path = export.export_saved_model(model, directory, 1)
    loaded = tf.saved_model.load(path)
    got = loaded(images, False)['final_avg_pool'].numpy()
  error = float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-30))
  passed = error <= 1e-5
  return Check('export', PASS if passed else FAIL,
               f'reloaded features differ by {error:.2g} of their scale (bound 1e-5)',
               {'error': error})


def seconds_per_step(config, strategy, steps):
  """Steady seconds per step of `config` under `strategy` (the first call traces)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2.training.train_step import SKIPPED  # pylint: disable=g-import-not-at-top
  size, n = config.image_size, config.train_batch_size
  _, _, loop, iterator = trainer(config, strategy, (tf.random.uniform([n, size, size, 6]),
                                                    tf.zeros([n], tf.int64)))
  float(loop(iterator, tf.constant(1))['total_loss'])
  for _ in range(3):  # Until no step was skipped: a skipped float16 step costs less.
    start = time.perf_counter()
    skipped = int(loop(iterator, tf.constant(steps))[SKIPPED])  # Waits for the steps.
    seconds = (time.perf_counter() - start) / steps
    if not skipped:
      break
  return seconds


def input_images_per_second(config, strategy, dataset, data_dir, batches):
  """Training images/s of the input pipeline (two augmented views each) on `dataset`."""
  from tf2 import runner  # pylint: disable=g-import-not-at-top
  from tf2.data import input_pipeline  # pylint: disable=g-import-not-at-top
  config = config.replace(dataset=dataset, data_dir=data_dir, train_split='train')
  source = runner.load_source(config.replace(train_mode='pretrain', eval_split='train'))
  iterator = iter(input_pipeline.distributed_dataset(strategy, source, config,
                                                     is_training=True))
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * config.train_batch_size / (time.perf_counter() - start)


def speed_checks(strategy, models, precisions, steps, dataset, data_dir):
  checks = []
  for label, fields in zip(('small', 'standard'), models):
    fastest = None  # The last model's fastest precision: what the input must keep up with.
    for precision in precisions:
      config = base_config(fields, precision)
      seconds = seconds_per_step(config, strategy, steps)
      rate = config.train_batch_size / seconds
      if fastest is None or rate > fastest[1]:
        fastest = (config, rate)
      checks.append(Check(
          f'speed {label} {precision}', PASS,
          f'{seconds:.3g} s/step, {rate:.1f} images/s (ResNet-{fields["resnet_depth"]}, width '
          f'{fields["resnet_base_width"]}, {fields["image_size"]} px, batch {fields["batch"]})',
          {'seconds_per_step': seconds, 'images_per_second': rate}))
  config, step_rate = fastest
  input_rate = input_images_per_second(config, strategy, dataset, data_dir, max(steps, 2))
  detail = (f'{input_rate:.1f} images/s from {dataset} at {config.image_size} px, the step '
            f'consumes {step_rate:.1f}')
  if input_rate < step_rate:
    detail += (': the input is the bottleneck. Try --color_jitter_on_device=True, the tf.data '
               'service (--data_service_address, docs/distributed.md), or more host cores')
  checks.append(Check('speed input', PASS, detail,
                      {'input_images_per_second': input_rate, 'step_images_per_second': step_rate}))
  return checks


def guarded(name, function, *args):
  """function(*args), a failed Check if it raises: any error is this machine's answer."""
  try:
    return function(*args)
  except Exception as e:  # pylint: disable=broad-except
    from tf2.errors import first_line  # pylint: disable=g-import-not-at-top
    return Check(name, FAIL, f'{type(e).__name__}: {first_line(e)}')


def offered_precisions(hw, forced):
  """The mixed precisions to check: those the hardware runs natively, or `forced`."""
  from tf2 import precision as precision_lib  # pylint: disable=g-import-not-at-top
  if forced is not None:
    return [p for p in forced if p != 'float32']
  offered = []
  if precision_lib.native_bf16(hw)[0]:
    offered.append('mixed_bfloat16')
  if precision_lib.native_float16(hw)[0]:
    offered.append('mixed_float16')
  return offered


def strategies_here(tpu):
  """(the strategy run.py would use, the one the replica check compares with one device)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2 import strategies  # pylint: disable=g-import-not-at-top
  if tpu:
    strategy = strategies.tpu_strategy(tpu)
    return strategy, strategy
  if len(tf.config.list_logical_devices('GPU')) > 1:
    strategy = tf.distribute.MirroredStrategy()
    return strategy, strategy
  cpus = [d.name for d in tf.config.list_logical_devices('CPU')]
  default = tf.distribute.get_strategy()
  if tf.config.list_logical_devices('GPU') or len(cpus) < 2:
    return default, default
  return default, tf.distribute.MirroredStrategy(cpus)


def run_checks(args, why_not_split):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tf2 import hardware, precision as precision_lib, strategies  # pylint: disable=g-import-not-at-top
  strategy, replicated = strategies_here(args.tpu)
  # The precision check runs where the run would: on a TPU, not on its host.
  device = strategy if args.tpu else tf.distribute.get_strategy()
  hw = hardware.detect(strategy)
  auto = precision_lib.choose('auto', hw)
  models = MODELS['quick' if args.quick else hw.kind]
  precisions = offered_precisions(hw, args.precisions)
  checks = [Check('setup', PASS, f'{strategies.describe(strategy)}; {auto.message}',
                  {'machine': hardware.describe(hw), 'auto_precision': auto.precision})]
  tensor_float_32 = tf.config.experimental.tensor_float_32_execution_enabled()
  tf.config.experimental.enable_tensor_float_32_execution(False)  # float32 to compare.
  checks.append(guarded('replicas', replica_check, replicated, models[0], why_not_split))
  checks.append(guarded('xla', xla_check, strategy, models[0]))
  if not precisions:
    checks.append(Check('precision', NA, 'float32 only: no native bf16 or float16 here'))
  for precision in precisions:
    checks.append(guarded(f'precision {precision}', precision_check, precision, models[0],
                          device))
  checks.append(guarded('export', export_check, models[0]))
  tf.config.experimental.enable_tensor_float_32_execution(tensor_float_32)
  speed = guarded('speed', speed_checks, strategy, models, ['float32'] + precisions,
                  args.steps, args.dataset, args.data_dir)
  checks.extend(speed if isinstance(speed, list) else [speed])
  return hardware.describe(hw), checks


def table(checks):
  width = max(len(c.name) for c in checks)
  return '\n'.join(f'{c.name:<{width}}  {c.status:<4}  {c.detail}' for c in checks)


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m tf2.selfcheck', description=__doc__.split(
      '\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--quick', action='store_true',
                      help='the smallest model everywhere (a minute on a 2-core CPU)')
  parser.add_argument('--replicas', type=int, default=8,
                      help='logical devices to split a lone CPU into (default 8)')
  parser.add_argument('--steps', type=int, default=3, help='timed steps per speed figure')
  parser.add_argument('--precisions', type=lambda s: s.split(','), default=None,
                      help='mixed precisions to check, comma-separated (default: the native ones)')
  parser.add_argument('--tpu', default=None, help='the TPU to check (e.g. local on a TPU VM)')
  parser.add_argument('--dataset', default='shapes',
                      help='the data the input pipeline is timed on (default: the embedded shapes)')
  parser.add_argument('--data_dir', default=None)
  parser.add_argument('--json', default=None, help='also write the results to this file')
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(sys.argv[1:] if argv is None else argv)
  why_not_split = None if args.tpu else split_devices(args.replicas)
  start = time.time()
  machine, checks = run_checks(args, why_not_split)
  print(machine)
  print(table(checks))
  failed = [c.name for c in checks if c.status == FAIL]
  print(f'{len(failed)} check(s) failed: {", ".join(failed)}' if failed else
        f'all checks passed ({time.time() - start:.0f} s)')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': machine, 'checks': [dataclasses.asdict(c) for c in checks],
                 'failed': failed}, f, indent=1)
  return 1 if failed else 0


if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  sys.exit(main())
