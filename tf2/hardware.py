"""What the machine is: accelerator kind, GPU compute capability, CPU model and flags.

`Hardware` is a plain value so that decisions taken from it (the precision,
see `tf2/precision.py`) are tested with faked inputs, independent of the
machine the tests run on. `describe()` is the machine line every benchmark
prints next to its figures.
"""
import dataclasses
import os
import platform
from typing import FrozenSet, Optional, Tuple

# CPU flags that decide speed here: vector width and native bf16 matmuls.
RELEVANT_CPU_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')

# oneDNN's instruction-set levels in increasing order (values of the
# ONEDNN_MAX_CPU_ISA environment variable), and the lowest level at which it
# uses each relevant flag. A cap below a flag's level makes oneDNN ignore it:
# ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 bf16 CPU leaves it without bf16
# kernels (see tf2/precision.py for what that does to bf16 training).
ONEDNN_ISA_LEVELS = ('SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX2_VNNI_2', 'AVX512_CORE',
                     'AVX512_CORE_VNNI', 'AVX512_CORE_BF16', 'AVX10_1_512', 'AVX512_CORE_FP16',
                     'AVX10_1_512_AMX', 'AVX512_CORE_AMX', 'AVX10_1_512_AMX_FP16', 'ALL')
_FLAG_LEVEL = {'avx2': 'AVX2', 'fma': 'AVX2', 'avx512f': 'AVX512_CORE',
               'avx512_bf16': 'AVX512_CORE_BF16', 'amx_bf16': 'AVX10_1_512_AMX',
               'amx_tile': 'AVX10_1_512_AMX'}


def onednn_usable(flags, max_isa):
  """The CPU flags oneDNN may use under the cap `max_isa` ('' or unknown: no cap)."""
  cap = (max_isa or '').upper()
  if flags is None or cap not in ONEDNN_ISA_LEVELS:
    return flags
  top = ONEDNN_ISA_LEVELS.index(cap)
  return frozenset(f for f in flags
                   if f not in _FLAG_LEVEL or ONEDNN_ISA_LEVELS.index(_FLAG_LEVEL[f]) <= top)


@dataclasses.dataclass(frozen=True)
class Hardware:
  kind: str  # 'tpu', 'gpu' or 'cpu': where the replicas run.
  cpu_model: str = 'unknown CPU'
  cpu_flags: Optional[FrozenSet[str]] = None  # None: could not be read.
  gpu_name: str = ''
  gpu_compute_capability: Optional[Tuple[int, int]] = None
  tpu_name: str = ''
  onednn_max_isa: str = ''  # ONEDNN_MAX_CPU_ISA, if set: the kernels' instruction-set cap.

  @property
  def usable_cpu_flags(self) -> Optional[FrozenSet[str]]:
    """The CPU flags the math kernels may use: cpu_flags under the oneDNN cap."""
    return onednn_usable(self.cpu_flags, self.onednn_max_isa)

  @property
  def device(self) -> str:
    if self.kind == 'tpu':
      return f'TPU {self.tpu_name}'.strip()
    if self.kind == 'gpu':
      cc = self.gpu_compute_capability
      return f'GPU {self.gpu_name}' + (f' (compute capability {cc[0]}.{cc[1]})' if cc else '')
    return f'CPU {self.cpu_model}'


def read_cpuinfo(text=None):
  """(model name, set of flags or None) from /proc/cpuinfo text (Linux)."""
  if text is None:
    try:
      with open('/proc/cpuinfo') as f:
        text = f.read()
    except OSError:
      text = ''
  model, flags = None, None
  for line in text.splitlines():
    key, _, value = line.partition(':')
    if key.strip() == 'model name' and model is None:
      model = value.strip()
    elif key.strip() == 'flags' and flags is None:
      flags = frozenset(value.split())
  return model or platform.processor() or 'unknown CPU', flags


def detect(strategy=None):
  """The Hardware of this process; TPU when the strategy is a TPUStrategy."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  model, flags = read_cpuinfo()
  cap = os.environ.get('ONEDNN_MAX_CPU_ISA') or os.environ.get('DNNL_MAX_CPU_ISA', '')
  if strategy is not None and 'TPU' in type(strategy).__name__:
    devices = tf.config.list_logical_devices('TPU')
    name = devices[0].device_type if devices else 'TPU'
    return Hardware('tpu', model, flags, tpu_name=name, onednn_max_isa=cap)
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return Hardware('gpu', model, flags, gpu_name=details.get('device_name', gpus[0].name),
                    gpu_compute_capability=details.get('compute_capability'),
                    onednn_max_isa=cap)
  return Hardware('cpu', model, flags, onednn_max_isa=cap)


def describe(hardware=None):
  """One line: the device, the CPU and its relevant flags, TF and Keras versions."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  hw = hardware or detect()
  if hw.cpu_flags is None:
    flags = 'flags unknown'
  else:
    flags = ' '.join(f for f in RELEVANT_CPU_FLAGS if f in hw.cpu_flags) or 'none of ' + '/'.join(
        RELEVANT_CPU_FLAGS)
  line = f'machine: {hw.cpu_model}, {os.cpu_count()} cores, flags [{flags}]'
  if hw.onednn_max_isa:
    usable = ' '.join(f for f in RELEVANT_CPU_FLAGS if f in (hw.usable_cpu_flags or ()))
    line += f', oneDNN capped at {hw.onednn_max_isa} (uses [{usable}])'
  if hw.kind != 'cpu':
    line += f'; {hw.device}'
  return f'{line}; TensorFlow {tf.__version__}, Keras {keras.__version__}'
