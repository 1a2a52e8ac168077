"""Checkpoints and exports keep their layout: what runs of earlier versions wrote still
resumes, initialises and loads. tests/data/checkpoint_layout.txt lists the variables
(name and shape) of a pretraining checkpoint with the memory and of a fine-tuning one,
and the export's signatures, as written before the restructuring of issue 34."""
import os

import tensorflow as tf

from tf2 import export
from tf2 import runner
from tf2.config import Config
from tf2.training import resume
from tf2.training.train_step import TrainStep

LAYOUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'checkpoint_layout.txt')
BASE = Config(dataset='shapes', eval_split='test', image_size=16, resnet_depth=18,
              resnet_base_width=8, train_batch_size=8, eval_batch_size=8, train_steps=1,
              use_blur=False, use_tpu=False)
CONFIGS = {'memory': BASE.replace(memory_size=32, momentum_decay=0.5),
           'finetune': BASE.replace(train_mode='finetune', optimizer='momentum')}


def listing(tmp_path):
  """The layout file's lines for what this version writes."""
  strategy = tf.distribute.get_strategy()
  lines = []
  for name, config in CONFIGS.items():
    model, optimizer = runner.build_model(config, strategy, 6, 100)
    step = TrainStep(config, model, optimizer, strategy,
                     ema_model=runner.build_ema_model(config, strategy, 6))
    step.build_optimizer_state()
    manager = resume.make_manager(model, optimizer, str(tmp_path / name), 1,
                                  **step.checkpointed())
    path = manager.save(checkpoint_number=3)
    lines.append(f'[{name} checkpoint]')
    lines += [f'{n} {list(s)}' for n, s in sorted(tf.train.list_variables(path))]
    if name == 'memory':
      loaded = tf.saved_model.load(export.export_saved_model(model, str(tmp_path / name), 3))
      lines.append(f'[{name} export]')
      for signature, function in sorted(loaded.signatures.items()):
        lines.append(f'{signature} {function.structured_input_signature} -> '
                     f'{" ".join(sorted(function.structured_outputs))}')
      lines.append(f'variables {len(loaded.variables)} trainable '
                   f'{len(loaded.trainable_variables)}')
  return lines


def test_checkpoints_and_exports_keep_the_layout_written_before(tmp_path):
  with open(LAYOUT) as f:
    expected = [line for line in f.read().splitlines() if not line.startswith('#')]
  got = listing(tmp_path)
  assert len(got) == len(expected)
  for a, b in zip(got, expected):
    assert a == b
