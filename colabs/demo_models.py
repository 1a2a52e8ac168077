"""Small models the notebooks share, trained on the embedded `shapes` data when missing.

Each function returns a model_dir holding checkpoints, `flags.json` and a
SavedModel export (`saved_model/<step>/`), training it first through
`tf2.runner` (the code path of `run.py`) if the directory has no export yet.
They are trained at 16 px (the shapes images are 32 px) so that each takes
about a minute on a 2-core CPU; the notebooks accept any other
model_dir or export in their parameters cell instead (a quickstart run, a
`checkpoints.convert` output).
"""
import glob
import os

from tf2 import runner
from tf2.config import Config

SMALL = dict(dataset='shapes', train_split='train', eval_split='test', image_size=16,
             resnet_depth=18, resnet_base_width=16, use_tpu=False, use_blur=False,
             eval_batch_size=500, train_summary_steps=10, log_every_secs=0)


def latest_export(model_dir):
  """Path of the newest `saved_model/<step>` in model_dir, or None."""
  steps = [int(os.path.basename(p)) for p in glob.glob(os.path.join(model_dir, 'saved_model', '*'))
           if os.path.basename(p).isdigit()]
  return os.path.join(model_dir, 'saved_model', str(max(steps))) if steps else None


def pretrained(model_dir, steps=60, batch_size=128):
  """SimCLR pretraining (contrastive + linear eval head), exported."""
  if latest_export(model_dir) is None:
    runner.run(Config(**SMALL, train_mode='pretrain', mode='train', train_steps=steps,
                      train_batch_size=batch_size, learning_rate=2.0, temperature=0.5,
                      weight_decay=1e-4, color_jitter_strength=0.5, warmup_epochs=0,
                      checkpoint_steps=steps, export_saved_model=True, model_dir=model_dir))
  return model_dir


def finetuned(model_dir, pretrained_dir, steps=300, batch_size=64):
  """Fine-tuned from `pretrained_dir` on every label (all layers), evaluated and exported."""
  if latest_export(model_dir) is None:
    runner.run(Config(**SMALL, train_mode='finetune', mode='train_then_eval',
                      train_steps=steps, train_batch_size=batch_size, optimizer='momentum',
                      learning_rate=0.4, weight_decay=0.0, warmup_epochs=0, global_bn=False,
                      checkpoint=pretrained_dir, checkpoint_steps=steps,
                      variable_schema='(?!global_step|(?:.*/|^)Momentum|head)',
                      model_dir=model_dir))
  return model_dir
