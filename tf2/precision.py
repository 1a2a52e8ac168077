"""Choosing the precision: `--precision=auto` and the warning for emulated bf16.

bf16 compute (`mixed_bfloat16`) is fast only where the hardware has it
natively: TPUs, GPUs of compute capability 8.0 or more, CPUs with
`avx512_bf16` or `amx_bf16`. Elsewhere it is emulated: a ResNet-18 CIFAR
training step ran 57x slower than float32 on an AVX2-only AMD EPYC. `auto`
picks mixed_bfloat16 where bf16 is native and float32 otherwise (float16 with
loss scaling is not offered). An explicit `mixed_bfloat16` without native
bf16 is logged as a warning naming the device, or refused with
`--strict_precision`. With oneDNN capped below the CPU's bf16 kernels
(`ONEDNN_MAX_CPU_ISA`), `auto` picks float32 and mixed_bfloat16 is refused.
"""
import dataclasses

from absl import logging

from tf2.config import ConfigError

NATIVE_BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
EMULATED_BF16_SLOWDOWN = ('about 57x slower than float32 per ResNet-18 training step, measured '
                          'on an AVX2-only AMD EPYC')


def bf16_capped_out(hw):
  """True on a bf16 CPU whose oneDNN is capped below its bf16 kernels (ONEDNN_MAX_CPU_ISA).

  TensorFlow still routes bf16 convolutions to oneDNN there (the CPU has the
  flag), and oneDNN, left without a kernel, fails them ("could not create a
  primitive descriptor for the convolution"); measured with
  ONEDNN_MAX_CPU_ISA=AVX2 on an avx512_bf16 AMD EPYC, TF 2.21.
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
  if requested == 'auto':
    precision = 'mixed_bfloat16' if native else 'float32'
    return Choice(precision, f'precision {precision} (auto: {reason})')
  if requested == 'mixed_bfloat16' and not native:
    message = (f'--precision=mixed_bfloat16 on {reason}: bf16 will be emulated, expect it to be '
               f'far slower than float32 ({EMULATED_BF16_SLOWDOWN}). Use --precision=float32 '
               'or --precision=auto.')
    if strict:
      raise ConfigError(message + ' (refused because --strict_precision=True)')
    return Choice(requested, message, warning=True)
  return Choice(requested, f'precision {requested} (as requested; {reason})')


def resolve(config, hw):
  """`config` with a concrete precision; logs the choice and its reason."""
  choice = choose(config.precision, hw, config.strict_precision)
  (logging.warning if choice.warning else logging.info)(choice.message)
  return config.replace(precision=choice.precision)
