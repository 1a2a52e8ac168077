"""What `run.py` does with a Config: the modes train / eval / train_then_eval.

Order matters for fast failure: the strategy first (a missing TPU stops the
run before anything is read), then the dataset (a missing dataset stops it
before a model is built), then the model, the optimizer and training.
"""

from absl import logging
import tensorflow as tf

from tf2.data import datasets
from tf2.evaluation import evaluate as evaluation
from tf2 import export
from tf2.evaluation import linear_probe
from tf2.training import lr_schedule
from tf2.data import shapes_data
from tf2 import strategies
from tf2.training import loop as training
from tf2.config import ConfigError
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer


def needed_splits(config):
  splits = [config.train_split]  # Eval needs the train size for the step count.
  if config.mode != 'train' or config.linear_probe:
    splits.append(config.eval_split)
  return list(dict.fromkeys(splits))


def load_source(config):
  return datasets.build_source(config.dataset, config.data_dir, needed_splits(config),
                               strict=config.strict_images, builtin=shapes_data.builtin)


def adapt_to_source(config, source):
  """Checks labels against the training mode; linear eval is dropped for unlabelled data."""
  if source.num_classes > 0:
    return config
  if config.train_mode == 'finetune':
    raise datasets.DatasetError(
        f'{source.name} has no labels (no class subfolders): fine-tuning needs labelled data.')
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


def evaluate_and_export(config, model, strategy, source, step):
  result = evaluation.evaluate(config, model, strategy, source, step)
  evaluation.write_results(config, result, config.model_dir)
  export.export_saved_model(model, config.model_dir, step, config.keep_hub_module_max)
  return result


def watch_and_evaluate(config, model, optimizer, strategy, source, train_steps):
  """--mode=eval: evaluates every new checkpoint in model_dir until the last step."""
  result = None
  checkpoint = tf.train.Checkpoint(model=model, global_step=optimizer.iterations)
  for path in tf.train.checkpoints_iterator(config.model_dir, min_interval_secs=15):
    try:
      checkpoint.restore(path).expect_partial()
    except tf.errors.NotFoundError:  # Deleted by the trainer's CheckpointManager meanwhile.
      continue
    step = int(optimizer.iterations.numpy())
    result = evaluate_and_export(config, model, strategy, source, step)
    if step >= train_steps:
      break
  return result


def run(config):
  """Runs `config.mode`; returns the last evaluation result (or None)."""
  config = config.validate()
  if not config.model_dir:
    raise ConfigError('--model_dir is required: checkpoints, summaries and results go there.')
  strategy = strategies.make_strategy(config)
  replicas = strategy.num_replicas_in_sync
  for name in ('train_batch_size', 'eval_batch_size'):
    if getattr(config, name) % replicas:
      raise ConfigError(f'--{name}={getattr(config, name)} must be a multiple of the number '
                        f'of replicas ({replicas}): each replica gets an equal share.')
  source = load_source(config)
  config = adapt_to_source(config, source)
  tf.io.gfile.makedirs(config.model_dir)
  evaluation.write_flags(config, config.model_dir)
  num_examples = source.num_examples(config.train_split)
  model, optimizer = build_model(config, strategy, source.num_classes, num_examples)
  result = None
  if config.mode == 'eval':
    plan = training.make_plan(config, num_examples)
    result = watch_and_evaluate(config, model, optimizer, strategy, source, plan.train_steps)
    step = int(optimizer.iterations.numpy())
  else:
    step = training.train(config, model, optimizer, strategy, source, config.model_dir)
    if config.mode == 'train_then_eval':
      result = evaluate_and_export(config, model, strategy, source, step)
    elif config.export_saved_model:
      export.export_saved_model(model, config.model_dir, step, config.keep_hub_module_max)
  if config.linear_probe:
    result = dict(result or {}, global_step=float(step),
                  **probe(config, model, strategy, source))
    evaluation.write_results(config, result, config.model_dir)
  return result


def probe(config, model, strategy, source):
  def make_random_model():
    with strategy.scope():
      return SimCLRModel(config, source.num_classes).build_for()
  accuracies = linear_probe.compare_with_random_encoder(
      model, make_random_model, source, config, config.train_split, config.eval_split)
  print(f'Linear probe (logistic regression on frozen features, {config.eval_split} split): '
        f'pretrained encoder {100 * accuracies["trained"]:.1f}% top-1, randomly initialised '
        f'encoder {100 * accuracies["random"]:.1f}%.', flush=True)
  return {'linear_probe/trained_encoder_top_1': accuracies['trained'],
          'linear_probe/random_encoder_top_1': accuracies['random']}
