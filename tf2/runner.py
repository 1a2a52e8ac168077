"""What `run.py` does with a Config: the modes train / eval / train_then_eval.

Order matters for fast failure: the strategy first (a missing TPU stops the
run before anything is read), then the dataset (a missing dataset stops it
before a model is built), then the model, the optimizer and training.
"""

import os

from absl import logging
import tensorflow as tf

from tf2 import cluster
from tf2.data import datasets
from tf2.evaluation import evaluate as evaluation
from tf2 import console
from tf2 import export
from tf2.evaluation import knn
from tf2.evaluation import linear_probe
from tf2.training import lr_schedule
from tf2.data import shapes_data
from tf2 import hardware
from tf2 import precision
from tf2 import strategies
from tf2.training import checkpointing
from tf2.training import loop as training
from tf2.config import ConfigError
from tf2.models import teacher as teacher_lib
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer


def needed_splits(config):
  splits = [config.train_split]  # Eval needs the train size for the step count.
  if config.mode != 'train' or config.linear_probe or config.knn_eval:
    splits.append(config.eval_split)
  return list(dict.fromkeys(splits))


def load_source(config):
  return datasets.build_source(config.dataset, config.data_dir, needed_splits(config),
                               strict=config.strict_images, builtin=shapes_data.builtin,
                               scan_cache_dir=config.image_scan_cache_dir)


def check_teacher_classes(config, source):
  """The teacher's class count; an error if the labelled data has another."""
  teacher_lib.teacher_config(config.teacher_checkpoint, config)  # flags.json, supervised head.
  classes = teacher_lib.supervised_classes(config.teacher_checkpoint)
  if classes is None:
    raise ConfigError(f'The teacher {config.teacher_checkpoint} has no supervised head '
                      '(head_supervised): fine-tune it first, then distil.')
  if source.num_classes and source.num_classes != classes:
    raise ConfigError(f'The teacher {config.teacher_checkpoint} predicts {classes} classes but '
                      f'{source.name} has {source.num_classes}: distil on the teacher\'s label '
                      'space.')
  return classes


def describe_data(config, source):
  """'Data: cifar10, train split 'train' (50000 images), eval split 'test' (10000), 10 classes'."""
  parts = [f'Data: {source.name}, train split {config.train_split!r} '
           f'({source.num_examples(config.train_split)} images)']
  if config.eval_split in needed_splits(config) and config.eval_split != config.train_split:
    parts.append(f'eval split {config.eval_split!r} ({source.num_examples(config.eval_split)})')
  parts.append(f'{source.num_classes} classes' if source.num_classes else 'unlabelled')
  return ', '.join(parts)


def adapt_to_source(config, source):
  """Checks labels against the training mode; linear eval is dropped for unlabelled data."""
  if source.num_classes > 0:
    return config
  if config.train_mode == 'finetune':
    raise datasets.DatasetError(
        f'{source.name} has no labels (no class subfolders): fine-tuning needs labelled data.')
  if config.train_mode == 'distill' and config.distill_alpha > 0:
    raise datasets.DatasetError(
        f'{source.name} has no labels: --distill_alpha={config.distill_alpha} needs them; use '
        '--distill_alpha=0 to learn from the teacher alone.')
  if config.knn_eval:
    raise datasets.DatasetError(
        f'{source.name} has no labels: the kNN monitor needs labelled train and eval splits; '
        'drop --knn_eval.')
  if config.mode != 'train':
    raise datasets.DatasetError(
        f'{source.name} has no labels: use --mode=train to pretrain on it; evaluation needs '
        'a labelled --eval_split.')
  if config.lineareval_while_pretraining:
    logging.warning('%s has no labels: pretraining without the linear-eval head.', source.name)
  return config.replace(lineareval_while_pretraining=False, linear_probe=False)


def build_model(config, strategy, num_classes, num_examples):
  with strategy.scope():
    model = SimCLRModel(config, num_classes).build_for()
    optimizer = build_optimizer(config, lr_schedule.schedule_from_config(config, num_examples))
  return model, optimizer


def build_ema_model(config, strategy, num_classes):
  """The momentum network of --memory_size (None without it)."""
  if not config.memory_size:
    return None
  with strategy.scope():
    return SimCLRModel(config, num_classes).build_for()


def evaluation_result(config, model, strategy, source, step, knn_result=None, teacher=None):
  """Evaluation (+ kNN: `knn_result` if already computed at this step; + the distillation
  teacher's top-1 next to the student's)."""
  result = evaluation.evaluate(config, model, strategy, source, step)
  if config.knn_eval:
    result.update(knn_result or knn.knn_accuracy(config, model, strategy, source, step))
  if teacher is not None:
    result['eval/teacher_label_top_1_accuracy'] = evaluation.evaluate(
        config, teacher, strategy, source, step)[evaluation.TOP_1]
  return result


def evaluate_and_export(config, model, strategy, source, step):
  """--mode=eval, at each checkpoint: evaluation, its results written, and export."""
  result = evaluation_result(config, model, strategy, source, step)
  evaluation.write_results(config, result, config.model_dir)
  export.export_saved_model(model, config.model_dir, step, config.keep_hub_module_max)
  return result


class KnnMonitor:
  """The training loop's on_checkpoint hook: kNN accuracy, logged and in TensorBoard."""

  def __init__(self, config, model, strategy, source):
    self.config, self.model, self.strategy, self.source = config, model, strategy, source
    self.results = {}

  def __call__(self, step):
    result = knn.knn_accuracy(self.config, self.model, self.strategy, self.source, step)
    self.results[step] = result
    evaluation.write_summaries(self.config, {knn.KNN_TOP_1: result[knn.KNN_TOP_1]}, step,
                               self.config.model_dir)

  def result_at(self, step):
    """The result at `step`, with the step-0 (initial weights) figure when there is one."""
    if step not in self.results:
      return None
    result = dict(self.results[step])
    if 0 in self.results and step != 0:
      result['eval/knn_top_1_initial'] = self.results[0][knn.KNN_TOP_1]
    return result


def watch_and_evaluate(config, model, optimizer, strategy, source, train_steps, read_dir=None,
                       min_interval_secs=15):
  """--mode=eval: evaluates every new checkpoint in model_dir until the last step.

  It runs beside training: a checkpoint that the trainer's keep_checkpoint_max
  deleted meanwhile, or one that cannot be read whole (a half-written copy on
  a filesystem without atomic renames), is skipped with a warning; the next
  one is evaluated.
  """
  result = None
  # --evaluate_ema: the momentum network's weights, saved as `ema_model`, go into `model`.
  network = {'ema_model' if config.evaluate_ema else 'model': model}
  checkpoint = tf.train.Checkpoint(global_step=optimizer.iterations, **network)
  for path in tf.train.checkpoints_iterator(read_dir or config.model_dir,
                                            min_interval_secs=min_interval_secs):
    try:
      if config.evaluate_ema and not any(name.startswith('ema_model/')
                                         for name, _ in tf.train.list_variables(path)):
        raise checkpointing.CheckpointMismatchError(
            f'{path} holds no momentum network (trained without --memory_size?): evaluate '
            'it without --evaluate_ema.')
      checkpoint.restore(path).expect_partial()
    except (tf.errors.NotFoundError, tf.errors.DataLossError, tf.errors.OutOfRangeError,
            tf.errors.InvalidArgumentError, IndexError) as e:  # IndexError: a truncated file.
      logging.warning('Skipping %s: %s: %s (deleted by keep_checkpoint_max, or not complete); '
                      'waiting for the next checkpoint.', path, type(e).__name__,
                      str(e).strip().splitlines()[0][:200] if str(e).strip() else '')
      continue
    step = int(optimizer.iterations.numpy())
    result = evaluate_and_export(config, model, strategy, source, step)
    if step >= train_steps:
      break
  return result


def run(config):
  """Runs `config.mode`; returns the last evaluation result (or None)."""
  config = config.validate()
  console.drop_tensorflow_info()  # TensorFlow's own INFO lines (saver internals).
  if not config.model_dir:
    raise ConfigError('--model_dir is required: checkpoints, summaries and results go there.')
  fresh = not tf.io.gfile.exists(config.model_dir)
  check_writable(config.model_dir)
  strategy = strategies.make_strategy(config)
  role = cluster.role_of(strategy, config.model_dir)
  try:
    try:
      # Every worker runs the same program; only the chief writes into model_dir.
      return _run(config.replace(model_dir=role.write_dir), strategy, read_dir=config.model_dir)
    except tf.errors.DataLossError as e:  # From the input pipeline: checkpoints are read
      # (and damaged ones skipped) in training.resume_from.
      raise datasets.DatasetError(
          f'A data file is truncated or corrupt ({checkpointing.first_line(e)}). Build or '
          'copy the dataset again (TFDS: `tfds build`; CIFAR-10 offline: '
          '../shared/tools/prepare_cifar10.py).') from e
    except cluster.PEER_ERRORS as e:
      if not role.multi_worker:
        raise
      raise role.lost_worker(e, tf.train.latest_checkpoint(config.model_dir)) from e
  except Exception:
    if fresh:  # A run that failed before it produced anything leaves nothing behind.
      remove_if_only_flags(config.model_dir)
    raise
  finally:
    role.cleanup()


def remove_if_only_flags(model_dir):
  if tf.io.gfile.exists(model_dir) and set(tf.io.gfile.listdir(model_dir)) <= {'flags.json'}:
    tf.io.gfile.rmtree(model_dir)


def check_writable(model_dir):
  """Stops at once, before any work, if model_dir cannot be created or written."""
  probe = os.path.join(model_dir, f'.write_test_{os.getpid()}')
  try:
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(probe, 'w') as f:
      f.write('')
    tf.io.gfile.remove(probe)
  except (tf.errors.OpError, OSError) as e:
    text = str(e).strip()
    raise ConfigError(f'--model_dir={model_dir} cannot be written '
                      f'({type(e).__name__}: {text.splitlines()[0] if text else ""}): choose '
                      'a directory you can write to.') from e


def _run(config, strategy, read_dir):
  """run() once the strategy is known: writes go to config.model_dir, checkpoints are
  read from `read_dir` (the chief's model_dir)."""
  config = precision.resolve(config, hardware.detect(strategy))
  replicas = strategy.num_replicas_in_sync
  strategies.check_jit_compile(strategy, config.jit_compile)
  for name in ('train_batch_size', 'eval_batch_size'):
    if getattr(config, name) % replicas:
      raise ConfigError(f'--{name}={getattr(config, name)} must be a multiple of the number '
                        f'of replicas ({replicas}): each replica gets an equal share.')
  source = load_source(config)
  logging.info('%s', describe_data(config, source))
  config = adapt_to_source(config, source)
  tf.io.gfile.makedirs(config.model_dir)
  evaluation.write_flags(config, config.model_dir)
  num_examples = source.num_examples(config.train_split)
  num_classes = source.num_classes
  teacher = None
  if config.train_mode == 'distill':
    num_classes = check_teacher_classes(config, source)
    if config.mode != 'eval':
      teacher = teacher_lib.load_teacher(config.teacher_checkpoint, config, num_classes, strategy)
  model, optimizer = build_model(config, strategy, num_classes, num_examples)
  ema_model = None if config.mode == 'eval' else build_ema_model(config, strategy, num_classes)
  # Train (unless --mode=eval), then evaluate, then the extras; results written once
  # (--mode=eval writes each checkpoint's as it comes, beside a training run).
  result = None
  if config.mode == 'eval':
    plan = training.make_plan(config, num_examples)
    result = watch_and_evaluate(config, model, optimizer, strategy, source, plan.train_steps,
                                read_dir)
    step = int(optimizer.iterations.numpy())
  else:
    trained = model
    # --evaluate_ema: the momentum network is the one evaluated, monitored, probed, exported.
    model = ema_model if config.evaluate_ema else model
    monitor = KnnMonitor(config, model, strategy, source) if config.knn_eval else None
    step = training.train(config, trained, optimizer, strategy, source, config.model_dir,
                          on_checkpoint=monitor, teacher=teacher, restore_dir=read_dir,
                          ema_model=ema_model)
    knn_result = monitor.result_at(step) if monitor else None
    if config.mode == 'train_then_eval':
      result = evaluation_result(config, model, strategy, source, step, knn_result, teacher)
    elif monitor:
      result = dict(knn_result or knn.knn_accuracy(config, model, strategy, source, step),
                    global_step=float(step))
    if config.mode == 'train_then_eval' or config.export_saved_model:
      export.export_saved_model(model, config.model_dir, step, config.keep_hub_module_max)
  if config.linear_probe:
    result = dict(result or {}, global_step=float(step),
                  **probe(config, model, strategy, source))
  if result is not None and (config.mode != 'eval' or config.linear_probe):
    evaluation.write_results(config, result, config.model_dir)
  return result


def probe(config, model, strategy, source):
  def make_random_model():
    with strategy.scope():
      return SimCLRModel(config, source.num_classes).build_for()
  accuracies = linear_probe.compare_with_random_encoder(
      model, make_random_model, strategy, source, config, config.train_split, config.eval_split)
  print(f'Linear probe (logistic regression on frozen features, {config.eval_split} split): '
        f'pretrained encoder {100 * accuracies["trained"]:.1f}% top-1, randomly initialised '
        f'encoder {100 * accuracies["random"]:.1f}%.', flush=True)
  return {'linear_probe/trained_encoder_top_1': accuracies['trained'],
          'linear_probe/random_encoder_top_1': accuracies['random']}
