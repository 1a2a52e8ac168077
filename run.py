"""SimCLR v1/v2: pretraining, fine-tuning, linear evaluation and export.

The flags are the original SimCLR `run.py` flags (TF1 and tf2 versions
together: same names, types, defaults and meaning) plus a few new ones
marked [new]. They become a frozen `tf2.config.Config`; nothing below this
file reads flags. `python run.py --helpfull` lists them all.

Quickstart (embedded dataset, no download):
  python run.py --flagfile=flagfiles/quickstart.cfg
"""
import dataclasses
import os
import sys

from absl import app
from absl import flags

from tf2 import config as config_lib

_DEFAULTS = config_lib.Config()

# (name, help) for every flag; type and default come from Config.
_HELP = {
    'learning_rate': 'Initial learning rate per batch size of 256 (linear scaling) or the '
                     'multiplier of sqrt(batch size) (sqrt scaling).',
    'learning_rate_scaling': 'How to scale the learning rate as a function of batch size.',
    'warmup_epochs': 'Number of epochs of linear warmup.',
    'weight_decay': 'Amount of weight decay to use.',
    'momentum': 'Momentum parameter.',
    'optimizer': 'Optimizer to use.',
    'lars_eeta': '[new] LARS trust coefficient (the original hard-codes 0.001).',
    'train_batch_size': 'Batch size for training (global, over all replicas).',
    'train_epochs': 'Number of epochs to train for.',
    'train_steps': 'Number of steps to train for. If provided, overrides train_epochs.',
    'eval_batch_size': 'Batch size for eval.',
    'eval_steps': 'Number of steps to eval for. If not provided, evals over entire dataset.',
    'checkpoint_epochs': 'Number of epochs between checkpoints/summaries.',
    'checkpoint_steps': 'Number of steps between checkpoints/summaries. If provided, '
                        'overrides checkpoint_epochs.',
    'train_summary_steps': 'Steps between training summaries: written after each call that '
                           'reaches or passes a multiple of it (with --steps_per_loop, at most '
                           'one per call), and at the last step. If 0, will not save.',
    'steps_per_loop': '[new] Training steps per tf.function call; wins over --log_every_secs '
                      'and over a shorter --train_summary_steps (TPU users set it large); '
                      'calls still stop at checkpoints. 0: sized from the measured step time.',
    'knn_eval': '[new] kNN monitor: at the start and at every checkpoint, the weighted kNN '
                '(cosine, Wu et al. 2018) top-1 of final_avg_pool features, eval split queries '
                'against a train-split bank; logged, in TensorBoard (eval/knn_top_1) and '
                'result.json. Needs labelled splits.',
    'knn_k': '[new] Neighbours of the kNN monitor.',
    'knn_temperature': '[new] Temperature of the kNN monitor\'s exp(similarity / T) weights.',
    'knn_bank_size': '[new] Train images in the kNN bank: a seeded sample spread over the '
                     'split (stratified by class where labels are known), the same at every '
                     'checkpoint; 0: all.',
    'log_every_secs': '[new] Target seconds between progress lines: each tf.function call runs '
                      'as many steps as fit, never crossing a checkpoint or summary boundary. '
                      '0: one call per checkpoint/summary interval.',
    'dataset': 'Name of a TFDS dataset, `shapes` (the embedded quickstart set), or a folder '
               'root/<split>/<class>/*.jpg.',
    'data_dir': 'Directory where the TFDS dataset is prepared (never downloaded).',
    'train_split': 'Split for training (TFDS syntax, or a file of image names = a subset of '
                   'train, or train:FILE).',
    'eval_split': 'Split for evaluation.',
    'cache_dataset': 'Whether to cache the entire dataset in memory. If the dataset is '
                     'ImageNet, this is a very bad idea, but for smaller datasets it can '
                     'improve performance.',
    'image_size': 'Input image size.',
    'color_jitter_strength': 'The strength of color jittering.',
    'color_jitter_impl': '[new] Brightness jitter of SimCLRv2 (multiplicative) or SimCLRv1 '
                         '(additive).',
    'use_blur': 'Whether or not to use Gaussian blur for augmentation during pretraining.',
    'strict_images': '[new] Stop at the first unreadable image of a folder dataset instead of '
                     'skipping it.',
    'image_scan_cache_dir': '[new] Folder datasets: where the decode check of every image '
                            'is cached, keyed by path, size and mtime, so that a restart or '
                            'an eval process decodes only new or changed files. Empty: no '
                            'cache.',
    'mode': 'Whether to perform training or evaluation.',
    'train_mode': 'The train mode controls different objectives and trainable components.',
    'lineareval_while_pretraining': 'Whether to finetune supervised head while pretraining.',
    'eval_name': 'Name for eval.',
    'model_dir': 'Model directory for training.',
    'checkpoint': 'Loading from the given checkpoint for fine-tuning if a finetuning '
                  'checkpoint does not already exist in model_dir (a directory, a checkpoint '
                  'prefix or an exported SavedModel).',
    'variable_schema': 'This defines whether some variable from the checkpoint should be '
                       'loaded (regex over the original variable names: base_model/..., '
                       'head_contrastive/..., head_supervised/..., global_step).',
    'teacher_checkpoint': '[new] --train_mode=distill: the teacher, a fine-tuned model with a '
                          'supervised head: a model_dir of ours (flags.json + checkpoints), one '
                          'of its saved_model/<step> exports, or a checkpoints.convert output.',
    'distill_temperature': '[new] Temperature tau of the teacher\'s and the student\'s softmax '
                           'in the distillation loss (SimCLRv2 eq. 2).',
    'distill_alpha': '[new] Weight of the supervised loss on the labels of the training data '
                     '(needs labels); 1 - alpha weights distillation. 0: teacher only.',
    'zero_init_logits_layer': 'If True, zero initialize layers after avg_pool for supervised '
                              'learning.',
    'fine_tune_after_block': 'The layers after which block that we will fine-tune. -1 means '
                             'fine-tuning everything. 0 means fine-tuning after stem block. '
                             '4 means fine-tuning just the linear head.',
    'keep_checkpoint_max': 'Maximum number of checkpoints to keep.',
    'keep_hub_module_max': 'Maximum number of exported SavedModels (hub modules) to keep.',
    'export_saved_model': '[new] Also export a SavedModel at the end of --mode=train '
                          '(evaluation always exports).',
    'linear_probe': '[new] After training/evaluation, fit a linear classifier on frozen '
                    'features of the trained and of a randomly initialised encoder and '
                    'print both test accuracies.',
    'linear_probe_max_examples': '[new] Train examples the linear probe fits on: a seeded '
                                 'sample spread over the train split (stratified by class '
                                 'where labels are known), which bounds its memory (features '
                                 'of one encoder at a time); 0: the whole split.',
    'use_tpu': 'Whether to run on TPU.',
    'tpu_name': 'The Cloud TPU to use for training. This should be either the name used when '
                'creating the Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.',
    'tpu_zone': '[Optional] GCE zone where the Cloud TPU is located in.',
    'gcp_project': '[Optional] Project name for the Cloud TPU-enabled project.',
    'master': 'Address/name of the TensorFlow master to use. By default, use an in-process '
              'master.',
    'temperature': 'Temperature parameter for contrastive loss.',
    'hidden_norm': 'Whether to L2-normalise the projections in the contrastive loss.',
    'proj_head_mode': 'How the head projection is done.',
    'proj_out_dim': 'Number of head projection dimension.',
    'num_proj_layers': 'Number of non-linear head layers.',
    'ft_proj_selector': 'Which layer of the projection head to use during fine-tuning. 0 means '
                        'no projection head, and -1 means the final layer.',
    'global_bn': 'Whether to aggregate BN statistics across distributed cores.',
    'batch_norm_decay': 'Batch norm decay parameter.',
    'width_multiplier': 'Multiplier to change width of network.',
    'resnet_depth': 'Depth of ResNet.',
    'sk_ratio': 'If it is bigger than 0, it will enable SK. Recommendation: 0.0625.',
    'se_ratio': 'If it is bigger than 0, it will enable SE.',
    'resnet_base_width': '[new] Channels of the stem and first block group before '
                         'width_multiplier (64 in all published models; smaller values give '
                         'tiny ResNets for CPU runs such as the quickstart).',
    'precision': '[new] float32 (the default: the original numerics on every machine), '
                 'mixed_bfloat16 (bf16 compute, float32 variables; fast only where bf16 is native: '
                 'TPUs, GPUs of compute capability >= 8.0, CPUs with avx512_bf16/amx_bf16, '
                 'elsewhere emulated and many times slower), auto (mixed_bfloat16 where bf16 is '
                 'native, else float32) or float64 (verification).',
    'strict_precision': '[new] Refuse --precision=mixed_bfloat16 on hardware without native bf16 '
                        '(by default it is a warning).',
    'jit_compile': '[new] Compile the per-replica step with XLA (TPUs always do).',
}

_ENUMS = {
    'learning_rate_scaling': config_lib.LR_SCALINGS,
    'optimizer': config_lib.OPTIMIZERS,
    'mode': config_lib.MODES,
    'train_mode': config_lib.TRAIN_MODES,
    'proj_head_mode': config_lib.PROJ_HEAD_MODES,
    'color_jitter_impl': config_lib.COLOR_JITTER_IMPLS,
    'precision': config_lib.PRECISIONS,
}


def define_flags(flag_values=flags.FLAGS):
  """Defines one flag per Config field (the original's flags and the new ones)."""
  for field in dataclasses.fields(config_lib.Config):
    name, default = field.name, getattr(_DEFAULTS, field.name)
    help_text = _HELP[name]
    if name in _ENUMS:
      flags.DEFINE_enum(name, default, list(_ENUMS[name]), help_text, flag_values=flag_values)
    elif field.type is bool:
      flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
    elif field.type is int:
      flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
    elif field.type is float:
      flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    else:
      flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS):
  return config_lib.Config(**{f.name: flag_values[f.name].value
                              for f in dataclasses.fields(config_lib.Config)})


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # TensorFlow is imported only once the flags parsed (fast --help), without
  # its benign start-up noise (tf2/console.py; SIMCLR_STARTUP_LOGS=1 shows it).
  from tf2 import console  # pylint: disable=g-import-not-at-top
  console.quiet_tensorflow_startup()
  from tf2 import runner  # pylint: disable=g-import-not-at-top
  from tf2.training.checkpointing import CheckpointMismatchError  # pylint: disable=g-import-not-at-top
  from tf2.data.datasets import DatasetError  # pylint: disable=g-import-not-at-top
  from tf2.strategies import StrategyError  # pylint: disable=g-import-not-at-top
  from tf2.cluster import WorkerLostError  # pylint: disable=g-import-not-at-top
  from tf2.export import ExportError  # pylint: disable=g-import-not-at-top
  from tf2.training.checkpointing import CheckpointWriteError  # pylint: disable=g-import-not-at-top
  try:
    runner.run(config_from_flags())
  except (config_lib.ConfigError, FileNotFoundError, DatasetError, CheckpointMismatchError,
          StrategyError, FloatingPointError, WorkerLostError, CheckpointWriteError,
          ExportError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


define_flags()

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
  app.run(main)
