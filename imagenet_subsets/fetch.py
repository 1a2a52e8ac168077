"""Downloads and verifies the ImageNet 1% / 10% label-subset file lists.

    python -m imagenet_subsets.fetch --out_dir DIR [--subset 1percent|10percent|all]

The lists are published with the original SimCLR code; this project does not
ship them. Each download is checked against its line count and sha256 before
it is written; a mismatch writes nothing and exits non-zero. Then train on a
subset with `--train_split=DIR/1percent.txt` (or `train:DIR/1percent.txt`).
"""
import argparse
import hashlib
import os
import sys
import urllib.request

BASE_URL = 'https://raw.githubusercontent.com/google-research/simclr/master/imagenet_subsets/'

SUBSETS = {
    '1percent': dict(lines=12811,
                     sha256='71e82a48ba78252683ae334c4d019ebd5c6e855b9599c1389fbe83eb9549cf17'),
    '10percent': dict(lines=128116,
                      sha256='6d09de11e7bdaf5b1f3b1f249b6183695f97310cdd20f0c03e7235b6b9392091'),
}


def verify(name, data):
  """Raises ValueError unless `data` is exactly the published list `name`."""
  expected = SUBSETS[name]
  lines = data.decode('ascii').split()
  if len(lines) != expected['lines']:
    raise ValueError(f'{name}: {len(lines)} lines, expected {expected["lines"]}.')
  digest = hashlib.sha256(data).hexdigest()
  if digest != expected['sha256']:
    raise ValueError(f'{name}: sha256 {digest}, expected {expected["sha256"]}.')


def fetch(name, out_dir, timeout=60):
  with urllib.request.urlopen(BASE_URL + name + '.txt', timeout=timeout) as response:
    data = response.read()
  verify(name, data)
  path = os.path.join(out_dir, name + '.txt')
  with open(path, 'wb') as f:
    f.write(data)
  return path


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out_dir', required=True)
  parser.add_argument('--subset', default='all', choices=['all'] + sorted(SUBSETS))
  args = parser.parse_args(argv)
  os.makedirs(args.out_dir, exist_ok=True)
  names = sorted(SUBSETS) if args.subset == 'all' else [args.subset]
  for name in names:
    try:
      print('verified and wrote', fetch(name, args.out_dir))
    except (OSError, ValueError) as e:
      print(f'{name}: {e}', file=sys.stderr)
      return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
