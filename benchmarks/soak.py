"""Soak: a long run of short loops with frequent checkpoints, evaluation and kNN,
and a `--mode=eval` process beside it. Memory must stay flat, nothing may retrace.

    python -m benchmarks.soak [--steps 3000] [--model_dir /tmp/simclr_soak]

Trains the quickstart's model shape (ResNet-18, `shapes`) at 16 px, width 8,
batch 16, 10 steps per call, a checkpoint every 50 steps (keeping 2) with the
kNN monitor and an evaluation at each, through the project's training loop.
A `run.py --mode=eval` process watches the same model_dir. It prints the
machine line, then the peak RSS of both processes every 500 steps, the RSS
growth per 1,000 steps over the second half (after warm-up), and how many
times the step function and the evaluation were traced, and how many
retracing warnings TensorFlow logged.
"""
import argparse
import logging as std_logging
import os
import resource
import shutil
import subprocess
import sys
import time

import tensorflow as tf

from benchmarks.children import ROOT
from tf2 import hardware
from tf2 import runner
from tf2.config import Config
from tf2.evaluation import evaluate
from tf2.evaluation import knn
from tf2.evaluation import results
from tf2.training import loop
from tf2.training.train_step import TrainStep


class RetraceCounter(std_logging.Handler):
  """Counts TensorFlow's 'triggered tf.function retracing' warnings."""

  def __init__(self):
    super().__init__()
    self.count = 0

  def emit(self, record):
    if 'retracing' in record.getMessage():
      self.count += 1


def rss_mb(pid=None):
  """Current resident set size of `pid` (default: this process), in MB."""
  with open(f'/proc/{pid or "self"}/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  return float('nan')


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--steps', type=int, default=3000)
  parser.add_argument('--model_dir', default='/tmp/simclr_soak')
  args = parser.parse_args()
  print(hardware.describe(), flush=True)
  shutil.rmtree(args.model_dir, ignore_errors=True)
  config = Config(dataset='shapes', eval_split='test', image_size=16, resnet_depth=18,
                  resnet_base_width=8, train_batch_size=16, eval_batch_size=100, eval_steps=2,
                  train_steps=args.steps, checkpoint_steps=50, steps_per_loop=10,
                  keep_checkpoint_max=2, knn_eval=True, knn_bank_size=200, use_blur=False,
                  use_tpu=False, mode='train', model_dir=args.model_dir).validate()
  counter = RetraceCounter()
  std_logging.getLogger('tensorflow').addHandler(counter)
  strategy = tf.distribute.get_strategy()
  source = runner.load_source(config)
  model, optimizer = runner.build_model(config, strategy, source.num_classes,
                                        source.num_examples('train'))
  trainer = TrainStep(config, model, optimizer, strategy)
  tf.io.gfile.makedirs(args.model_dir)
  results.write_flags(config, args.model_dir)
  watcher = subprocess.Popen(
      [sys.executable, os.path.join(ROOT, 'run.py'), '--mode=eval', '--dataset=shapes',
       '--eval_split=test', '--image_size=16', '--resnet_depth=18', '--resnet_base_width=8',
       '--train_batch_size=16', '--eval_batch_size=100', '--eval_steps=2',
       f'--train_steps={args.steps}', '--use_blur=False', '--use_tpu=False',
       f'--model_dir={args.model_dir}'],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  monitor = knn.KnnMonitor(config, model, strategy, source, config.checkpoint_steps)
  evaluator = evaluate.Evaluator(config, model, strategy)
  samples = []  # (step, own RSS, watcher RSS)
  start = time.time()

  def on_checkpoint(step):
    monitor(step)
    evaluator(source, step)

  def on_loop_end(step):
    if step % 500 == 0:
      watcher_rss = rss_mb(watcher.pid) if watcher.poll() is None else float('nan')
      samples.append((step, rss_mb(), watcher_rss))
      print(f'step {step}: RSS {samples[-1][1]:.0f} MB, eval process {watcher_rss:.0f} MB, '
            f'{time.time() - start:.0f} s', flush=True)

  try:
    loop.train(config, model, optimizer, strategy, source, args.model_dir,
               on_loop_end=on_loop_end, on_checkpoint=on_checkpoint, trainer=trainer)
    watcher.wait(timeout=600)
  finally:
    if watcher.poll() is None:
      watcher.kill()
  half = [s for s in samples if s[0] >= args.steps // 2]
  if len(half) >= 2:
    (s0, a0, b0), (s1, a1, b1) = half[0], half[-1]
    per_k = 1000 / (s1 - s0)
    print(f'RSS growth per 1,000 steps over steps {s0}-{s1}: training process '
          f'{(a1 - a0) * per_k:+.1f} MB, eval process {(b1 - b0) * per_k:+.1f} MB')
  print(f'peak RSS of the training process: '
        f'{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; '
        f'eval process exit code {watcher.returncode}')
  print(f'step function traces: {trainer.make_loop().experimental_get_tracing_count()}; '
        f'retracing warnings: {counter.count}; '
        f'{args.steps / (time.time() - start):.1f} steps/s')


if __name__ == '__main__':
  main()
