"""A TFDS dataset that is not prepared yet is downloaded and prepared, as the original does.

The original `run.py` calls `builder.download_and_prepare()`, so its README's
CIFAR-10 command fetches CIFAR-10 by itself; so does ours. Before any
download the hosts the builder will contact (its registered download URLs)
are checked, so that a machine without the network fails in seconds with
what to do (TFDS itself retries for minutes). The source URLs are used, not
TFDS's prepared copies on Google Cloud Storage (`try_download_gcs=False`):
the hosts checked are the hosts contacted. A dataset whose files must be
downloaded by hand (ImageNet) stops with TFDS's instructions and where to
put the files. `--tfds_download=False` refuses to download at all, for
machines that must not reach out. In a multi-worker run only the chief
prepares; the others wait for it at a barrier, then read its copy
(`runner.py`, `cluster.barrier`).
"""
import os
import socket
import time
import urllib.parse

from absl import logging
import tensorflow as tf

from tf2.errors import DatasetError, first_line

CONNECT_TIMEOUT = 5.0  # Seconds per host: a reachable download server answers well within.


def builder_of(name, data_dir):
  """The TFDS builder of `name`; DatasetError for a name TFDS does not know."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DatasetError(
        f'TFDS does not know a dataset named {name!r}. Check the spelling '
        '(e.g. cifar10, imagenet2012, imagenet2012_subset/1pct), or pass a '
        'folder of images as --dataset=/path/to/root.') from e


def hosts(urls):
  """(host, port) of each URL, in order, without repeats."""
  found = []
  for url in urls:
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == 'https' else 80)
    if parsed.hostname and (parsed.hostname, port) not in found:
      found.append((parsed.hostname, port))
  return found


def check_reachable(name, urls, data_dir):
  """DatasetError, within seconds, if a host of `urls` cannot be reached."""
  for host, port in hosts(urls):
    try:
      with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
        pass
    except OSError as e:
      raise DatasetError(
          f'The TFDS dataset {name!r} is not prepared in {data_dir} and cannot be downloaded '
          f'here: {host}:{port} is unreachable ({type(e).__name__}: {e}). Pass --data_dir=<dir> '
          f'holding a prepared copy, or prepare one on a machine with the network '
          f'(`tfds build {name.split("/")[0]} --data_dir=<dir>`) and copy <dir> here.') from e


def data_root(builder_dir, name):
  """The TFDS data directory of a builder's `builder_dir` (root/name[/config]/version)."""
  path = builder_dir.rstrip('/')
  for _ in range(len(name.split('/')) + 1):
    path = os.path.dirname(path)
  return path


def manual_files_missing(builder, manual_dir):
  """True if the builder needs files downloaded by hand and `manual_dir` holds none."""
  if not getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None):
    return False
  return not (tf.io.gfile.isdir(manual_dir) and tf.io.gfile.listdir(manual_dir))


def ensure_prepared(name, data_dir, allow_download=True):
  """Downloads and prepares TFDS dataset `name` in `data_dir` unless it is there."""
  builder = builder_of(name, data_dir)
  if builder.is_prepared():
    return
  where = builder.data_dir
  if not allow_download:
    raise DatasetError(
        f'The TFDS dataset {name!r} is not prepared in {where}, and --tfds_download=False '
        f'refuses to download it: prepare it once (`tfds build {name.split("/")[0]} '
        '--data_dir=<dir>`) and pass --data_dir=<dir>, or allow the download.')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  manual_dir = os.path.join(data_root(where, name), 'downloads', 'manual')
  if manual_files_missing(builder, manual_dir):
    raise DatasetError(
        f'The TFDS dataset {name!r} is not prepared in {where} and must be downloaded by '
        f'hand first. TFDS says: {" ".join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())} '
        f'Put those files in {manual_dir} and run the same command again.')
  if not getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None):
    check_reachable(name, list(builder.url_infos or {}), where)
  logging.info('The TFDS dataset %r is not prepared in %s: downloading and preparing it '
               '(as the original run.py does; --tfds_download=False refuses).', name, where)
  start = time.time()
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=manual_dir, try_download_gcs=False))
  except Exception as e:  # Network, disk or checksum failures of TFDS: all the user's to fix.
    raise DatasetError(
        f'Downloading and preparing the TFDS dataset {name!r} into {where} failed '
        f'({type(e).__name__}: {first_line(e)}). Run the same command again (finished '
        'downloads are kept), or prepare it elsewhere with `tfds build` and pass its '
        '--data_dir.') from e
  logging.info('Prepared %r in %s (%.0f s).', name, where, time.time() - start)
