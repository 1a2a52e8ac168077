"""--precision=auto and the emulated-bf16 warning, on faked hardware."""
import logging

import pytest

from tf2 import precision
from tf2.config import Config, ConfigError
from tf2.hardware import Hardware

AVX2 = Hardware('cpu', 'AMD EPYC 7B13', frozenset({'avx2', 'fma'}))
AVX512_BF16 = Hardware('cpu', 'Intel(R) Xeon(R) Processor',
                       frozenset({'avx2', 'avx512f', 'avx512_bf16'}))
AMD_BF16 = Hardware('cpu', 'AMD EPYC', frozenset({'avx2', 'avx512f', 'avx512_bf16'}))
AMX = Hardware('cpu', 'Intel Xeon 8480+', frozenset({'avx2', 'avx512f', 'amx_bf16'}))
NO_FLAGS = Hardware('cpu', 'unknown CPU', None)
T4 = Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'Tesla T4', (7, 5))
V100 = Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'Tesla V100-SXM2-16GB', (7, 0))
P100 = Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'Tesla P100-PCIE-16GB', (6, 0))
A100 = Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'A100-SXM4-40GB', (8, 0))
GPU_UNKNOWN_CC = Hardware('gpu', 'AMD EPYC', frozenset({'avx2'}), 'some GPU', None)
TPU = Hardware('tpu', 'AMD EPYC', frozenset({'avx2'}), tpu_name='TPU_V3')
# ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU: oneDNN's kernels emulate bf16 as on AVX2-only CPUs.
BF16_CAPPED = Hardware('cpu', 'AMD EPYC', frozenset({'avx2', 'avx512f', 'avx512_bf16'}),
                       onednn_max_isa='AVX2')


@pytest.mark.parametrize('hw, expected', [
    (AVX2, 'float32'), (NO_FLAGS, 'float32'), (GPU_UNKNOWN_CC, 'float32'),
    (BF16_CAPPED, 'float32'), (AVX512_BF16, 'float32'),
    (AMD_BF16, 'mixed_bfloat16'), (AMX, 'mixed_bfloat16'), (A100, 'mixed_bfloat16'),
    (TPU, 'mixed_bfloat16')])
def test_auto_picks_bf16_only_where_it_was_measured_faster(hw, expected):
  """Native bf16 on an Intel Xeon with avx512_bf16 and no AMX ran 1.7x slower than float32
  (docs/performance.md): auto must pick float32 there, and bf16 on the AMD EPYC with the
  same flags (1.4-1.7x faster), with AMX, on A100-class GPUs and TPUs."""
  choice = precision.choose('auto', hw)
  assert choice.precision == expected and not choice.warning
  assert choice.message.startswith(f'precision {expected} (auto: ')


@pytest.mark.parametrize('hw, expected', [
    (T4, 'mixed_float16'), (V100, 'mixed_float16'), (P100, 'float32'), (A100, 'mixed_bfloat16')])
def test_auto_picks_float16_on_gpus_with_float16_tensor_cores_only(hw, expected):
  """Compute capability 7.x has float16 tensor cores and no bf16; from 8.0 bf16 needs no
  loss scale; below 7.0 there are no tensor cores."""
  choice = precision.choose('auto', hw)
  assert choice.precision == expected and not choice.warning
  assert choice.message.startswith(f'precision {expected} (auto: {hw.device}')


def test_auto_states_the_reason():
  assert precision.choose('auto', AVX2).message == (
      'precision float32 (auto: CPU AMD EPYC 7B13 without avx512_bf16/amx_bf16)')
  assert 'with avx512_bf16 but without amx_bf16: bf16 measured slower' in (
      precision.choose('auto', AVX512_BF16).message)
  assert 'measured faster than float32 on AMD' in precision.choose('auto', AMD_BF16).message
  assert 'compute capability 7.5' in precision.choose('auto', T4).message
  assert 'avx512_bf16, but ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN from using it' in (
      precision.choose('auto', BF16_CAPPED).message)


@pytest.mark.parametrize('requested, hw, says', [
    *[('mixed_bfloat16', hw, 'many times slower') for hw in (AVX2, T4, NO_FLAGS)],
    *[('mixed_float16', hw, 'Use --precision=auto') for hw in (AVX2, AMX, P100, GPU_UNKNOWN_CC,
                                                                TPU)]])
def test_explicit_mixed_precision_without_native_support_warns_or_refuses(requested, hw, says):
  choice = precision.choose(requested, hw)
  assert choice.warning and choice.precision == requested
  assert hw.device in choice.message and says in choice.message
  with pytest.raises(ConfigError, match='strict_precision'):
    precision.choose(requested, hw, strict=True)


def test_explicit_float16_where_bf16_is_native_on_a_gpu_warns_and_runs():
  """An A100 has float16 tensor cores too: float16 is fast there, only needlessly scaled."""
  choice = precision.choose('mixed_float16', A100, strict=True)
  assert choice.precision == 'mixed_float16' and choice.warning
  assert 'needs no loss scale' in choice.message and 'auto picks mixed_bfloat16' in choice.message


def test_explicit_bf16_where_native_but_measured_slower_warns_and_runs():
  choice = precision.choose('mixed_bfloat16', AVX512_BF16, strict=True)
  assert choice.precision == 'mixed_bfloat16' and choice.warning
  assert 'measured slower than float32' in choice.message


@pytest.mark.parametrize('requested, hw', [
    ('mixed_bfloat16', AMD_BF16), ('mixed_bfloat16', TPU), ('float32', AVX512_BF16),
    ('float64', AVX2), ('float32', AVX2), ('mixed_float16', T4), ('mixed_float16', V100)])
def test_other_choices_are_kept_without_warning(requested, hw):
  choice = precision.choose(requested, hw, strict=True)
  assert choice.precision == requested and not choice.warning


def test_resolve_logs_and_returns_a_concrete_config(caplog):
  caplog.set_level(logging.INFO, logger='absl')  # absl may have been set higher elsewhere.
  caplog.set_level(logging.INFO)
  config = precision.resolve(Config(precision='auto'), AMX)
  assert config.precision == 'mixed_bfloat16'
  assert 'precision mixed_bfloat16 (auto: CPU Intel Xeon 8480+ with amx_bf16)' in caplog.text
  caplog.clear()
  precision.resolve(Config(precision='mixed_bfloat16'), AVX2)
  assert any(r.levelno == logging.WARNING and 'emulated' in r.getMessage()
             for r in caplog.records)


def test_bf16_under_a_onednn_cap_below_its_kernels_is_refused_even_without_strict():
  with pytest.raises(ConfigError, match='ONEDNN_MAX_CPU_ISA=AVX2.*Unset ONEDNN_MAX_CPU_ISA'):
    precision.choose('mixed_bfloat16', BF16_CAPPED)
  assert precision.choose('float32', BF16_CAPPED).precision == 'float32'
  # A cap that keeps the bf16 kernels, or one on a CPU without bf16, changes nothing.
  kept = Hardware('cpu', 'AMD EPYC', frozenset({'avx2', 'avx512f', 'avx512_bf16'}),
                  onednn_max_isa='AVX512_CORE_BF16')
  assert precision.choose('auto', kept).precision == 'mixed_bfloat16'
  plain = Hardware('cpu', 'x', frozenset({'avx2', 'fma'}), onednn_max_isa='AVX2')
  assert precision.choose('mixed_bfloat16', plain).warning
