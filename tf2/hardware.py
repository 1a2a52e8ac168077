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


@dataclasses.dataclass(frozen=True)
class Hardware:
  kind: str  # 'tpu', 'gpu' or 'cpu': where the replicas run.
  cpu_model: str = 'unknown CPU'
  cpu_flags: Optional[FrozenSet[str]] = None  # None: could not be read.
  gpu_name: str = ''
  gpu_compute_capability: Optional[Tuple[int, int]] = None
  tpu_name: str = ''

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
  if strategy is not None and 'TPU' in type(strategy).__name__:
    devices = tf.config.list_logical_devices('TPU')
    name = devices[0].device_type if devices else 'TPU'
    return Hardware('tpu', model, flags, tpu_name=name)
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return Hardware('gpu', model, flags, gpu_name=details.get('device_name', gpus[0].name),
                    gpu_compute_capability=details.get('compute_capability'))
  return Hardware('cpu', model, flags)


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
  if hw.kind != 'cpu':
    line += f'; {hw.device}'
  return f'{line}; TensorFlow {tf.__version__}, Keras {keras.__version__}'
