"""Machine description from /proc/cpuinfo text and faked devices."""
from tf2 import hardware

CPUINFO = """processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile
processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile
"""


def test_reads_the_model_and_the_flags_of_the_first_cpu():
  model, flags = hardware.read_cpuinfo(CPUINFO)
  assert model == 'Intel(R) Xeon(R) Platinum 8480+'
  assert {'avx2', 'avx512_bf16', 'amx_bf16'} <= flags and 'sse3' not in flags


def test_unreadable_flags_are_none_not_empty():
  _, flags = hardware.read_cpuinfo('processor : 0\n')
  assert flags is None


def test_describe_names_the_cpu_its_relevant_flags_and_versions():
  model, flags = hardware.read_cpuinfo(CPUINFO)
  line = hardware.describe(hardware.Hardware('cpu', model, flags))
  assert line.startswith('machine: Intel(R) Xeon(R) Platinum 8480+')
  assert '[avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile]' in line
  assert 'TensorFlow 2.' in line and 'Keras 3.' in line
  gpu = hardware.Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'NVIDIA T4', (7, 5))
  assert 'GPU NVIDIA T4 (compute capability 7.5)' in hardware.describe(gpu)
  assert 'flags unknown' in hardware.describe(hardware.Hardware('cpu', 'x', None))


def test_detect_on_this_machine_is_consistent_with_cpuinfo():
  hw = hardware.detect()
  assert hw.kind in ('cpu', 'gpu')
  assert hw.cpu_model == hardware.read_cpuinfo()[0]


def test_a_onednn_cap_removes_the_flags_above_it():
  _, flags = hardware.read_cpuinfo(CPUINFO)
  usable = hardware.onednn_usable
  assert usable(flags, 'AVX2') == flags - {'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}
  assert 'sse2' in usable(flags, 'AVX2')  # flags oneDNN does not rank are kept
  assert usable(flags, 'avx512_core_bf16') == flags - {'amx_bf16', 'amx_tile'}
  assert usable(flags, 'AVX512_CORE_AMX') == flags == usable(flags, 'ALL')
  assert usable(flags, '') == flags == usable(flags, 'NOT_AN_ISA')
  assert usable(None, 'AVX2') is None


def test_detect_and_describe_report_the_onednn_cap(monkeypatch):
  monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', 'AVX2')
  hw = hardware.detect()
  assert hw.onednn_max_isa == 'AVX2'
  assert not {'avx512f', 'avx512_bf16'} & (hw.usable_cpu_flags or set())
  model, flags = hardware.read_cpuinfo(CPUINFO)
  line = hardware.describe(hardware.Hardware('cpu', model, flags, onednn_max_isa='AVX2'))
  assert '[avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile], oneDNN capped at AVX2 (uses [avx2 fma])' in line
