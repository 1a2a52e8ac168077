"""Catalogue of the released SimCLR checkpoints, and a command that lists it.

    python -m checkpoints.catalogue [--kind pretrained] [--json]

SimCLRv2 (README of google-research/simclr, Table 1 of the SimCLRv2 paper):
13 architectures x {pretrained, finetuned_1pct, finetuned_10pct,
finetuned_100pct, supervised} = 65 models, plus the distilled models whose
architectures the paper documents. SimCLRv1: ResNet-50 1x/2x/4x.

Every entry has the TF1 checkpoint directory (with its `hub/` module), the
tf2 SavedModel directory, the architecture flags for `run.py`, and the
published ImageNet top-1 accuracy of that entry (percent; None where none
was published).
"""
import argparse
import dataclasses
import json
from typing import Optional

TF1_BUCKET = 'gs://simclr-checkpoints'
TF2_BUCKET = 'gs://simclr-checkpoints-tf2'

# (depth, width, sk) -> (params M, F-T 1%, F-T 10%, F-T 100%, linear eval, supervised)
SIMCLRV2_TABLE = {
    (50, 1, False): (24, 57.9, 68.4, 76.3, 71.7, 76.6),
    (50, 1, True): (35, 64.5, 72.1, 78.7, 74.6, 78.5),
    (50, 2, False): (94, 66.3, 73.9, 79.1, 75.6, 77.8),
    (50, 2, True): (140, 70.6, 77.0, 81.3, 77.7, 79.3),
    (101, 1, False): (43, 62.1, 71.4, 78.2, 73.6, 78.0),
    (101, 1, True): (65, 68.3, 75.1, 80.6, 76.3, 79.6),
    (101, 2, False): (170, 69.1, 75.8, 80.7, 77.0, 78.9),
    (101, 2, True): (257, 73.2, 78.8, 82.4, 79.0, 80.1),
    (152, 1, False): (58, 64.0, 73.0, 79.3, 74.5, 78.3),
    (152, 1, True): (89, 70.0, 76.5, 81.3, 77.2, 79.9),
    (152, 2, False): (233, 70.2, 76.6, 81.1, 77.4, 79.1),
    (152, 2, True): (354, 74.2, 79.4, 82.9, 79.4, 80.4),
    (152, 3, True): (795, 74.9, 80.1, 83.1, 79.8, 80.5),
}
SIMCLRV2_KINDS = ('pretrained', 'finetuned_1pct', 'finetuned_10pct', 'finetuned_100pct',
                  'supervised')
# Which column of the table is the entry's own accuracy.
_KIND_COLUMN = {'pretrained': 4, 'finetuned_1pct': 1, 'finetuned_10pct': 2,
                'finetuned_100pct': 3, 'supervised': 5}
# Distillation (SimCLRv2 paper, section 3 and Table 3): self-distillation of
# the largest model; ImageNet top-1 with 1% / 10% of the labels.
SIMCLRV2_DISTILLED = {('distill_1pct', (152, 3, True)): 76.6,
                      ('distill_10pct', (152, 3, True)): 80.9}
# SimCLRv1 (SimCLR paper Tables 6-7): linear eval; fine-tuned on 1% / 10%.
SIMCLRV1_TABLE = {1: (69.1, 48.3, 65.6), 2: (74.2, 58.5, 71.7), 4: (76.6, 63.0, 74.4)}
SIMCLRV1_KINDS = {'pretrain': 0, 'finetune_10pct': 2, 'finetune_100pct': None}


@dataclasses.dataclass(frozen=True)
class Entry:
  version: str            # 'simclrv1' or 'simclrv2'
  kind: str               # e.g. 'pretrained', 'finetuned_10pct', 'distill_1pct'
  arch: str               # e.g. 'r50_1x_sk0'
  resnet_depth: int
  width_multiplier: int
  sk_ratio: float
  num_proj_layers: int
  params_millions: Optional[float]
  top1: Optional[float]   # published ImageNet top-1 (%) of this entry
  tf1_checkpoint: Optional[str]
  tf2_saved_model: str

  @property
  def name(self):
    return f'{self.version}/{self.kind}/{self.arch}'

  def flags(self):
    """run.py flags that build this architecture."""
    return (f'--resnet_depth={self.resnet_depth} --width_multiplier={self.width_multiplier} '
            f'--sk_ratio={self.sk_ratio} --num_proj_layers={self.num_proj_layers} '
            '--image_size=224')


def arch_name(depth, width, sk):
  return f'r{depth}_{width}x_sk{int(sk)}'


def _v2(kind, key, top1):
  depth, width, sk = key
  arch = arch_name(depth, width, sk)
  params = SIMCLRV2_TABLE[key][0]
  return Entry('simclrv2', kind, arch, depth, width, 0.0625 if sk else 0.0, 3, params, top1,
               f'{TF1_BUCKET}/simclrv2/{kind}/{arch}/',
               f'{TF2_BUCKET}/simclrv2/{kind}/{arch}/saved_model/')


def entries():
  out = []
  for kind in SIMCLRV2_KINDS:
    for key, row in SIMCLRV2_TABLE.items():
      out.append(_v2(kind, key, row[_KIND_COLUMN[kind]]))
  for (kind, key), top1 in SIMCLRV2_DISTILLED.items():
    out.append(_v2(kind, key, top1))
  for kind, column in SIMCLRV1_KINDS.items():
    for width, row in SIMCLRV1_TABLE.items():
      arch = f'r50_{width}x_sk0'
      top1 = None if column is None else row[column]
      tf1 = f'{TF1_BUCKET}/simclrv1/{kind}/{width}x/' if kind == 'pretrain' else None
      # SimCLRv1 checkpoints have a linear head but no projection head.
      out.append(Entry('simclrv1', kind, arch, 50, width, 0.0, 0, None, top1, tf1,
                       f'{TF2_BUCKET}/simclrv1/{kind}/{width}x/saved_model/'))
  return out


def find(name):
  """The entry called `version/kind/arch` (as printed by the listing)."""
  for entry in entries():
    if entry.name == name:
      return entry
  raise KeyError(f'No released checkpoint {name!r}; `python -m checkpoints.catalogue` lists them.')


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--kind', help='only this kind (e.g. pretrained, distill_1pct)')
  parser.add_argument('--version', choices=['simclrv1', 'simclrv2'])
  parser.add_argument('--json', action='store_true', help='machine-readable output')
  args = parser.parse_args(argv)
  selected = [e for e in entries() if (args.kind in (None, e.kind)) and
              (args.version in (None, e.version))]
  if args.json:
    print(json.dumps([dict(dataclasses.asdict(e), name=e.name, flags=e.flags())
                      for e in selected], indent=1))
    return
  for e in selected:
    top1 = '-' if e.top1 is None else f'{e.top1:.1f}'
    print(f'{e.name:40s} top-1 {top1:>5s}  {e.flags()}\n    tf2: {e.tf2_saved_model}'
          + (f'\n    tf1: {e.tf1_checkpoint} (hub module: {e.tf1_checkpoint}hub/)'
             if e.tf1_checkpoint else ''))


if __name__ == '__main__':
  main()
