"""What `run.py` does with a Config: the modes train / eval / train_then_eval.

It orchestrates and decides nothing itself. Order matters for fast failure:
the config (`Config.validate`), the output directory and the strategy first
(a missing TPU stops the run before anything is read), then the dataset and
the checks against it and the replicas (`preflight.py`), so that a run that
cannot work stops before a model is built; then the models, training
(`training/loop.py`), evaluation (`evaluation/`) and export.
"""
from absl import logging
import numpy as np
import tensorflow as tf

from tf2 import cluster
from tf2 import console
from tf2 import export
from tf2 import hardware
from tf2 import precision
from tf2 import preflight
from tf2 import strategies
from tf2.data import datasets
from tf2.data import download
from tf2.data import digits_on_images, mnist5k, shapes_data
from tf2.errors import DatasetError, first_line
from tf2.evaluation import knn
from tf2.evaluation import linear_probe
from tf2.evaluation import results
from tf2.evaluation import watcher
from tf2.models import teacher as teacher_lib
from tf2.models.model import SimCLRModel
from tf2.training import loop
from tf2.training import lr_schedule
from tf2.training.optimizers import build_optimizer


def needed_splits(config):
  splits = [config.train_split]  # Eval needs the train size for the step count.
  if config.mode != 'train' or config.linear_probe or config.knn_eval:
    splits.append(config.eval_split)
  return list(dict.fromkeys(splits))


# The datasets built in (no download), by name.
BUILTIN = {shapes_data.NAME: shapes_data.source, mnist5k.NAME: mnist5k.source}


def builtin_source(dataset, data_dir, splits):
  """The `datasets.build_source` hook: the built-in dataset of that name, or None."""
  del data_dir  # Built in: nothing to read or download.
  hook = BUILTIN.get(dataset)
  return hook(splits) if hook else None


def load_source(config):
  source = datasets.build_source(config.dataset, config.data_dir, needed_splits(config),
                                 strict=config.strict_images, builtin=builtin_source,
                                 scan_cache_dir=config.image_scan_cache_dir)
  if not config.digits_on_images:
    return source
  digits = datasets.build_source(config.digits_dataset, config.data_dir, ['train'],
                                 builtin=builtin_source)
  images, labels = zip(*digits.read('train').take(config.digits_on_images).as_numpy_iterator())
  return digits_on_images.wrap(source, np.stack(images)[..., :1], np.array(labels),
                               config.digits_on_images, config.digits_label)


def describe_data(config, source):
  """'Data: cifar10, train split 'train' (50000 images), eval split 'test' (10000), 10 classes'."""
  parts = [f'Data: {source.name}, train split {config.train_split!r} '
           f'({source.num_examples(config.train_split)} images)']
  if config.eval_split in needed_splits(config) and config.eval_split != config.train_split:
    parts.append(f'eval split {config.eval_split!r} ({source.num_examples(config.eval_split)})')
  parts.append(f'{source.num_classes} classes' if source.num_classes else 'unlabelled')
  return ', '.join(parts)


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


def run(config):
  """Runs `config.mode`; returns the last evaluation result (or None)."""
  config = config.validate(for_run=True)
  console.drop_tensorflow_info()  # TensorFlow's own INFO lines (saver internals).
  fresh = not tf.io.gfile.exists(config.model_dir)
  preflight.check_writable(config.model_dir)
  strategy = strategies.make_strategy(config)
  role = cluster.role_of(strategy, config.model_dir)
  try:
    try:
      # Every worker runs the same program; only the chief writes into model_dir.
      return _run(config.replace(model_dir=role.write_dir), strategy, role,
                  read_dir=config.model_dir)
    except tf.errors.DataLossError as e:  # From the input pipeline: checkpoints are read
      # (and damaged ones skipped) in training/resume.py.
      raise DatasetError(
          f'A data file is truncated or corrupt ({first_line(e)}). Build or copy the dataset '
          'again (TFDS: `tfds build`).') from e
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


def tfds_name(config):
  """--dataset as a TFDS name, or None for a folder or a built-in dataset."""
  if datasets.is_folder(config.dataset) or config.dataset in BUILTIN:
    return None
  return config.dataset


def _run(config, strategy, role, read_dir):
  """run() once the strategy is known: writes go to config.model_dir, checkpoints are
  read from `read_dir` (the chief's model_dir)."""
  config = precision.resolve(config, hardware.detect(strategy))
  preflight.check_replicas(config, strategy)
  name = tfds_name(config)
  if name:  # Only the chief downloads; the others read its copy.
    if role.is_chief:
      download.ensure_prepared(name, config.data_dir, config.tfds_download)
    if role.multi_worker:
      cluster.barrier(strategy)
  source = load_source(config)
  logging.info('%s', describe_data(config, source))
  config = preflight.check_labels(config, source)
  num_classes = source.num_classes
  if config.train_mode == 'distill':
    num_classes = preflight.check_teacher(config, source)
  tf.io.gfile.makedirs(config.model_dir)
  results.write_flags(config, config.model_dir)
  num_examples = source.num_examples(config.train_split)
  teacher = None
  if config.train_mode == 'distill' and config.mode != 'eval':
    teacher = teacher_lib.load_teacher(config.teacher_checkpoint, config, num_classes, strategy)
  model, optimizer = build_model(config, strategy, num_classes, num_examples)
  # Train (unless --mode=eval), then evaluate, then the extras; results written once
  # (--mode=eval writes each checkpoint's as it comes, beside a training run).
  result = None
  if config.mode == 'eval':
    plan = loop.make_plan(config, num_examples)
    result = watcher.watch_and_evaluate(config, model, optimizer, strategy, source,
                                        plan.train_steps, read_dir)
    step = int(optimizer.iterations.numpy())
  else:
    ema_model = build_ema_model(config, strategy, num_classes)
    trained = model
    # --evaluate_ema: the momentum network is the one evaluated, monitored, probed, exported.
    model = ema_model if config.evaluate_ema else model
    monitor = knn.KnnMonitor(config, model, strategy, source, loop.make_plan(
        config, num_examples).checkpoint_steps) if config.knn_eval else None
    step = loop.train(config, trained, optimizer, strategy, source, config.model_dir,
                      on_checkpoint=monitor, teacher=teacher, restore_dir=read_dir,
                      ema_model=ema_model)
    knn_result = monitor.result_at(step) if monitor else None
    if config.mode == 'train_then_eval':
      evaluation = watcher.StepEvaluation(config, model, strategy, teacher)
      result = evaluation(source, step, knn_result)
    elif monitor:
      result = dict(knn_result or knn.knn_accuracy(config, model, strategy, source, step,
                                                   monitor.extractor),
                    global_step=float(step))
    if config.mode == 'train_then_eval' or config.export_saved_model:
      export.export_saved_model(model, config.model_dir, step, config.keep_hub_module_max)
  if config.linear_probe:
    def make_random_model():
      with strategy.scope():
        return SimCLRModel(config, source.num_classes).build_for()
    result = dict(result or {}, global_step=float(step),
                  **linear_probe.report(config, model, make_random_model, strategy, source))
  if result is not None and (config.mode != 'eval' or config.linear_probe):
    results.write_results(config, result, config.model_dir)
  return result
