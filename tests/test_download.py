"""TFDS datasets that are not prepared are downloaded and prepared, as the original does;
offline, refused, or by hand they stop in seconds with what to do. No test reaches the
internet: downloads come from a server on 127.0.0.1 (tests/tfds_server.py)."""
import socket
import time

import pytest
import tensorflow as tf

import tfds_server
from conftest import TINY_RUN
from tf2 import runner
from tf2.config import Config
from tf2.data import datasets
from tf2.data import download
from tf2.errors import DatasetError


@pytest.fixture
def served_cifar10(tmp_path, monkeypatch):
  """A small CIFAR-10 archive served on loopback, the cifar10 builder pointed at it."""
  (tmp_path / 'www').mkdir()
  archive = tmp_path / 'www' / tfds_server.ARCHIVE
  data = tfds_server.tarball(str(archive))
  server = tfds_server.Server(tmp_path / 'www')
  tfds_server.redirect_cifar10(f'{server.url}/{tfds_server.ARCHIVE}',
                               *tfds_server.url_info(str(archive)), monkeypatch.setattr)
  yield server, data
  server.close()


def offline(monkeypatch):
  """Every connection fails as on a machine without the network; returns the hosts tried."""
  tried = []

  def refuse(address, *args, **kwargs):
    tried.append(address)
    raise socket.gaierror(-2, 'Name or service not known')

  monkeypatch.setattr(socket, 'create_connection', refuse)
  return tried


def test_run_downloads_prepares_and_trains_on_a_missing_dataset(served_cifar10, tmp_path):
  server, data = served_cifar10
  config = Config(**dict(TINY_RUN, dataset='cifar10'), data_dir=str(tmp_path / 'tfds'),
                  model_dir=str(tmp_path / 'run'), mode='train', log_every_secs=0)
  assert runner.run(config) is None
  assert server.requests == [f'/{tfds_server.ARCHIVE}']
  assert tf.train.latest_checkpoint(config.model_dir).endswith('ckpt-1')
  source = datasets.build_source('cifar10', config.data_dir, ['train', 'test'])
  assert source.num_classes == 10
  for split, (images, labels) in data.items():
    got = list(source.read(split).as_numpy_iterator())
    assert len(got) == len(labels)
    # The builder's order is its own: compare the examples as a set of (image, label).
    want = sorted((i.tobytes(), int(l)) for i, l in zip(images, labels))
    assert sorted((i.tobytes(), int(l)) for i, l in got) == want
  runner.run(config.replace(train_steps=2))  # Prepared: nothing is downloaded again.
  assert len(server.requests) == 1


def test_offline_a_missing_dataset_fails_in_seconds_naming_the_host(tmp_path, monkeypatch):
  tried = offline(monkeypatch)
  start = time.time()
  with pytest.raises(DatasetError, match=r"'cifar10' is not prepared in .* cannot be "
                                         r'downloaded here: www.cs.toronto.edu:443 is '
                                         r'unreachable.*--data_dir.*tfds build cifar10'):
    download.ensure_prepared('cifar10', str(tmp_path))
  assert time.time() - start < 30
  assert [address[0] for address in tried] == ['www.cs.toronto.edu']
  assert not (tmp_path / 'downloads').exists()


def test_downloads_can_be_refused(tmp_path, monkeypatch):
  tried = offline(monkeypatch)
  with pytest.raises(DatasetError, match='--tfds_download=False refuses to download it'):
    download.ensure_prepared('cifar10', str(tmp_path), allow_download=False)
  assert not tried


def test_a_manual_download_is_explained_without_the_network(tmp_path, monkeypatch):
  tried = offline(monkeypatch)
  manual = tmp_path / 'downloads' / 'manual'
  with pytest.raises(DatasetError, match=r'must be downloaded by hand first\. TFDS says: .*'
                                         r'ILSVRC2012_img_train.tar.* Put those files in '
                                         + str(manual)):
    download.ensure_prepared('imagenet2012', str(tmp_path))
  assert not tried


def test_an_unknown_name_is_named():
  with pytest.raises(DatasetError, match="TFDS does not know a dataset named 'no_such_set'"):
    download.ensure_prepared('no_such_set', None)


def test_a_prepared_dataset_is_not_checked_or_downloaded(served_cifar10, tmp_path, monkeypatch):
  server, _ = served_cifar10
  download.ensure_prepared('cifar10', str(tmp_path))
  tried = offline(monkeypatch)
  download.ensure_prepared('cifar10', str(tmp_path))
  assert not tried and len(server.requests) == 1


def test_hosts_of_urls():
  assert download.hosts(['https://a.org/x', 'http://b.org:8080/y', 'https://a.org/z']) == [
      ('a.org', 443), ('b.org', 8080)]
  assert download.data_root('/d/imagenet2012_subset/1pct/5.0.0', 'imagenet2012_subset/1pct') == '/d'
  assert download.data_root('/d/cifar10/3.0.2', 'cifar10') == '/d'


@pytest.mark.slow
def test_in_a_multi_worker_run_only_the_chief_downloads(tmp_path):
  """Two workers on 127.0.0.1 sharing --data_dir: one download, by the chief; the other
  waits for it at a barrier, then both train on the prepared copy."""
  import harness  # pylint: disable=g-import-not-at-top
  from test_cluster import start_workers  # pylint: disable=g-import-not-at-top
  (tmp_path / 'www').mkdir()
  archive = tmp_path / 'www' / tfds_server.ARCHIVE
  tfds_server.tarball(str(archive))
  server = tfds_server.Server(tmp_path / 'www')
  try:
    size, checksum = tfds_server.url_info(str(archive))
    procs = start_workers(
        tmp_path, ['--dataset=cifar10', f'--data_dir={tmp_path / "tfds"}', '--train_steps=1',
                   '--mode=train', f'--model_dir={tmp_path / "run"}'],
        SIMCLR_TEST_CIFAR10=f'{server.url}/{tfds_server.ARCHIVE} {size} {checksum}')
    assert harness.wait_all(procs, 240) == [0, 0], harness.output(procs[0])[-3000:]
  finally:
    server.close()
  assert server.requests == [f'/{tfds_server.ARCHIVE}']
  chief, other = (harness.output(p) for p in procs)
  assert 'downloading and preparing it' in chief and 'downloading' not in other
  assert tf.train.latest_checkpoint(str(tmp_path / 'run')).endswith('ckpt-1')
