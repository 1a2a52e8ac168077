"""The catalogue of released checkpoints: counts, locations, figures; every architecture builds."""
import pytest

from checkpoints import catalogue
from checkpoints import convert
from checkpoints import layouts
from tf2.config import Config
from tf2.models.model import SimCLRModel


def test_simclrv2_has_13_architectures_times_5_kinds():
  v2 = [e for e in catalogue.entries() if e.version == 'simclrv2'
        and e.kind in catalogue.SIMCLRV2_KINDS]
  assert len(v2) == 65 and len({e.name for e in v2}) == 65
  archs = {e.arch for e in v2}
  assert len(archs) == 13 and 'r152_3x_sk1' in archs and 'r50_1x_sk0' in archs
  first = catalogue.find('simclrv2/finetuned_10pct/r50_1x_sk0')
  assert first.top1 == 68.4
  assert first.tf1_checkpoint == 'gs://simclr-checkpoints/simclrv2/finetuned_10pct/r50_1x_sk0/'
  assert first.tf2_saved_model == (
      'gs://simclr-checkpoints-tf2/simclrv2/finetuned_10pct/r50_1x_sk0/saved_model/')
  assert catalogue.find('simclrv2/pretrained/r152_3x_sk1').top1 == 79.8  # linear eval
  assert catalogue.find('simclrv2/supervised/r50_2x_sk1').params_millions == 140


def test_simclrv1_and_distilled_entries():
  v1 = [e for e in catalogue.entries() if e.version == 'simclrv1']
  assert {e.kind for e in v1} == {'pretrain', 'finetune_10pct', 'finetune_100pct'}
  assert [catalogue.find(f'simclrv1/pretrain/r50_{w}x_sk0').top1 for w in (1, 2, 4)] == [
      69.1, 74.2, 76.6]
  assert catalogue.find('simclrv1/pretrain/r50_4x_sk0').tf2_saved_model == (
      'gs://simclr-checkpoints-tf2/simclrv1/pretrain/4x/saved_model/')
  assert {e.kind for e in catalogue.entries() if e.kind.startswith('distill')} == {
      'distill_1pct', 'distill_10pct'}
  with pytest.raises(KeyError, match='catalogue'):
    catalogue.find('simclrv2/pretrained/r18_1x_sk0')


def test_listing_command(capsys):
  catalogue.main(['--kind', 'supervised'])
  out = capsys.readouterr().out
  assert sum(l.startswith('simclrv2/supervised/') for l in out.splitlines()) == 13 and '--sk_ratio=0.0625' in out


@pytest.mark.parametrize('arch', sorted({(e.resnet_depth, e.width_multiplier, e.sk_ratio)
                                         for e in catalogue.entries()}))
def test_every_architecture_builds_and_is_recognised(arch):
  """Built shape-only at 1/8 of the channels (the topology is the same), then the
  converter's inference must recover depth, width and SK from the TF1 tensors."""
  depth, width, sk = arch
  config = Config(resnet_depth=depth, width_multiplier=width, sk_ratio=sk, image_size=224,
                  resnet_base_width=8, use_tpu=False)
  model = SimCLRModel(config, 1000).build_for(image_size=32)
  tensors = [(n, list(v.shape)) for n, v in zip(layouts.tf1_names(model), model.variables)
             if '/kernel' in n]
  inferred, classes = convert.infer_config(tensors, 'tf1', base_width=8)
  assert (inferred.resnet_depth, inferred.width_multiplier, inferred.sk_ratio) == arch
  assert classes == 1000 and inferred.num_proj_layers == 3
