"""Choosing the precision: `--precision=auto` and the warnings for slow mixed precision.

bf16 compute (`mixed_bfloat16`) is native on TPUs, GPUs of compute
capability 8.0 or more and CPUs with `avx512_bf16` or `amx_bf16`; elsewhere
it is emulated and many times slower than float32. Native is not always
faster on CPUs (the measurements behind the rules below are in
docs/performance.md#precision). float16 with dynamic loss scaling
(`mixed_float16`) is for GPUs of compute capability 7.x (V100, T4): float16
tensor cores, no bf16. So `auto` picks mixed_float16 on GPUs of compute
capability 7.x; mixed_bfloat16 on TPUs, on GPUs from compute capability 8.0,
and on CPUs with AMX or AMD CPUs with avx512_bf16; float32 everywhere else.
An explicit mixed precision where it is not native is logged as a warning
naming the device, or refused with `--strict_precision`; bf16 where it is
native but slower, and float16 where bf16 is native (GPUs from 8.0), are
warnings. With oneDNN capped below the CPU's bf16
kernels (`ONEDNN_MAX_CPU_ISA`), `auto` picks float32 and mixed_bfloat16 is
refused.
"""
import dataclasses

from absl import logging

from tf2.errors import ConfigError

NATIVE_BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
PERFORMANCE_PAGE = 'docs/performance.md'


def bf16_capped_out(hw):
  """True on a bf16 CPU whose oneDNN is capped below its bf16 kernels (ONEDNN_MAX_CPU_ISA).

  TensorFlow still routes bf16 convolutions to oneDNN there (the CPU has the
  flag), and oneDNN, left without a kernel, fails them ("could not create a
  primitive descriptor for the convolution"; docs/performance.md#precision).
  """
  return (hw.kind == 'cpu' and hw.cpu_flags is not None
          and any(f in hw.cpu_flags for f in NATIVE_BF16_CPU_FLAGS)
          and not any(f in hw.usable_cpu_flags for f in NATIVE_BF16_CPU_FLAGS))


def native_bf16(hw):
  """(bool, reason): whether `hw` computes bf16 natively, and why we think so."""
  if hw.kind == 'tpu':
    return True, 'TPU: bf16 is native'
  if hw.kind == 'gpu':
    cc = hw.gpu_compute_capability
    if cc is not None and tuple(cc) >= (8, 0):
      return True, f'{hw.device}: bf16 is native from compute capability 8.0'
    return False, f'{hw.device}: no native bf16 below compute capability 8.0'
  if hw.cpu_flags is None:
    return False, f'{hw.device}: CPU flags unknown, bf16 assumed emulated'
  found = [f for f in NATIVE_BF16_CPU_FLAGS if f in hw.usable_cpu_flags]
  if found:
    return True, f'{hw.device} with {"/".join(found)}'
  if bf16_capped_out(hw):
    flags = '/'.join(f for f in NATIVE_BF16_CPU_FLAGS if f in hw.cpu_flags)
    return False, (f'{hw.device} with {flags}, but ONEDNN_MAX_CPU_ISA='
                   f'{hw.onednn_max_isa} keeps oneDNN from using it')
  return False, f'{hw.device} without {"/".join(NATIVE_BF16_CPU_FLAGS)}'


def native_float16(hw):
  """(bool, reason): whether `hw` has float16 tensor cores that `auto` should use: GPUs of
  compute capability 7.x (V100, T4). From 8.0 bf16 is as fast and needs no loss scaling;
  below 7.0 there are no tensor cores (and consumer Pascal cards run float16 slowly)."""
  cc = tuple(hw.gpu_compute_capability or ()) if hw.kind == 'gpu' else None
  if cc and (7, 0) <= cc < (8, 0):
    return True, f'{hw.device}: float16 tensor cores, no native bf16'
  if cc and cc >= (8, 0):
    return False, f'{hw.device}: bf16 is as fast as float16 there and needs no loss scale'
  if hw.kind == 'gpu':
    return False, (f'{hw.device}: no float16 tensor cores below compute capability 7.0' if cc
                   else f'{hw.device}: compute capability unknown')
  return False, f'{hw.device}: float16 is for GPUs of compute capability 7.x'


def bf16_faster(hw):
  """(bool, reason): whether bf16 is expected to beat float32 on `hw` (what `auto` follows).

  On CPUs that is AMX, or avx512_bf16 on AMD; not avx512_bf16 without AMX on
  other CPUs (Intel; docs/performance.md#precision).
  """
  native, reason = native_bf16(hw)
  if not native or hw.kind != 'cpu':
    return native, reason
  if 'amx_bf16' in hw.usable_cpu_flags:
    return True, reason
  if 'AMD' in hw.cpu_model.upper():
    return True, f'{reason}: bf16 measured faster than float32 on AMD CPUs with it'
  return False, (f'{reason} but without amx_bf16: bf16 measured slower than float32 on '
                 f'such CPUs ({PERFORMANCE_PAGE})')


@dataclasses.dataclass(frozen=True)
class Choice:
  precision: str
  message: str
  warning: bool = False


def choose(requested, hw, strict=False):
  """The precision to run for `--precision=requested` on `hw`; ConfigError if it cannot run.

  Refused: mixed_bfloat16 where bf16 is emulated and `strict`, and always
  where oneDNN is capped below the CPU's bf16 kernels (it would fail).
  """
  native, reason = native_bf16(hw)
  if requested == 'mixed_bfloat16' and bf16_capped_out(hw):
    raise ConfigError(
        f'--precision=mixed_bfloat16 on {reason}: TensorFlow sends bf16 convolutions to '
        'oneDNN, which then has no kernel for them and fails ("could not create a primitive '
        'descriptor"). Unset ONEDNN_MAX_CPU_ISA (or set it to AVX512_CORE_BF16 or higher), or '
        'use --precision=float32 or --precision=auto.')
  faster, fast_reason = bf16_faster(hw)
  float16, float16_reason = native_float16(hw)
  if requested == 'auto':
    if float16:
      return Choice('mixed_float16', f'precision mixed_float16 (auto: {float16_reason})')
    precision = 'mixed_bfloat16' if faster else 'float32'
    return Choice(precision, f'precision {precision} (auto: {fast_reason})')
  if requested == 'mixed_float16' and not float16:
    if native and hw.kind == 'gpu':  # Fast too, with a loss scale bf16 does without.
      return Choice(requested, f'--precision=mixed_float16 on {float16_reason}: '
                    '--precision=auto picks mixed_bfloat16.', warning=True)
    message = (f'--precision=mixed_float16 on {float16_reason}: expect no speed-up over '
               'float32 (float16 is not native here). Use --precision=auto.')
    if strict:
      raise ConfigError(message + ' (refused because --strict_precision=True)')
    return Choice(requested, message, warning=True)
  if requested == 'mixed_bfloat16' and not native:
    message = (f'--precision=mixed_bfloat16 on {reason}: bf16 will be emulated, expect it to be '
               f'many times slower than float32 ({PERFORMANCE_PAGE}). Use --precision=float32 '
               'or --precision=auto.')
    if strict:
      raise ConfigError(message + ' (refused because --strict_precision=True)')
    return Choice(requested, message, warning=True)
  if requested == 'mixed_bfloat16' and not faster:
    return Choice(requested, f'--precision=mixed_bfloat16 on {fast_reason}. Use '
                  '--precision=float32 or --precision=auto for speed.', warning=True)
  return Choice(requested, f'precision {requested} (as requested; {reason})')


def resolve(config, hw):
  """`config` with a concrete precision; logs the choice and its reason."""
  choice = choose(config.precision, hw, config.strict_precision)
  (logging.warning if choice.warning else logging.info)(choice.message)
  return config.replace(precision=choice.precision)
