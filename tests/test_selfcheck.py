"""python -m tf2.selfcheck on this CPU, split into 8 logical devices as conftest does: it
passes here, and a check broken on purpose fails it with exit status 1. (Run as a command,
on a CPU it splits the CPU itself: docs/distributed.md#running-on-new-hardware.)"""
import json

import pytest
import tensorflow as tf

from tf2 import selfcheck
from tf2.training import nt_xent


def run(tmp_path, capsys, monkeypatch, strategy8, *extra):
  """main() on the suite's 8-replica strategy: a second MirroredStrategy over the same
  devices in one process would collide with it in the collectives' keys."""
  monkeypatch.setattr(selfcheck, 'strategies_here',
                      lambda tpu: (tf.distribute.get_strategy(), strategy8))
  path = tmp_path / 'selfcheck.json'
  status = selfcheck.main(['--quick', '--steps', '1', '--json', str(path), *extra])
  printed = capsys.readouterr().out
  return status, printed, {c['name']: c for c in json.loads(path.read_text())['checks']}


def test_it_passes_here_on_eight_replicas_with_its_table_and_json(tmp_path, capsys, monkeypatch,
                                                                   strategy8):
  status, printed, checks = run(tmp_path, capsys, monkeypatch, strategy8,
                                '--precisions', 'mixed_float16')
  assert status == 0, printed
  assert printed.splitlines()[0].startswith('machine: ') and 'all checks passed' in printed
  assert list(checks) == ['setup', 'replicas', 'xla', 'precision mixed_float16', 'export',
                          'speed small float32', 'speed small mixed_float16', 'speed input']
  assert all(c['status'] == selfcheck.PASS for c in checks.values())
  assert checks['replicas']['detail'].startswith('8 replicas against one device')
  # The bounds are those of the tests: float32 replicas agree far inside theirs.
  assert checks['replicas']['figures']['update_error'] < 1e-3
  assert checks['precision mixed_float16']['figures']['finite']
  assert checks['speed input']['figures']['input_images_per_second'] > 0
  for name in ('replicas', 'xla', 'precision mixed_float16', 'export', 'speed small float32'):
    assert f'{name}  ' in printed  # A table row for each.


def test_a_check_broken_on_purpose_fails_it(tmp_path, capsys, monkeypatch, strategy8):
  """NT-Xent without the other replicas' negatives: each replica's loss is over its own
  examples, no longer one device's over the whole batch. (The checks on one device, run by
  the test above, are left out: they cannot see this.)"""
  monkeypatch.setattr(nt_xent, 'cross_replica_concat', tf.identity)
  for name in ('xla_check', 'export_check'):
    monkeypatch.setattr(selfcheck, name, lambda *args, name=name: selfcheck.Check(
        name, selfcheck.NA, 'left out'))
  monkeypatch.setattr(selfcheck, 'speed_checks', lambda *args: [])
  status, printed, checks = run(tmp_path, capsys, monkeypatch, strategy8)
  assert status == 1
  assert checks['replicas']['status'] == selfcheck.FAIL
  assert checks['replicas']['figures'].get('loss_error', 0) > 1e-2, checks['replicas']['detail']
  assert [name for name, c in checks.items() if c['status'] == selfcheck.FAIL] == ['replicas']
  assert '1 check(s) failed: replicas' in printed
  assert checks['precision']['status'] == selfcheck.NA  # No native bf16 or float16 on CPUs.


@pytest.mark.parametrize('precisions, expected', [
    (None, []), (['float32', 'mixed_float16'], ['mixed_float16'])])
def test_only_native_mixed_precisions_are_checked_unless_asked(precisions, expected):
  from tf2 import hardware  # pylint: disable=g-import-not-at-top
  cpu = hardware.Hardware('cpu', 'AMD EPYC 7B13', frozenset({'avx2', 'fma'}))
  assert selfcheck.offered_precisions(cpu, precisions) == expected
  t4 = hardware.Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'Tesla T4', (7, 5))
  a100 = hardware.Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'A100', (8, 0))
  assert selfcheck.offered_precisions(t4, None) == ['mixed_float16']
  assert selfcheck.offered_precisions(a100, None) == ['mixed_bfloat16']
