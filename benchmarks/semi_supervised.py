"""SimCLRv2's semi-supervised recipe end to end on real CIFAR-10: pretrain, fine-tune on
10% and 1% of the labels from the projection head, self-distil on all unlabelled images.

    tfds build cifar10 --data_dir /tmp/cifar_tfds   # once (offline: docs/development.md)
    python -m benchmarks.semi_supervised --data_dir /tmp/cifar_tfds [--pretrain_dir DIR]

1. Pretraining (skipped with `--pretrain_dir`, e.g. a run of the README's
   CIFAR-10 command): that command (`recipes.py`: ResNet-18, LARS, temperature
   0.5, no blur) with a 3-layer projection head (SimCLRv2), `--pretrain_steps`
   steps.
2. For each `--fractions` entry: a class-balanced label subset
   (`imagenet_subsets.make`, seed 0), fine-tuned from the first projection
   layer (`--num_proj_layers=3 --ft_proj_selector=1`, crop and flip only),
   evaluated on the test split: the teacher.
3. Each teacher distilled into a same-size student on all 50,000 training
   images with their labels ignored (`--train_mode=distill
   --distill_alpha=0`, tau = 1), evaluated: the student. It starts from
   random weights, or with `--student_init pretrained` from the pretrained
   network (results under `distill_<fraction>_from_pretrained`).
4. The baseline: the same network trained supervised from random
   initialisation on the same label subset, same steps and optimizer.

Prints the machine line, then a table: label fraction, supervised baseline,
teacher and student top-1, and the minutes each stage took. The paper's
claims to check at this scale: the teacher beats the baseline, and the
student matches or beats its teacher. Everything goes under
`--work_dir`; finished stages are reused when the script runs again.
"""
import argparse
import json
import os
import time

from absl import logging

import recipes
from imagenet_subsets import make
from tf2 import hardware, runner
from tf2.config import Config

# Every stage's, pretraining's too; and what the fine-tuning and distillation stages
# take from the pretraining recipe: the data and the network.
STAGES = dict(num_proj_layers=3, eval_batch_size=500, log_every_secs=60)
FROM_RECIPE = ('dataset', 'image_size', 'eval_split', 'resnet_depth', 'use_blur', 'use_tpu')


# Everything of a pretraining checkpoint but its step, optimizer slots and linear-eval head.
FROM_PRETRAINED = '(?!global_step|(?:.*/|^)Momentum|head_supervised)'


def finished(model_dir):
  path = os.path.join(model_dir, 'result.json')
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return None


def timed(stage, times, fn):
  start = time.time()
  result = fn()
  times[stage] = (time.time() - start) / 60
  return result


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--work_dir', default='/tmp/simclr_semi_supervised')
  parser.add_argument('--pretrain_dir', default=None)
  parser.add_argument('--pretrain_steps', type=int, default=2000)
  parser.add_argument('--finetune_steps', type=int, default=500)
  parser.add_argument('--distill_steps', type=int, default=1000)
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--fractions', default='0.1,0.01')
  parser.add_argument('--width', type=int, default=64,
                      help='--resnet_base_width of every network (64: the standard ResNet-18)')
  parser.add_argument('--precision', default='float32', help='float32, mixed_bfloat16 or auto')
  parser.add_argument('--student_init', choices=('random', 'pretrained'), default='random',
                      help='the student starts from random weights, or from the pretrained '
                           'encoder and projection head like the teacher')
  args = parser.parse_args()
  logging.set_verbosity(logging.INFO)  # each stage's progress lines, as run.py prints them
  print(hardware.describe(), flush=True)
  every = dict(STAGES, data_dir=args.data_dir, train_batch_size=args.batch,
               resnet_base_width=args.width, precision=args.precision)
  pretraining = recipes.config('cifar10_pretrain', **every)
  common = dict(every, **{name: getattr(pretraining, name) for name in FROM_RECIPE})
  times = {}
  # A 1% subset of CIFAR-10 is two batches: one checkpoint per epoch would be one
  # every two steps, costing more than the steps. The labelled subsets are cached
  # in memory (decoded) rather than filtered out of the 50,000 again every epoch.
  finetune_checkpoint_steps = max(1, args.finetune_steps // 5)

  pretrain_dir = args.pretrain_dir or os.path.join(args.work_dir, 'pretrain')
  if not args.pretrain_dir:
    timed('pretrain', times, lambda: runner.run(pretraining.replace(
        mode='train', train_steps=args.pretrain_steps, model_dir=pretrain_dir)))

  names, labels = make.tfds_names('cifar10', args.data_dir, 'train')
  rows = []
  student_init, suffix = {}, ''
  if args.student_init == 'pretrained':
    student_init = dict(checkpoint=pretrain_dir, variable_schema=FROM_PRETRAINED)
    suffix = '_from_pretrained'
  for fraction in (float(f) for f in args.fractions.split(',')):
    subset = os.path.join(args.work_dir, f'subset_{fraction:g}.txt')
    os.makedirs(args.work_dir, exist_ok=True)
    with open(subset, 'w') as f:
      f.write('\n'.join(make.balanced_subset(names, labels, fraction, seed=0)) + '\n')
    teacher_dir = os.path.join(args.work_dir, f'finetune_{fraction:g}')
    # Teacher and baseline: the same supervised training on the subset, from the
    # pretrained network or from random weights.
    on_subset = dict(common, train_mode='finetune', mode='train_then_eval', train_split=subset,
                     train_steps=args.finetune_steps, ft_proj_selector=1, optimizer='lars',
                     checkpoint_steps=finetune_checkpoint_steps, cache_dataset=True,
                     learning_rate=0.1, weight_decay=0.0, warmup_epochs=0, global_bn=False)
    teacher = finished(teacher_dir) or timed(f'finetune {fraction:g}', times, lambda: runner.run(
        Config(**on_subset, zero_init_logits_layer=True, checkpoint=pretrain_dir,
               variable_schema=FROM_PRETRAINED, model_dir=teacher_dir)))
    baseline_dir = os.path.join(args.work_dir, f'supervised_{fraction:g}')
    baseline = finished(baseline_dir) or timed(f'supervised {fraction:g}', times, lambda: runner.run(
        Config(**on_subset, model_dir=baseline_dir)))
    student_dir = os.path.join(args.work_dir, f'distill_{fraction:g}{suffix}')
    student = finished(student_dir) or timed(f'distill {fraction:g}', times, lambda: runner.run(
        Config(**common, train_mode='distill', mode='train_then_eval', train_split='train',
               teacher_checkpoint=teacher_dir, distill_alpha=0.0, distill_temperature=1.0,
               train_steps=args.distill_steps, ft_proj_selector=1, optimizer='lars',
               learning_rate=0.1, weight_decay=1e-4, warmup_epochs=0,
               model_dir=student_dir, **student_init)))
    rows.append((fraction, len(open(subset).read().split()),
                 baseline['eval/label_top_1_accuracy'], teacher['eval/label_top_1_accuracy'],
                 student['eval/label_top_1_accuracy']))

  print('\n| labels | examples | supervised baseline | pretrained + fine-tuned (teacher) | '
        'self-distilled student |')
  print('|---|---|---|---|---|')
  for fraction, count, baseline, teacher, student in rows:
    print(f'| {fraction:.0%} | {count} | {100 * baseline:.1f}% | {100 * teacher:.1f}% | '
          f'{100 * student:.1f}% |')
  print('minutes: ' + ', '.join(f'{k} {v:.1f}' for k, v in times.items()))


if __name__ == '__main__':
  main()
