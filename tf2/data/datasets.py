"""Where images come from: TFDS datasets, image folders, in-memory arrays.

Every source yields `(image, label)` pairs of decoded images (any dtype,
1-4 channels; the augmentations turn them into float RGB) and int64 labels
(-1 for unlabelled folders), knows its class count and split sizes, and reads
its own shard of the data under `tf.distribute` (`input_context`).

- TFDS by name (`--dataset=cifar10 --data_dir=...`), any split syntax
  (`train[:10%]`), once prepared (`download.py` downloads and prepares one
  that is not); an unknown name fails at once with what to do.
- A folder (`--dataset=/path/root`): `root/<split>/<class>/*.{jpg,jpeg,png}`,
  classes sorted by name; `root/<split>/*.jpg` (or images directly in root,
  for the train split) is an unlabelled set for pretraining. Unreadable files
  are skipped, counted and named in the log (`strict=True`: the first one
  stops the run with its path): splits of up to FULL_CHECK_LIMIT images are
  decoded once when scanned (the result cached per file in
  `--image_scan_cache_dir`, so a restart decodes only new or changed files);
  larger ones get a header check, and a body corrupt behind a valid header is
  dropped while reading (logged by tf.data).
- A subset list: a split given as `<split>:<file>` or as the path of an
  existing file of image file names, one per line (the ImageNet 1%/10%
  lists), keeps only the listed images of the train split.
"""
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import struct
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tf2.data import download
from tf2.errors import DatasetError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')
# Splits up to this many images are fully decoded once when scanned.
FULL_CHECK_LIMIT = 100_000
_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF87a', b'GIF89a', b'BM')
# A JPEG whose longer side exceeds this is decoded at 1/2, 1/4 or 1/8 scale
# (libjpeg's DCT scaling): a 20000x20000 photo costs 5000x5000 pixels, not 1.2 GB.
MAX_DECODE_SIDE = 8192
# Other formats decode only whole: larger ones are skipped, named.
MAX_PIXELS = MAX_DECODE_SIDE * MAX_DECODE_SIDE


@dataclasses.dataclass
class DatasetSource:
  """A dataset's metadata and a reader `read(split, input_context, shuffle_files, keep)`."""
  name: str
  num_classes: int
  split_sizes: dict
  reader: Callable
  skipped_files: tuple = ()
  # Per split, the labels in reading order where known without reading the data
  # (folders, arrays), so that samples can be stratified by class.
  split_labels: Optional[dict] = None

  def num_examples(self, split):
    return self.split_sizes[split]

  def labels(self, split):
    """The split's labels in reading order, or None if they are not known up front."""
    return None if self.split_labels is None else self.split_labels.get(split)

  def read(self, split, input_context=None, shuffle_files=False, keep=None):
    """`keep`: a boolean mask over the split's positions (`sampling.spread_sample`); only
    those examples are read (and decoded)."""
    return self.reader(split, input_context, shuffle_files, keep)


def keep_positions(ds, keep):
  """The elements of `ds` at the positions where `keep` is True (before any decoding)."""
  if keep is None:
    return ds
  mask = tf.constant(np.asarray(keep, bool))
  last = len(keep) - 1
  return ds.enumerate().filter(lambda i, _: (i <= last) & mask[tf.minimum(i, last)]).map(
      lambda _, x: x)


def parse_subset_split(split):
  """'train:/path/list.txt' or '/path/list.txt' -> ('train', path); else (split, None)."""
  if os.path.isfile(split):
    return 'train', split
  if ':' in split:
    base, path = split.split(':', 1)
    if os.path.isfile(path):
      return base, path
  return split, None


def read_subset_list(path):
  with tf.io.gfile.GFile(path) as f:
    names = [line.strip() for line in f if line.strip()]
  if not names:
    raise DatasetError(f'The subset list {path} is empty.')
  return names


# ---------------------------------------------------------------------------
# TFDS


def tfds_source(name, data_dir, splits) -> DatasetSource:
  """A prepared TFDS dataset (`download.ensure_prepared` prepares one first)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = download.builder_of(name, data_dir)

  resolved = {split: parse_subset_split(split) for split in splits}

  def reader(split, input_context=None, shuffle_files=False, keep=None):
    base, subset_path = resolved[split]
    read_config = tfds.ReadConfig(interleave_cycle_length=32, interleave_block_length=1,
                                  input_context=input_context)
    # Subsets and samples are filtered before their images are decoded: a 1%
    # list would otherwise decode the whole split to keep one image in a hundred.
    lazy = subset_path is not None or keep is not None
    decoders = {'image': tfds.decode.SkipDecoding()} if lazy else None
    try:
      ds = builder.as_dataset(split=base, shuffle_files=shuffle_files, decoders=decoders,
                              read_config=read_config, as_supervised=not lazy)
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError) as e:
      raise not_prepared_error(name, builder.data_dir) from e
    except ValueError as e:
      raise DatasetError(f'Split {base!r} of {name}: {e}') from e
    if subset_path is not None:
      ds = filter_by_file_name(ds, read_subset_list(subset_path), example_key(builder))
    if lazy:
      # Positions count within this input pipeline's files: with several hosts each
      # keeps about sum(keep) / hosts examples, all together about sum(keep).
      ds = keep_positions(ds, keep)
      image = builder.info.features['image']
      ds = ds.map(lambda x: (image.decode_example(x['image']), x['label']),
                  num_parallel_calls=tf.data.AUTOTUNE)
    return ds

  # Fail fast (before building a model) if the data is not there, or only partly.
  for split in splits:
    reader(split)
    base = resolved[split][0]
    try:
      files = [str(path) for path in builder.info.splits[base].filepaths]
    except (KeyError, ValueError, AttributeError):  # e.g. under tfds.testing.mock_data
      files = []
    missing = [path for path in files if not tf.io.gfile.exists(path)]
    if missing:
      raise DatasetError(
          f'The TFDS dataset {name!r} in {builder.data_dir} is incomplete: {len(missing)} of '
          f'the {len(files)} files of split {base!r} are missing (first: {missing[0]}). '
          f'Build it again: `tfds build {name.split("/")[0]} --data_dir=<dir>`.')
  num_classes = builder.info.features['label'].num_classes
  sizes = {}
  for split in splits:
    base, subset_path = resolved[split]
    if subset_path is not None:
      sizes[split] = count_examples(reader(split))
      continue
    try:
      sizes[split] = builder.info.splits[base].num_examples
    except (KeyError, ValueError):  # e.g. under tfds.testing.mock_data
      sizes[split] = count_examples(reader(split))
  return DatasetSource(name, num_classes, sizes, reader)


def example_key(builder):
  """The feature that names an example in subset lists: ImageNet's `file_name`, else `id`."""
  features = builder.info.features
  for key in ('file_name', 'id'):
    if key in features:
      return key
  raise DatasetError(f'{builder.name} has neither a file_name nor an id feature: subset lists '
                     'cannot name its examples.')


def not_prepared_error(name, data_dir):
  return DatasetError(
      f'The TFDS dataset {name!r} is not prepared in {data_dir}: prepare it once with '
      f'`tfds build {name.split("/")[0]} --data_dir=<dir>` (ImageNet needs its manual '
      'download) and pass --data_dir=<dir>; in a multi-worker run, give every worker a '
      '--data_dir they share.')


def filter_by_file_name(ds, names, key):
  """Keeps elements whose `key` feature's base name is in `names`."""
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant([os.path.basename(n) for n in names]),
          tf.ones([len(names)], tf.int32)), default_value=0)
  return ds.filter(lambda x: table.lookup(tf.strings.split(x[key], '/')[-1]) > 0)


def count_examples(ds):
  return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def shard(ds, input_context):
  """This input pipeline's share of `ds` (every host reads its own part)."""
  if input_context is not None and input_context.num_input_pipelines > 1:
    ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  return ds


# ---------------------------------------------------------------------------
# Image folders


def _list_images(directory):
  return sorted(os.path.join(directory, f) for f in tf.io.gfile.listdir(directory)
                if f.lower().endswith(IMAGE_EXTENSIONS))


def _header_problem(path):
  """Why the file's header rules it out, or None."""
  with tf.io.gfile.GFile(path, 'rb') as f:
    head = f.read(24)
  if not any(head.startswith(m) for m in _MAGIC):
    return 'not a JPEG/PNG/GIF/BMP file'
  if head.startswith(b'\x89PNG') and head[12:16] == b'IHDR':
    width, height = struct.unpack('>II', head[16:24])
    if width * height > MAX_PIXELS:
      return (f'a PNG of {width}x{height} px, over the {MAX_PIXELS} px decoded whole; '
              'downscale it or save it as JPEG')
  return None


def _decode_problem(path):
  """Why the whole file does not decode, or None (TensorFlow ops release the GIL)."""
  try:
    decode_image(tf.io.read_file(path))
    return None
  except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
          tf.errors.DataLossError) as e:
    text = str(e).strip().splitlines()
    return 'does not decode: ' + (text[0].split('}}')[-1].strip()[:120] if text else '')


def readable_images(paths, full_check, cache_path=None):
  """Per path: None if readable, else why not (the header, and with `full_check` the
  whole image).

  `cache_path`: a JSON file of earlier full checks, {path: [size, mtime_ns,
  problem]}; files whose size and mtime are unchanged are not decoded again
  (a restart on an ImageNet-sized folder then costs a stat per file), and the
  file is rewritten atomically with this scan's results.
  """
  cached = _read_scan_cache(cache_path) if full_check and cache_path else {}
  stats = {}

  def check(path):
    header = _header_problem(path)
    if header or not full_check:
      return header
    if cache_path:
      st = os.stat(path)
      stats[path] = [st.st_size, st.st_mtime_ns]
      entry = cached.get(path)
      if entry and entry[:2] == stats[path]:
        return entry[2]
    return _decode_problem(path)

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    problems = list(pool.map(check, paths))
  if full_check and cache_path:
    _write_scan_cache(cache_path, {p: stats[p] + [problem] for p, problem in zip(paths, problems)
                                   if p in stats})
  return problems


def scan_cache_path(cache_dir, directory):
  """Where the scan of the local folder `directory` is cached (None: not cached)."""
  if not cache_dir or '://' in directory:
    return None
  key = hashlib.sha256(os.path.abspath(directory).encode()).hexdigest()[:24]
  return os.path.join(os.path.expanduser(cache_dir), 'folder_scans', key + '.json')


def _read_scan_cache(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):  # Absent, or damaged: scan again.
    return {}


def _write_scan_cache(path, entries):
  """Best effort: a cache that cannot be written only costs the next start its speed."""
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f'{path}.tmp{os.getpid()}'
    with open(temporary, 'w') as f:
      json.dump(entries, f)
    os.replace(temporary, path)
  except OSError as e:
    logging.warning('Cannot write the folder scan cache %s (%s): the next start decodes every '
                    'image again.', path, e)


def scan_folder(root, split):
  """(paths, labels, class_names) of `root/<split>`; labels -1 if unlabelled."""
  directory = os.path.join(root, split)
  if not tf.io.gfile.isdir(directory):
    if split == 'train' and _list_images(root):
      directory = root  # A flat folder of images: unlabelled pretraining data.
    else:
      available = sorted(d for d in tf.io.gfile.listdir(root)
                         if tf.io.gfile.isdir(os.path.join(root, d)))
      raise DatasetError(f'No split {split!r} in {root}: expected {directory}/. '
                         f'Splits found: {available or "none"}.')
  classes = sorted(d.rstrip('/') for d in tf.io.gfile.listdir(directory)
                   if tf.io.gfile.isdir(os.path.join(directory, d)))
  paths, labels = [], []
  if classes:
    for index, cls in enumerate(classes):
      files = _list_images(os.path.join(directory, cls))
      paths += files
      labels += [index] * len(files)
  else:
    paths = _list_images(directory)
    labels = [-1] * len(paths)
  if not paths:
    raise DatasetError(f'No images ({"/".join(IMAGE_EXTENSIONS)}) under {directory}.')
  return paths, labels, classes


def folder_source(root, splits, strict=False, full_check_limit=FULL_CHECK_LIMIT,
                  scan_cache_dir=None) -> DatasetSource:
  """Folders up to `full_check_limit` images per split are decoded once up front, so
  every unreadable file is named, counted and left out of the split size; with
  `scan_cache_dir` the result is cached per file (path, size, mtime)."""
  if not tf.io.gfile.isdir(root):
    raise DatasetError(f'--dataset={root} is neither a TFDS name nor an existing folder.')
  scanned, skipped, class_names = {}, [], None
  for split in splits:
    base, subset_path = parse_subset_split(split)
    paths, labels, classes = scan_folder(root, base)
    if subset_path is not None:
      names = read_subset_list(subset_path)
      # Relative paths (class/file.jpg, as imagenet_subsets.make writes for folders) or base
      # names (the ImageNet lists).
      name_of = ((lambda p: os.path.relpath(p, os.path.join(root, base)))
                 if any('/' in n for n in names) else os.path.basename)
      keep = set(names) if any('/' in n for n in names) else {os.path.basename(n) for n in names}
      pairs = [(p, l) for p, l in zip(paths, labels) if name_of(p) in keep]
      missing = len(keep) - len(pairs)
      if missing:
        logging.warning('%d images of the subset list %s are not in %s/%s.', missing,
                        subset_path, root, base)
      paths, labels = [p for p, _ in pairs], [l for _, l in pairs]
    full_check = len(paths) <= full_check_limit
    if not full_check:
      logging.info('%s/%s has %d images: checking file headers only (bodies corrupt '
                   'behind a valid header are dropped while reading, unnamed).', root, base,
                   len(paths))
    problems = readable_images(paths, full_check,
                               scan_cache_path(scan_cache_dir, os.path.join(root, base)))
    ok = [problem is None for problem in problems]
    bad = [p for p, good in zip(paths, ok) if not good]
    if bad and strict:
      raise DatasetError(f'Not a decodable JPEG/PNG/GIF/BMP image: {bad[0]} '
                         f'({problems[ok.index(False)]}; strict image checking).')
    for path, problem in zip(paths, problems):
      if problem:
        logging.warning('Skipping unreadable image %s: %s', path, problem)
    skipped += bad
    if bad and len(bad) == len(paths):
      raise DatasetError(f'No readable image in {root}/{base}: all {len(bad)} image file(s) '
                         f'fail to decode (first: {bad[0]}).')
    scanned[split] = ([p for p, g in zip(paths, ok) if g],
                      [l for l, g in zip(labels, ok) if g])
    if classes and class_names is None:
      class_names = classes
  if skipped:
    logging.warning('Skipped %d unreadable image file(s) in %s.', len(skipped), root)

  def reader(split, input_context=None, shuffle_files=False, keep=None):
    paths, labels = scanned[split]
    ds = shard(keep_positions(tf.data.Dataset.from_tensor_slices(
        (paths, np.array(labels, np.int64))), keep), input_context)
    if shuffle_files:
      ds = ds.shuffle(len(paths), reshuffle_each_iteration=True)
    ds = ds.map(lambda p, l: (decode_image(tf.io.read_file(p)), l),
                num_parallel_calls=tf.data.AUTOTUNE)
    if not strict:  # A body corrupt past a valid header: drop it, don't stop.
      ds = ds.ignore_errors(log_warning=True)
    return ds

  return DatasetSource(root, len(class_names or []), {s: len(v[0]) for s, v in scanned.items()},
                       reader, tuple(skipped),
                       {s: np.array(v[1], np.int64) for s, v in scanned.items()})


def decode_jpeg(data):
  """RGB; truncated files recovered; scaled down 2/4/8x past MAX_DECODE_SIDE."""
  side = tf.reduce_max(tf.image.extract_jpeg_shape(data)[:2])

  def at(ratio):
    return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio,
                                     try_recover_truncated=True, acceptable_fraction=0.5)

  return tf.case([(side <= MAX_DECODE_SIDE, at(1)), (side <= 2 * MAX_DECODE_SIDE, at(2)),
                  (side <= 4 * MAX_DECODE_SIDE, at(4))], default=at(8))


def decode_image(data):
  """Decodes JPEG/PNG/GIF/BMP bytes to uint8 [H, W, 3]: the first frame, grayscale,
  alpha and palette to RGB, 16-bit scaled to 8, CMYK JPEGs converted."""
  return tf.cond(
      tf.io.is_jpeg(data), lambda: decode_jpeg(data),
      lambda: tf.io.decode_image(data, channels=3, expand_animations=False,
                                 dtype=tf.uint8))


# ---------------------------------------------------------------------------
# In-memory arrays (the embedded quickstart data, tests)


def array_source(name, splits: dict, num_classes) -> DatasetSource:
  """`splits` maps a split name to (uint8 images [N, H, W, 3], int labels [N])."""

  def reader(split, input_context=None, shuffle_files=False, keep=None):
    images, labels = splits[split]
    return shard(keep_positions(tf.data.Dataset.from_tensor_slices(
        (images, np.asarray(labels, np.int64))), keep), input_context)

  return DatasetSource(name, num_classes, {s: len(v[1]) for s, v in splits.items()}, reader,
                       split_labels={s: np.asarray(v[1], np.int64) for s, v in splits.items()})


def check_builtin_splits(name, available, wanted):
  """Refuses a split that a dataset built into the library (every one has `train` and
  `test`) lacks, naming the flags that choose its splits."""
  for split in wanted:
    if split not in available:
      raise DatasetError(f'The {name} dataset has splits {sorted(available)}, not {split!r}: '
                         'use --train_split=train --eval_split=test.')


def is_folder(dataset):
  """Whether --dataset names a folder. TFDS names may contain '/'
  (imagenet2012_subset/1pct): a path is an existing directory or starts like one."""
  return dataset.startswith(('/', './', '../', '~', 'gs://')) or tf.io.gfile.isdir(dataset)


def build_source(dataset, data_dir, splits, strict=False,
                 builtin: Optional[Callable] = None, scan_cache_dir=None) -> DatasetSource:
  """Resolves `--dataset`: a folder path, a built-in name (`builtin`), or TFDS."""
  if is_folder(dataset):
    return folder_source(os.path.expanduser(dataset), splits, strict,
                         scan_cache_dir=scan_cache_dir)
  if builtin is not None:
    source = builtin(dataset, data_dir, splits)
    if source is not None:
      return source
  return tfds_source(dataset, data_dir, splits)
