"""What a run writes for people and tools, as the original does: `flags.json` (the
run's settings, also read by a distillation teacher and by `--mode=eval`),
`result.json` (latest) and `result_<step>.json`, and TensorBoard scalars under
`model_dir/<eval_name or 'eval'>`."""
import dataclasses
import json
import os

import tensorflow as tf


def write_results(config, result, model_dir):
  """result.json, result_<step>.json, flags.json and eval summaries."""
  step = int(result['global_step'])
  for name in ('result.json', f'result_{step}.json'):
    with tf.io.gfile.GFile(os.path.join(model_dir, name), 'w') as f:
      json.dump({k: float(v) for k, v in result.items()}, f, indent=1)
  write_flags(config, model_dir)
  write_summaries(config, {k: v for k, v in result.items() if k != 'global_step'}, step,
                  model_dir)


def write_summaries(config, scalars, step, model_dir):
  """TensorBoard scalars under model_dir/<eval_name or 'eval'>."""
  writer = tf.summary.create_file_writer(os.path.join(model_dir, config.eval_name or 'eval'))
  with writer.as_default():
    for key, value in scalars.items():
      tf.summary.scalar(key, value, step=step)
  writer.flush()


def write_flags(config, model_dir):
  with tf.io.gfile.GFile(os.path.join(model_dir, 'flags.json'), 'w') as f:
    json.dump(dataclasses.asdict(config), f, indent=1, sort_keys=True)
