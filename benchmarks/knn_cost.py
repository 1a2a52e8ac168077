"""Seconds per kNN-monitor evaluation on CIFAR-10 (ResNet-18, the README CIFAR-10 settings).

    python benchmarks/knn_cost.py --data_dir /tmp/cifar_tfds [--bank 10000] [--width 64]

One evaluation = `final_avg_pool` features of the bank (a seeded sample of
`--bank` train images spread over the split) and of the 10,000 test images, eval-preprocessed, then the
weighted kNN (k=200, T=0.1). The encoder is randomly initialised: the cost
does not depend on the weights. Prints the machine line first.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from tf2 import hardware  # noqa: E402
from tf2.config import Config  # noqa: E402
from tf2.data import datasets  # noqa: E402
from tf2.evaluation import knn  # noqa: E402
from tf2.models.model import SimCLRModel  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--bank', type=int, default=10000)
  parser.add_argument('--width', type=int, default=64, help='--resnet_base_width')
  args = parser.parse_args()
  print(hardware.describe(), flush=True)
  config = Config(dataset='cifar10', image_size=32, eval_split='test', resnet_depth=18,
                  resnet_base_width=args.width, eval_batch_size=500, knn_bank_size=args.bank,
                  use_tpu=False)
  source = datasets.build_source('cifar10', args.data_dir, ['train', 'test'])
  strategy = tf.distribute.get_strategy()
  model = SimCLRModel(config, 10).build_for()
  knn.knn_accuracy(config, model, strategy, source, 0)  # Warm-up: tracing.
  start = time.time()
  result = knn.knn_accuracy(config, model, strategy, source, 0)
  seconds = time.time() - start
  images = result['eval/knn_bank_size'] + result['eval/knn_num_queries']
  print(f'kNN evaluation, ResNet-18 base width {args.width}, bank {args.bank} + 10000 queries: '
        f'{seconds:.1f} s ({images / seconds:.0f} images/s)')


if __name__ == '__main__':
  main()
