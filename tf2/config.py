"""The frozen configuration object that flows from run.py into every module.

`run.py` turns absl flags into a `Config`; nothing under `tf2/` reads flags.
Field names, types and defaults are those of the original SimCLR `run.py`
flags (TF1 and tf2 sets together); each field carries its flag's help, and
help marked [new] is for capabilities the original does not have.
"""
import dataclasses
import re
from typing import Optional
import urllib.parse

from tf2.errors import ConfigError

TRAIN_MODES = ('pretrain', 'finetune', 'distill')
MODES = ('train', 'eval', 'train_then_eval')
OPTIMIZERS = ('momentum', 'adam', 'lars')
LR_SCALINGS = ('linear', 'sqrt')
PROJ_HEAD_MODES = ('none', 'linear', 'nonlinear')
RESNET_DEPTHS = (18, 34, 50, 101, 152, 200)
COLOR_JITTER_IMPLS = ('simclrv1', 'simclrv2')
DATA_SERVICE_MODES = ('parallel_epochs', 'distributed_epoch')
# The ResNet with the CIFAR stem (image_size <= 32) downsamples 8x.
MIN_IMAGE_SIZE = 8
PRECISIONS = ('float32', 'mixed_bfloat16', 'mixed_float16', 'float64', 'auto')
CONTRASTIVE_LOSSES = ('nt_xent', 'generalized')
GCL_DISTRIBUTIONS = ('logsumexp', 'normal', 'uniform')
ENCODERS = ('resnet', 'convnet')
# Three 3x3 convolutions of stride 2 without padding: 15 px -> 7 -> 3 -> 1.
CONVNET_MIN_IMAGE_SIZE = 15
# RandBits: at most this many bits (one hash of 64 bits per image, and far beyond the
# paper's 20).
MAX_RANDBITS = 30


def grpc_host_port(address, flag='--data_service_address', error=ConfigError):
  """'grpc://host:port' or 'host:port' -> ('host', port); `error` naming `flag` for
  anything else."""
  parsed = urllib.parse.urlparse(address if '://' in address else f'grpc://{address}')
  try:
    port = parsed.port
  except ValueError:  # A port that is not a number, or out of range.
    port = None
  if parsed.scheme != 'grpc' or not parsed.hostname or not port:
    raise error(f'{flag}={address!r} is not grpc://HOST:PORT (the address of a tf.data '
                'service dispatcher, python -m tf2.data.service).')
  return parsed.hostname, port


def compile_schema(schema):
  """--variable_schema as a regex; the original's default '?!global_step' is not a valid
  one: read it as '(?!global_step)'."""
  candidates = [schema] + (['(' + schema + ')'] if schema.startswith('?') else [])
  for candidate in candidates:
    try:
      return re.compile(candidate)
    except re.error:
      continue
  raise ConfigError(f'--variable_schema={schema!r} is not a valid regular expression.')


def flag(default, help_text):
  """A Config field with its flag's help (run.py defines one flag per field from it)."""
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass(frozen=True)
class Config:
  """Every setting of a SimCLR run. Immutable; derive variants with `replace`."""
  # Optimisation.
  learning_rate: float = flag(0.3,
      'Initial learning rate per batch size of 256 (linear scaling) or the multiplier '
      'of sqrt(batch size) (sqrt scaling).')
  learning_rate_scaling: str = flag('linear',
      'How to scale the learning rate as a function of batch size.')
  warmup_epochs: float = flag(10,
      'Number of epochs of linear warmup.')
  weight_decay: float = flag(1e-6,
      'Amount of weight decay to use.')
  momentum: float = flag(0.9,
      'Momentum parameter.')
  optimizer: str = flag('lars',
      'Optimizer to use.')
  lars_eeta: float = flag(0.001,
      '[new] LARS trust coefficient (the original hard-codes 0.001).')
  # Batches, steps, epochs.
  train_batch_size: int = flag(512,
      'Batch size for training (global, over all replicas).')
  microbatch_size: int = flag(0,
      '[new] Gradient caching: images per micro-batch (both views together); each '
      "replica's batch runs in chunks of this size, so that activation memory no longer "
      'grows with the batch, with the same NT-Xent over the global batch and one update per step. '
      'It must divide the per-replica batch. BN then sees each micro-batch: what is exact '
      'and what changes is in docs/usage.md#large-batches-on-little-memory. 0: off.')
  memory_size: int = flag(0,
      '[new] SimCLRv2 memory (MoCo, Chen et al. 2020b: 65536): a queue of the last K '
      "momentum-encoder keys (both views of each step's global batch) as extra "
      'negatives; the positive of each view is the momentum key of the other. Empty '
      'slots are masked. Pretraining only; at least 2 x --train_batch_size. 0: off.')
  momentum_decay: float = flag(0.999,
      '[new] EMA decay d of the momentum encoder (with --memory_size): after each update '
      'w_ema = d * w_ema + (1 - d) * w for the weights; its BN moving averages are its own '
      '(it computes keys in training mode, as MoCo).')
  evaluate_ema: bool = flag(False,
      '[new] Evaluate, kNN-monitor, probe and export the momentum (EMA) network instead '
      'of the online one (needs --memory_size, as in training).')
  train_epochs: int = flag(100,
      'Number of epochs to train for.')
  train_steps: int = flag(0,
      'Number of steps to train for. If provided, overrides train_epochs.')
  eval_batch_size: int = flag(256,
      'Batch size for eval.')
  eval_steps: int = flag(0,
      'Number of steps to eval for. If not provided, evals over entire dataset.')
  checkpoint_epochs: int = flag(1,
      'Number of epochs between checkpoints/summaries.')
  checkpoint_steps: int = flag(0,
      'Number of steps between checkpoints/summaries. If provided, overrides '
      'checkpoint_epochs.')
  train_summary_steps: int = flag(100,
      'Steps between training summaries. Paced calls stop at its multiples and are each '
      'followed by a summary; with --steps_per_loop, one is written after each call that '
      'reaches or passes a multiple of it, and at the last step. If 0, will not save.')
  steps_per_loop: int = flag(0,
      '[new] Training steps per tf.function call; wins over --log_every_secs and over a'
      ' shorter --train_summary_steps (TPU users set it large); calls still stop at '
      'checkpoints. 0: sized from the measured step time.')
  knn_eval: bool = flag(False,
      '[new] kNN monitor: at the start and at every checkpoint (not again within a tenth '
      'of the checkpoint interval), the weighted kNN (cosine, Wu et al. 2018) top-1 of '
      'encoder features (final_avg_pool for the ResNet), eval split queries against a '
      'train-split bank; logged '
      'with its cost, in TensorBoard (eval/knn_top_1) and result.json. Needs labelled '
      'splits.')
  knn_k: int = flag(200,
      '[new] Neighbours of the kNN monitor.')
  knn_temperature: float = flag(0.1,
      "[new] Temperature of the kNN monitor's exp(similarity / T) weights.")
  knn_bank_size: int = flag(10000,
      '[new] Train images in the kNN bank: a seeded sample spread over the split '
      '(stratified by class where labels are known), the same at every checkpoint; 0: '
      'all.')
  knn_num_queries: int = flag(2000,
      '[new] Eval images the kNN monitor classifies: a seeded sample spread over the split, '
      'the same at every checkpoint; 0: all. With --knn_bank_size it bounds the cost of a '
      'pass (each pass logs its share of the wall time).')
  log_every_secs: float = flag(30.0,
      '[new] Target seconds between progress lines: each tf.function call runs as many '
      'steps as fit, never crossing a checkpoint or summary boundary. 0: one call per '
      'checkpoint/summary interval.')
  # Data.
  dataset: str = flag('imagenet2012',
      'Name of a TFDS dataset, `shapes` (the embedded quickstart set), or a folder '
      'root/<split>/<class>/*.jpg.')
  data_dir: Optional[str] = flag(None,
      'Directory where the TFDS dataset is prepared (downloaded and prepared there first if '
      'it is not).')
  tfds_download: bool = flag(True,
      '[new] Download and prepare a TFDS dataset that is not in --data_dir yet, as the '
      "original does (the download hosts are checked first: offline it fails in seconds); "
      'False refuses, for machines that must not reach out.')
  train_split: str = flag('train',
      'Split for training (TFDS syntax, or a file of image names = a subset of train, '
      'or train:FILE).')
  eval_split: str = flag('validation',
      'Split for evaluation.')
  cache_dataset: bool = flag(False,
      'Whether to cache the entire dataset in memory. If the dataset is ImageNet, this '
      'is a very bad idea, but for smaller datasets it can improve performance.')
  image_size: int = flag(224,
      'Input image size.')
  color_jitter_strength: float = flag(1.0,
      'The strength of color jittering.')
  color_jitter_impl: str = flag('simclrv2',
      '[new] Brightness jitter of SimCLRv2 (multiplicative) or SimCLRv1 (additive).')
  use_blur: bool = flag(True,
      'Whether or not to use Gaussian blur for augmentation during pretraining.')
  color_jitter_on_device: bool = flag(False,
      '[new] Pretraining: apply the colour distortion (jitter, grayscale) per batch on the '
      'accelerator, each image its own draw from the same distribution, instead of per '
      'image in the input pipeline: a large share of a 224 px view\'s host CPU time moves '
      'to the accelerator (docs/performance.md#input-pipeline-at-224-px). Slow on a CPU.')
  data_service_address: str = flag('',
      '[new] grpc://HOST:PORT of a tf.data service dispatcher: the training input pipeline '
      'then runs on its workers (python -m tf2.data.service; docs/data.md#tfdata-service). '
      'Empty: read on this host.')
  data_service_mode: str = flag('parallel_epochs',
      '[new] With --data_service_address: parallel_epochs (every worker runs the whole '
      'pipeline; any source) or distributed_epoch (each example once per epoch across '
      'workers; splittable sources: folders, arrays).')
  digits_on_images: int = flag(0,
      '[new] Digits on images (Intriguing Properties, Fig. 4b): every image read gets one '
      'of the first N train digits of --digits_dataset, drawn at random before the views '
      'are made, tiled 3x3 on it by pixel-wise maximum (10-px digits on 32-px images, '
      '28 px on 224). 0: off.')
  digits_label: str = flag('object',
      "[new] With --digits_on_images: the label of an example, the image's own (object) or "
      'the digit on it (digit).')
  digits_dataset: str = flag('mnist5k',
      '[new] With --digits_on_images: where the digits come from, mnist5k (offline) or '
      'mnist (TFDS, prepared in --data_dir).')
  crop_min_area: float = flag(0.08,
      "[new] The smallest random crop, as a fraction of the image's area (the original's "
      '0.08; the Intriguing Properties RandBits notebook crops 0.5-1.0).')
  strict_images: bool = flag(False,
      '[new] Stop at the first unreadable image of a folder dataset instead of skipping'
      ' it.')
  image_scan_cache_dir: str = flag('~/.cache/simclr_tf2',
      '[new] Folder datasets: where the decode check of every image is cached, keyed by'
      ' path, size and mtime, so that a restart or an eval process decodes only new or '
      'changed files. Empty: no cache.')
  # Modes.
  mode: str = flag('train',
      'Whether to perform training or evaluation.')
  train_mode: str = flag('pretrain',
      'The train mode controls different objectives and trainable components.')
  lineareval_while_pretraining: bool = flag(True,
      'Whether to finetune supervised head while pretraining.')
  eval_name: Optional[str] = flag(None,
      'Name for eval.')
  # Checkpoints and export.
  model_dir: Optional[str] = flag(None,
      'Model directory for training.')
  checkpoint: Optional[str] = flag(None,
      'Loading from the given checkpoint for fine-tuning if a finetuning checkpoint '
      'does not already exist in model_dir (a directory, a checkpoint prefix or an '
      'exported SavedModel).')
  teacher_checkpoint: Optional[str] = flag(None,
      '[new] --train_mode=distill: the teacher, a fine-tuned model with a supervised '
      'head: a model_dir of ours (flags.json + checkpoints), one of its '
      'saved_model/<step> exports, or a checkpoints.convert output.')
  distill_temperature: float = flag(1.0,
      "[new] Temperature tau of the teacher's and the student's softmax in the "
      "distillation loss (SimCLRv2 eq. 2).")
  distill_alpha: float = flag(0.0,
      '[new] Weight of the supervised loss on the labels of the training data (needs '
      'labels); 1 - alpha weights distillation. 0: teacher only.')
  # Regex (re.match) over the original's variable names selecting what
  # --checkpoint initialises; the original's default '?!global_step' is read
  # as '(?!global_step)'.
  variable_schema: str = flag('?!global_step',
      'This defines whether some variable from the checkpoint should be loaded (regex '
      'over the original variable names: base_model/..., head_contrastive/..., '
      'head_supervised/..., global_step).')
  zero_init_logits_layer: bool = flag(False,
      'If True, zero initialize layers after avg_pool for supervised learning.')
  fine_tune_after_block: int = flag(-1,
      'The layers after which block that we will fine-tune. -1 means fine-tuning '
      'everything. 0 means fine-tuning after stem block. 4 means fine-tuning just the '
      'linear head.')
  keep_checkpoint_max: int = flag(5,
      'Maximum number of checkpoints to keep.')
  keep_hub_module_max: int = flag(1,
      'Maximum number of exported SavedModels (hub modules) to keep.')
  export_saved_model: bool = flag(False,
      '[new] Also export a SavedModel at the end of --mode=train (evaluation always '
      'exports).')
  linear_probe: bool = flag(False,
      '[new] After training/evaluation, fit a linear classifier on frozen features of '
      'the trained and of a randomly initialised encoder and print both test '
      'accuracies.')
  linear_probe_max_examples: int = flag(100000,
      '[new] Train examples the linear probe fits on: a seeded sample spread over the '
      'train split (stratified by class where labels are known), which bounds its '
      'memory (features of one encoder at a time); 0: the whole split.')
  # Distribution.
  use_tpu: bool = flag(True,
      'Whether to run on TPU.')
  tpu_name: Optional[str] = flag(None,
      'The Cloud TPU to use for training. This should be either the name used when '
      'creating the Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.')
  tpu_zone: Optional[str] = flag(None,
      '[Optional] GCE zone where the Cloud TPU is located in.')
  gcp_project: Optional[str] = flag(None,
      '[Optional] Project name for the Cloud TPU-enabled project.')
  master: Optional[str] = flag(None,
      'Address/name of the TensorFlow master to use. By default, use an in-process '
      'master.')
  # Contrastive objective and heads.
  temperature: float = flag(0.1,
      'Temperature parameter for contrastive loss.')
  hidden_norm: bool = flag(True,
      'Whether to L2-normalise the projections in the contrastive loss.')
  contrastive_loss: str = flag('nt_xent',
      '[new] nt_xent (SimCLR eq. 1), or generalized: the generalized contrastive loss of '
      '"Intriguing Properties of Contrastive Losses" (docs/intriguing_properties.md), '
      '--gcl_loss_scaling x (alignment + --gcl_lambda x distribution term). Its four '
      'variants: decoupled NT-Xent (--gcl_distribution=logsumexp --hidden_norm=True), '
      'SWD-normal (normal, --hidden_norm=False), SWD-hypersphere (normal, '
      '--hidden_norm=True), SWD-hypercube (uniform, --hidden_norm=False).')
  gcl_distribution: str = flag('logsumexp',
      '[new] --contrastive_loss=generalized: the distribution term, logsumexp (decoupled '
      'NT-Xent, with --temperature) or a sliced Wasserstein distance to a normal or uniform '
      'prior (a fresh random rotation and prior sample each step).')
  gcl_lambda: float = flag(1.0,
      '[new] --contrastive_loss=generalized: the weight lambda of the distribution term.')
  gcl_loss_scaling: float = flag(1.0,
      '[new] --contrastive_loss=generalized: the factor of the whole loss.')
  proj_head_mode: str = flag('nonlinear',
      'How the head projection is done.')
  proj_out_dim: int = flag(128,
      'Number of head projection dimension.')
  num_proj_layers: int = flag(3,
      'Number of non-linear head layers.')
  ft_proj_selector: int = flag(0,
      'Which layer of the projection head to use during fine-tuning. 0 means no '
      'projection head, and -1 means the final layer.')
  # Encoder.
  global_bn: bool = flag(True,
      'Whether to aggregate BN statistics across distributed cores.')
  batch_norm_decay: float = flag(0.9,
      'Batch norm decay parameter.')
  width_multiplier: int = flag(1,
      'Multiplier to change width of network.')
  resnet_depth: int = flag(50,
      'Depth of ResNet.')
  sk_ratio: float = flag(0.0,
      'If it is bigger than 0, it will enable SK. Recommendation: 0.0625.')
  resnet_base_width: int = flag(64,
      '[new] Channels of the stem and first block group before width_multiplier (64 in '
      'all published models; smaller values give tiny ResNets for CPU runs such as the '
      'quickstart).')
  se_ratio: float = flag(0.0,
      'If it is bigger than 0, it will enable SE.')
  encoder: str = flag('resnet',
      '[new] resnet (--resnet_depth, --sk_ratio, ...), or convnet: the small ConvNet of '
      "the Intriguing Properties RandBits notebook (three 3x3 convolutions of stride 2 and "
      'a dense layer, 32/64/64/128 units x --width_multiplier), for MNIST-sized '
      'experiments (docs/intriguing_properties.md).')
  randbits: int = flag(0,
      '[new] RandBits (Intriguing Properties, Fig. 5a): append k random bits, fixed per '
      'image (a hash of its pixels), to every view as k constant channels, so a view has '
      '3 + k channels. Crops leave them as they are; colour distortion and blur touch '
      'only the image channels. 0: off.')
  precision: str = flag('float32',
      '[new] float32 (the default: the original numerics on every machine), '
      'mixed_bfloat16 (bf16 compute, float32 variables; fast only where bf16 is native:'
      ' TPUs, GPUs of compute capability >= 8.0, CPUs with avx512_bf16/amx_bf16, '
      'elsewhere emulated and many times slower), mixed_float16 (float16 compute with '
      'dynamic loss scaling, float32 variables: for GPUs of compute capability 7.x, '
      'V100/T4, whose tensor cores have no bf16), auto (the fastest of these the hardware '
      'runs natively, else float32: docs/usage.md#precision) or float64 (verification).')
  strict_precision: bool = flag(False,
      '[new] Refuse --precision=mixed_bfloat16 or mixed_float16 on hardware without native '
      'support (by default it is a warning).')
  jit_compile: bool = flag(False,
      '[new] Compile the per-replica step with XLA (TPUs always do).')

  def replace(self, **changes) -> 'Config':
    return dataclasses.replace(self, **changes)

  @property
  def cifar_stem(self) -> bool:
    """The original uses the 3x3 stride-1 stem without max pool up to 32 px."""
    return self.image_size <= 32

  @property
  def view_channels(self) -> int:
    """Channels of one view: RGB, then the --randbits constant channels."""
    return 3 + self.randbits

  @property
  def has_supervised_head(self) -> bool:
    return self.train_mode in ('finetune', 'distill') or self.lineareval_while_pretraining

  @property
  def encoder_fine_tune_after_block(self) -> int:
    """Freezing applies only when fine-tuning (the original's behaviour)."""
    return self.fine_tune_after_block if self.train_mode == 'finetune' else -1

  def _validate_memory(self):
    if self.memory_size < 0:
      raise ConfigError(f'--memory_size must be >= 0 (0: off), got {self.memory_size}.')
    if not 0 <= self.momentum_decay <= 1:
      raise ConfigError(f'--momentum_decay must be in [0, 1], got {self.momentum_decay}.')
    if self.evaluate_ema and not self.memory_size:
      raise ConfigError('--evaluate_ema=True needs the momentum network of --memory_size '
                        '(set it as in training).')
    if not self.memory_size:
      return
    if self.train_mode != 'pretrain':
      raise ConfigError(
          f'--memory_size is for pretraining (got --train_mode={self.train_mode}): set '
          '--memory_size=0. To fine-tune from the momentum network of a pretraining run, '
          'export it there (--evaluate_ema=True --export_saved_model=True) and pass that '
          'saved_model/<step> as --checkpoint.')
    if self.memory_size < 2 * self.train_batch_size:
      raise ConfigError(
          f'--memory_size={self.memory_size} is smaller than one step of keys, '
          f'2 x --train_batch_size = {2 * self.train_batch_size}: use at least that.')

  def _validate_ranges(self):
    """Numbers outside the range where they mean anything (a negative rate, a count below 0)."""
    at_least_zero = ('learning_rate', 'weight_decay', 'warmup_epochs', 'lars_eeta', 'train_epochs',
                     'train_steps', 'eval_steps', 'checkpoint_epochs', 'checkpoint_steps',
                     'train_summary_steps', 'steps_per_loop', 'log_every_secs',
                     'keep_checkpoint_max', 'keep_hub_module_max', 'num_proj_layers')
    for name in at_least_zero:
      if getattr(self, name) < 0:
        raise ConfigError(f'--{name} must be >= 0, got {getattr(self, name)}.')
    if not 0 <= self.momentum < 1:
      raise ConfigError(f'--momentum must be in [0, 1), got {self.momentum}.')
    if not 0 <= self.batch_norm_decay <= 1:
      raise ConfigError(f'--batch_norm_decay must be in [0, 1], got {self.batch_norm_decay}.')
    if self.mode != 'eval' and not (self.train_steps or self.train_epochs):
      raise ConfigError('--train_steps and --train_epochs are both 0: nothing to train. Set '
                        'one of them, or use --mode=eval.')

  def validate(self, for_run=False) -> 'Config':
    """Raises ConfigError naming the setting at fault and how to fix it.

    Everything that can be checked from the config alone is checked here;
    what needs the data or the replicas is checked in `tf2/preflight.py`.
    `for_run`: also what a run needs beyond building a model (a --model_dir).
    """
    if for_run and not self.model_dir:
      raise ConfigError('--model_dir is required: checkpoints, summaries and results go there.')
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
    choice('data_service_mode', DATA_SERVICE_MODES)
    if not 0 <= self.color_jitter_strength <= 1.25:
      raise ConfigError(
          f'--color_jitter_strength={self.color_jitter_strength} is outside [0, 1.25]: above '
          '1.25 the contrast and saturation factors (1 +- 0.8 x strength) turn negative. The '
          'original uses 1.0 for ImageNet and 0.5 for CIFAR-10.')
    if self.digits_on_images < 0:
      raise ConfigError(f'--digits_on_images must be >= 0 (0: off), got '
                        f'{self.digits_on_images}.')
    choice('digits_label', ('object', 'digit'))
    if not 0 < self.crop_min_area <= 1:
      raise ConfigError(f'--crop_min_area must be in (0, 1], got {self.crop_min_area}.')
    if self.data_service_address:
      grpc_host_port(self.data_service_address)
    if self.data_service_address and not self.model_dir:
      raise ConfigError('--data_service_address needs --model_dir: the training hosts of a run '
                        'share the tf.data service job named after it.')
    choice('precision', PRECISIONS)
    choice('contrastive_loss', CONTRASTIVE_LOSSES)
    choice('gcl_distribution', GCL_DISTRIBUTIONS)
    if self.gcl_lambda < 0 or self.gcl_loss_scaling <= 0:
      raise ConfigError(f'--gcl_lambda must be >= 0 and --gcl_loss_scaling > 0; got '
                        f'{self.gcl_lambda} and {self.gcl_loss_scaling}.')
    if self.contrastive_loss != 'nt_xent' and self.memory_size:
      raise ConfigError(
          f'--memory_size works with --contrastive_loss=nt_xent only (the memory adds '
          f'negatives to NT-Xent; the generalized loss has none): set --memory_size=0, or '
          f'--contrastive_loss=nt_xent.')
    if (self.knn_k < 1 or self.knn_temperature <= 0 or self.knn_bank_size < 0
        or self.knn_num_queries < 0):
      raise ConfigError(f'--knn_k must be >= 1, --knn_temperature > 0, --knn_bank_size >= 0 '
                        f'and --knn_num_queries >= 0 (0: the whole split); got {self.knn_k}, '
                        f'{self.knn_temperature}, {self.knn_bank_size}, '
                        f'{self.knn_num_queries}.')
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
    if self.microbatch_size < 0 or (
        self.microbatch_size and self.train_batch_size % self.microbatch_size):
      raise ConfigError(
          f'--microbatch_size={self.microbatch_size} must be 0 (off) or divide '
          f'--train_batch_size={self.train_batch_size} (and the per-replica batch).')
    self._validate_memory()
    self._validate_ranges()
    compile_schema(self.variable_schema)
    if self.image_size < MIN_IMAGE_SIZE:
      raise ConfigError(
          f'--image_size={self.image_size} is below {MIN_IMAGE_SIZE}, the total stride of the '
          'encoder with the CIFAR stem (used up to 32 px): its last block groups would see '
          f'nothing but padding. Use --image_size >= {MIN_IMAGE_SIZE} (32 for CIFAR-10).')
    if self.sk_ratio < 0 or self.se_ratio < 0:
      raise ConfigError('--sk_ratio and --se_ratio must be >= 0.')
    self._validate_encoder()
    return self

  def _validate_encoder(self):
    if self.encoder not in ENCODERS:
      raise ConfigError(f'--encoder={self.encoder!r} is not one of {list(ENCODERS)}.')
    if not 0 <= self.randbits <= MAX_RANDBITS:
      raise ConfigError(f'--randbits must be in [0, {MAX_RANDBITS}] (0: off), got '
                        f'{self.randbits}.')
    if self.randbits and self.digits_on_images:
      raise ConfigError('--randbits and --digits_on_images cannot be combined: the bits hash '
                        'the image, and a new digit on every read would change them. Use one.')
    if self.encoder == 'convnet' and self.image_size < CONVNET_MIN_IMAGE_SIZE:
      raise ConfigError(f'--encoder=convnet needs --image_size >= {CONVNET_MIN_IMAGE_SIZE}: its '
                        f'three unpadded 3x3 convolutions of stride 2 leave nothing of '
                        f'{self.image_size} px (28 for MNIST, 32 for CIFAR-10).')
    if self.encoder == 'convnet':
      resnet_only = {'sk_ratio': self.sk_ratio > 0, 'se_ratio': self.se_ratio > 0,
                     'fine_tune_after_block': self.fine_tune_after_block != -1}
      used = [name for name, is_set in resnet_only.items() if is_set]
      if used:
        raise ConfigError(f'--{used[0]} is a ResNet setting and --encoder=convnet has no '
                          f'block groups: leave it at its default, or use --encoder=resnet.')
