"""What a run evaluates at a step, and --mode=eval's watch over a run's checkpoints.

`StepEvaluation` holds the traced steps of one model's evaluation: the
supervised head's top-1/top-5 (`evaluate.Evaluator`), the kNN with
--knn_eval, and for distillation the teacher's top-1; `train_then_eval` calls
it once after training, and the watcher at every checkpoint.
"""
from absl import logging
import tensorflow as tf

from tf2 import export
from tf2.errors import CheckpointMismatchError
from tf2.evaluation import evaluate
from tf2.evaluation import features
from tf2.evaluation import knn
from tf2.evaluation import results
from tf2.models import warm_start

TEACHER_TOP_1 = 'eval/teacher_label_top_1_accuracy'


class StepEvaluation:
  """Evaluates `model` (and the distillation `teacher`, if any) at any number of steps."""

  def __init__(self, config, model, strategy, teacher=None):
    self.config, self.model, self.strategy = config, model, strategy
    self.evaluator = evaluate.Evaluator(config, model, strategy)
    self.extractor = features.FeatureExtractor(config, model, strategy) if (
        config.knn_eval) else None
    self.teacher = evaluate.Evaluator(config, teacher, strategy) if teacher else None

  def __call__(self, source, step, knn_result=None):
    """The result at `step`; `knn_result`: the kNN monitor's, if it already scored it."""
    result = self.evaluator(source, step)
    if self.extractor is not None:
      result.update(knn_result or knn.knn_accuracy(self.config, self.model, self.strategy,
                                                   source, step, self.extractor))
    if self.teacher is not None:
      result[TEACHER_TOP_1] = self.teacher(source, step)[evaluate.TOP_1]
    return result


def evaluate_and_export(config, model, strategy, source, step, evaluation=None):
  """--mode=eval, at each checkpoint: evaluation, its results written, and export.
  `evaluation`: the model's `StepEvaluation`, kept between checkpoints."""
  evaluation = evaluation or StepEvaluation(config, model, strategy)
  result = evaluation(source, step)
  results.write_results(config, result, config.model_dir)
  export.export_saved_model(model, config.model_dir, step, config.keep_hub_module_max)
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
  evaluation = StepEvaluation(config, model, strategy)
  # --evaluate_ema: the momentum network's weights, saved as `ema_model`, go into `model`.
  network = {'ema_model' if config.evaluate_ema else 'model': model}
  checkpoint = tf.train.Checkpoint(global_step=optimizer.iterations, **network)
  for path in tf.train.checkpoints_iterator(read_dir or config.model_dir,
                                            min_interval_secs=min_interval_secs):
    try:
      if config.evaluate_ema and not any(name.startswith('ema_model/')
                                         for name, _ in tf.train.list_variables(path)):
        raise CheckpointMismatchError(
            f'{path} holds no momentum network (trained without --memory_size?): evaluate '
            'it without --evaluate_ema.')
      checkpoint.restore(path).expect_partial()
    except warm_start.DAMAGED_ERRORS as e:
      logging.warning('Skipping %s: %s: %s (deleted by keep_checkpoint_max, or not complete); '
                      'waiting for the next checkpoint.', path, type(e).__name__,
                      str(e).strip().splitlines()[0][:200] if str(e).strip() else '')
      continue
    step = int(optimizer.iterations.numpy())
    result = evaluate_and_export(config, model, strategy, source, step, evaluation)
    if step >= train_steps:
      break
  return result
