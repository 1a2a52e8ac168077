"""Backbone parameter counts against the SimCLRv2 table (millions, without heads).

    python -m tf2.models.param_count            # all 13 published architectures
    python -m tf2.models.param_count r50_1x_sk1 # some of them

Each encoder is built for real (on a 32x32 ImageNet-stem input: the count does
not depend on the image size) and its trainable parameters are counted.
"""
import gc
import sys

import numpy as np
import tensorflow as tf

from tf2.models.resnet import LayerArgs, ResNet

SK_RATIO = 0.0625

# (depth, width, sk) -> published backbone size in millions (SimCLRv2 table 1).
PUBLISHED_MILLIONS = {
    (50, 1, False): 24, (50, 1, True): 35, (50, 2, False): 94, (50, 2, True): 140,
    (101, 1, False): 43, (101, 1, True): 65, (101, 2, False): 170, (101, 2, True): 257,
    (152, 1, False): 58, (152, 1, True): 89, (152, 2, False): 233, (152, 2, True): 354,
    (152, 3, True): 795,
}


def arch_name(depth, width, sk):
  return f'r{depth}_{width}x_sk{int(sk)}'


def backbone_parameters(depth, width, sk):
  encoder = ResNet(depth, width, cifar_stem=False, args=LayerArgs(sk_ratio=SK_RATIO if sk else 0.0))
  encoder(tf.zeros([1, 32, 32, 3]))
  count = sum(int(np.prod(v.shape)) for v in encoder.trainable_variables)
  del encoder
  gc.collect()
  return count


def main(argv):
  wanted = set(argv[1:])
  worst = 0.0
  print(f'{"architecture":<14}{"ours (M)":>10}{"published":>11}{"diff":>8}')
  for (depth, width, sk), published in PUBLISHED_MILLIONS.items():
    name = arch_name(depth, width, sk)
    if wanted and name not in wanted:
      continue
    millions = backbone_parameters(depth, width, sk) / 1e6
    worst = max(worst, abs(millions - published))
    print(f'{name:<14}{millions:>10.2f}{published:>11}{millions - published:>+8.2f}')
  print(f'largest difference to the published (whole-million) figure: {worst:.2f} M')
  return 0 if worst < 1.0 else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv))
