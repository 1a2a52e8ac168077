"""Seconds per kNN-monitor evaluation on CIFAR-10 (ResNet-18, the README CIFAR-10 settings,
`recipes.py`).

    python -m benchmarks.knn_cost --data_dir /tmp/cifar_tfds [--bank 10000] [--queries 0]
        [--width 64]

One evaluation = `final_avg_pool` features of the bank (a seeded sample of
`--bank` train images spread over the split) and of the queries (`--queries`
test images, 0: all 10,000), eval-preprocessed, then the weighted kNN (k=200,
T=0.1). The encoder is randomly initialised: the cost
does not depend on the weights. Prints the machine line first.
"""
import argparse
import time

import tensorflow as tf

import recipes
from tf2 import hardware
from tf2.data import datasets
from tf2.evaluation import features
from tf2.evaluation import knn
from tf2.models.model import SimCLRModel


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--bank', type=int, default=10000)
  parser.add_argument('--queries', type=int, default=0, help='--knn_num_queries (0: all)')
  parser.add_argument('--width', type=int, default=64, help='--resnet_base_width')
  args = parser.parse_args()
  print(hardware.describe(), flush=True)
  config = recipes.config('cifar10_pretrain', resnet_base_width=args.width,
                          eval_batch_size=500, knn_bank_size=args.bank,
                          knn_num_queries=args.queries)
  source = datasets.build_source('cifar10', args.data_dir, ['train', 'test'])
  strategy = tf.distribute.get_strategy()
  model = SimCLRModel(config, 10).build_for()
  extractor = features.FeatureExtractor(config, model, strategy)  # as the monitor keeps it
  knn.knn_accuracy(config, model, strategy, source, 0, extractor)  # Warm-up: tracing.
  start = time.time()
  result = knn.knn_accuracy(config, model, strategy, source, 0, extractor)
  seconds = time.time() - start
  images = result['eval/knn_bank_size'] + result['eval/knn_num_queries']
  print(f'kNN evaluation, ResNet-18 base width {args.width}, bank '
        f'{int(result["eval/knn_bank_size"])} + {int(result["eval/knn_num_queries"])} queries: '
        f'{seconds:.1f} s ({images / seconds:.0f} images/s)')


if __name__ == '__main__':
  main()
