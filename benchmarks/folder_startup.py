"""Start-up cost of an image-folder dataset: the scan of a split, first and second start.

    python -m benchmarks.folder_startup --folder DIR [--split train]

DIR is an ImageNet-style folder (DIR/<split>/<class>/*.jpg), e.g. CIFAR-10 as
JPEGs unpacked. The first start decodes every image once to find the
unreadable ones (splits of up to 100,000 images); it caches the result per
file (path, size, mtime), so the second start, on unchanged files, only
lists and stats them. Both use a fresh cache directory of their own, so the
figures do not depend on an earlier run. Prints the machine line first.
"""
import argparse
import tempfile
import time

from tf2 import hardware
from tf2.data import datasets


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--folder', required=True)
  parser.add_argument('--split', default='train')
  args = parser.parse_args()
  print(hardware.describe(), flush=True)
  with tempfile.TemporaryDirectory() as cache:
    for start in ('first start (decodes every image)', 'second start (cached scan)'):
      began = time.time()
      source = datasets.build_source(args.folder, None, [args.split], scan_cache_dir=cache)
      print(f'{start}: {time.time() - began:.1f} s for {source.num_examples(args.split)} '
            f'images ({len(source.skipped_files)} unreadable)', flush=True)


if __name__ == '__main__':
  main()
