"""The frozen configuration object that flows from run.py into every module.

`run.py` turns absl flags into a `Config`; nothing under `tf2/` reads flags.
Field names, types and defaults are those of the original SimCLR `run.py`
flags (TF1 and tf2 sets together); fields marked NEW are capabilities the
original does not have.
"""
import dataclasses
from typing import Optional

TRAIN_MODES = ('pretrain', 'finetune', 'distill')
MODES = ('train', 'eval', 'train_then_eval')
OPTIMIZERS = ('momentum', 'adam', 'lars')
LR_SCALINGS = ('linear', 'sqrt')
PROJ_HEAD_MODES = ('none', 'linear', 'nonlinear')
RESNET_DEPTHS = (18, 34, 50, 101, 152, 200)
COLOR_JITTER_IMPLS = ('simclrv1', 'simclrv2')
# The ResNet with the CIFAR stem (image_size <= 32) downsamples 8x.
MIN_IMAGE_SIZE = 8
PRECISIONS = ('float32', 'mixed_bfloat16', 'float64', 'auto')


class ConfigError(ValueError):
  """A setting, or a combination of settings, that cannot work; names the flag."""


@dataclasses.dataclass(frozen=True)
class Config:
  """Every setting of a SimCLR run. Immutable; derive variants with `replace`."""
  # Optimisation.
  learning_rate: float = 0.3
  learning_rate_scaling: str = 'linear'
  warmup_epochs: float = 10
  weight_decay: float = 1e-6
  momentum: float = 0.9
  optimizer: str = 'lars'
  # NEW: LARS trust coefficient (the original hard-codes 0.001).
  lars_eeta: float = 0.001
  # Batches, steps, epochs.
  train_batch_size: int = 512
  train_epochs: int = 100
  train_steps: int = 0
  eval_batch_size: int = 256
  eval_steps: int = 0
  checkpoint_epochs: int = 1
  checkpoint_steps: int = 0
  train_summary_steps: int = 100
  # NEW: training steps per tf.function call (0: sized to log_every_secs).
  steps_per_loop: int = 0
  # NEW: kNN monitor (weighted kNN on final_avg_pool, Wu et al. 2018) at every checkpoint.
  knn_eval: bool = False
  knn_k: int = 200
  knn_temperature: float = 0.1
  knn_bank_size: int = 10000
  # NEW: target seconds between progress lines (0: one line per checkpoint/summary interval).
  log_every_secs: float = 30.0
  # Data.
  dataset: str = 'imagenet2012'
  data_dir: Optional[str] = None
  train_split: str = 'train'
  eval_split: str = 'validation'
  cache_dataset: bool = False
  image_size: int = 224
  color_jitter_strength: float = 1.0
  # NEW: 'simclrv2' multiplicative or 'simclrv1' additive brightness.
  color_jitter_impl: str = 'simclrv2'
  use_blur: bool = True
  # NEW: stop at the first unreadable image of a folder dataset.
  strict_images: bool = False
  # NEW: where the decode check of folder images is cached ('': not cached).
  image_scan_cache_dir: str = '~/.cache/simclr_tf2'
  # Modes.
  mode: str = 'train'
  train_mode: str = 'pretrain'
  lineareval_while_pretraining: bool = True
  eval_name: Optional[str] = None
  # Checkpoints and export.
  model_dir: Optional[str] = None
  checkpoint: Optional[str] = None
  # NEW: distillation (SimCLRv2 step 3): the fine-tuned teacher, tau and the label weight.
  teacher_checkpoint: Optional[str] = None
  distill_temperature: float = 1.0
  distill_alpha: float = 0.0
  # Regex (re.match) over the original's variable names selecting what
  # --checkpoint initialises; the original's default '?!global_step' is read
  # as '(?!global_step)'.
  variable_schema: str = '?!global_step'
  zero_init_logits_layer: bool = False
  fine_tune_after_block: int = -1
  keep_checkpoint_max: int = 5
  keep_hub_module_max: int = 1
  # NEW: also export a SavedModel at the end of --mode=train (evaluation
  # always exports).
  export_saved_model: bool = False
  # NEW: after training/evaluation, fit a linear classifier on frozen
  # features of the trained and of a randomly initialised encoder, and print both.
  linear_probe: bool = False
  # NEW: train examples of the linear probe (a seeded sample spread over the split; 0: all).
  linear_probe_max_examples: int = 100000
  # Distribution.
  use_tpu: bool = True
  tpu_name: Optional[str] = None
  tpu_zone: Optional[str] = None
  gcp_project: Optional[str] = None
  master: Optional[str] = None
  # Contrastive objective and heads.
  temperature: float = 0.1
  hidden_norm: bool = True
  proj_head_mode: str = 'nonlinear'
  proj_out_dim: int = 128
  num_proj_layers: int = 3
  ft_proj_selector: int = 0
  # Encoder.
  global_bn: bool = True
  batch_norm_decay: float = 0.9
  width_multiplier: int = 1
  resnet_depth: int = 50
  sk_ratio: float = 0.0
  # NEW: channels of the stem and first block group before width_multiplier
  # (64 in every published model; 16 gives a tiny ResNet for CPU runs).
  resnet_base_width: int = 64
  se_ratio: float = 0.0
  # NEW: numerics and compilation.
  precision: str = 'float32'
  strict_precision: bool = False
  jit_compile: bool = False

  def replace(self, **changes) -> 'Config':
    return dataclasses.replace(self, **changes)

  @property
  def cifar_stem(self) -> bool:
    """The original uses the 3x3 stride-1 stem without max pool up to 32 px."""
    return self.image_size <= 32

  @property
  def has_supervised_head(self) -> bool:
    return self.train_mode in ('finetune', 'distill') or self.lineareval_while_pretraining

  @property
  def encoder_fine_tune_after_block(self) -> int:
    """Freezing applies only when fine-tuning (the original's behaviour)."""
    return self.fine_tune_after_block if self.train_mode == 'finetune' else -1

  def validate(self) -> 'Config':
    """Raises ValueError naming the setting at fault and how to fix it."""
    def choice(name, allowed):
      value = getattr(self, name)
      if value not in allowed:
        raise ConfigError(f'--{name}={value!r} is not one of {list(allowed)}.')
    choice('train_mode', TRAIN_MODES)
    choice('mode', MODES)
    choice('optimizer', OPTIMIZERS)
    choice('learning_rate_scaling', LR_SCALINGS)
    choice('proj_head_mode', PROJ_HEAD_MODES)
    choice('resnet_depth', RESNET_DEPTHS)
    choice('color_jitter_impl', COLOR_JITTER_IMPLS)
    choice('precision', PRECISIONS)
    if self.knn_k < 1 or self.knn_temperature <= 0 or self.knn_bank_size < 0:
      raise ConfigError(f'--knn_k must be >= 1, --knn_temperature > 0 and --knn_bank_size >= 0 '
                        f'(0: the whole train split); got {self.knn_k}, '
                        f'{self.knn_temperature}, {self.knn_bank_size}.')
    if self.linear_probe_max_examples < 0:
      raise ConfigError(f'--linear_probe_max_examples must be >= 0 (0: the whole train split), '
                        f'got {self.linear_probe_max_examples}.')
    if self.resnet_base_width < 2 or self.resnet_base_width % 2:
      raise ConfigError(f'--resnet_base_width must be an even number >= 2, got '
                        f'{self.resnet_base_width}.')
    if self.width_multiplier < 1:
      raise ConfigError(f'--width_multiplier must be >= 1, got {self.width_multiplier}.')
    if not -1 <= self.fine_tune_after_block <= 4:
      raise ConfigError('--fine_tune_after_block must be in [-1, 4] '
                       f'(-1: train everything), got {self.fine_tune_after_block}.')
    if self.train_mode != 'finetune' and self.fine_tune_after_block != -1:
      raise ConfigError(
          f'Layer freezing is only for fine-tuning: with --train_mode={self.train_mode} set '
          f'--fine_tune_after_block=-1 (got {self.fine_tune_after_block}).')
    if self.train_mode == 'distill':
      if not self.teacher_checkpoint:
        raise ConfigError('--train_mode=distill needs --teacher_checkpoint: a fine-tuned model '
                          'directory of ours, its saved_model/<step> export, or the output of '
                          'python -m checkpoints.convert for a released model.')
      if self.distill_temperature <= 0 or not 0 <= self.distill_alpha <= 1:
        raise ConfigError(f'--distill_temperature must be > 0 and --distill_alpha in [0, 1]; '
                          f'got {self.distill_temperature} and {self.distill_alpha}.')
    elif self.teacher_checkpoint:
      raise ConfigError(f'--teacher_checkpoint is only used with --train_mode=distill '
                        f'(got --train_mode={self.train_mode}).')
    if self.proj_head_mode == 'nonlinear' and self.num_proj_layers < 1:
      raise ConfigError('--num_proj_layers must be >= 1 with --proj_head_mode=nonlinear.')
    num_outputs = self.num_proj_layers if self.proj_head_mode == 'nonlinear' else (
        1 if self.proj_head_mode == 'linear' else 0)
    if not -(num_outputs + 1) <= self.ft_proj_selector <= num_outputs:
      raise ConfigError(
          f'--ft_proj_selector={self.ft_proj_selector} is out of range: the '
          f'projection head has {num_outputs} layer(s), so it must be in '
          f'[{-(num_outputs + 1)}, {num_outputs}] (0: encoder output).')
    if self.temperature <= 0:
      raise ConfigError(f'--temperature must be > 0, got {self.temperature}.')
    for name in ('train_batch_size', 'eval_batch_size', 'image_size', 'proj_out_dim'):
      if getattr(self, name) <= 0:
        raise ConfigError(f'--{name} must be positive, got {getattr(self, name)}.')
    if self.image_size < MIN_IMAGE_SIZE:
      raise ConfigError(
          f'--image_size={self.image_size} is below {MIN_IMAGE_SIZE}, the total stride of the '
          'encoder with the CIFAR stem (used up to 32 px): its last block groups would see '
          f'nothing but padding. Use --image_size >= {MIN_IMAGE_SIZE} (32 for CIFAR-10).')
    if self.sk_ratio < 0 or self.se_ratio < 0:
      raise ConfigError('--sk_ratio and --se_ratio must be >= 0.')
    return self
