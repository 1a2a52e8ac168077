"""tf.data input for training and evaluation, one dataset per input pipeline.

`strategy.distribute_datasets_from_function(make_input_fn(...))`: each host
reads its own shard (`InputContext`), batches at the per-replica size
(`global_batch / num_replicas`), and the strategy hands consecutive batches
to its replicas. Training shuffles (buffer 50x the per-replica batch for
images of 32 px or less, 10x otherwise, as the original), repeats, drops the
remainder and prefetches; pretraining emits two augmented views stacked on
channels. Evaluation keeps every example: the last batch may be partial, and
the evaluation loop counts what it receives.
"""
import functools

from absl import logging
import tensorflow as tf

from tf2.data import augment, randbits, service


def preprocess_fn(config, is_training):
  """image -> model input ([H, W, 6] two views when pretraining, else [H, W, 3]; with
  --randbits each view followed by its bit channels, `randbits.py`)."""
  if is_training and config.train_mode == 'pretrain':
    views = 2
    make_views = functools.partial(augment.pretrain_views, image_size=config.image_size,
                                   strength=config.color_jitter_strength,
                                   impl=config.color_jitter_impl,
                                   color_on_device=config.color_jitter_on_device,
                                   crop_min_area=config.crop_min_area)
  else:
    # Fine-tuning: crop and flip without colour distortion; eval: centre crop.
    views = 1
    make_views = functools.partial(augment.preprocess, image_size=config.image_size,
                                   is_training=is_training, color_distort=False,
                                   crop_min_area=config.crop_min_area)
  if not config.randbits:
    return make_views
  return lambda image: randbits.with_bits(make_views(image), image, config.randbits, views)


def make_input_fn(source, config, is_training, split=None, global_batch_size=None, keep=None,
                  through_service=False):
  """`keep`: read only these positions of the split (a mask, `tf2/data/sampling.py`).

  `through_service`: training input through --data_service_address when set
  (`tf2/data/service.py`); the workers then read the whole split, unsharded.
  """
  split = split or (config.train_split if is_training else config.eval_split)
  global_batch_size = global_batch_size or (
      config.train_batch_size if is_training else config.eval_batch_size)
  preprocess = preprocess_fn(config, is_training)
  remote = bool(through_service and is_training and config.data_service_address)
  if is_training and tf.compat.v1.random.get_seed(None)[0] is not None:
    logging.warning(
        'A global TensorFlow seed is set (tf.random.set_seed or keras.utils.set_random_seed): '
        'the random ops of the augmentation then get equal seeds inside tf.data and draw '
        'equal values, which ties together the crop, flip and colour draws of every view '
        '(the original does the same). Leave it unset for training.')

  def input_fn(input_context=None):
    batch_size = (input_context.get_per_replica_batch_size(global_batch_size)
                  if input_context else global_batch_size)
    ds = source.read(split, None if remote else input_context, shuffle_files=is_training,
                     keep=keep)
    if config.cache_dataset:
      ds = ds.cache()
    if is_training:
      options = tf.data.Options()
      options.deterministic = False
      options.experimental_slack = True
      ds = ds.with_options(options)
      ds = ds.shuffle(batch_size * (50 if config.image_size <= 32 else 10))
      ds = ds.repeat()
    ds = ds.map(lambda image, label: (preprocess(image), label),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=is_training)
    if remote:
      ds = service.distribute(ds, config.data_service_address, config.data_service_mode,
                              job_name='simclr_' + config.model_dir)
    return ds.prefetch(tf.data.AUTOTUNE)

  return input_fn


def distributed_dataset(strategy, source, config, is_training, **kwargs):
  input_fn = make_input_fn(source, config, is_training, **kwargs)
  return strategy.distribute_datasets_from_function(input_fn)
