"""A CIFAR-10 download on the loopback address, for the tests of downloading TFDS datasets.

`tarball` writes a small archive in the format of the real CIFAR-10 binary
release (`cifar-10-batches-bin/` with five training batch files, a test
batch and `batches.meta.txt`; each record one label byte and 3,072 bytes of
pixels, channel-major), and `Server` serves a folder on 127.0.0.1 in a
thread, recording each path requested. `redirect_cifar10` points TFDS's real
`cifar10` builder at such a URL, with the archive's checksum registered as
TFDS registers the real one, so the builder runs unchanged.
"""
import functools
import hashlib
import http.server
import io
import tarfile
import threading
import types

import numpy as np

CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck')
ARCHIVE = 'cifar-10-binary.tar.gz'


def tarball(path, train_per_file=4, test=10, seed=0):
  """Writes the archive; returns {split: (images [N, 32, 32, 3] uint8, labels [N])}."""
  rng = np.random.RandomState(seed)
  splits = {'train': [], 'test': []}
  members = {}
  for name, count, split in ([(f'data_batch_{i}.bin', train_per_file, 'train')
                              for i in range(1, 6)] + [('test_batch.bin', test, 'test')]):
    labels = rng.randint(0, 10, count).astype(np.uint8)
    images = rng.randint(0, 256, (count, 32, 32, 3)).astype(np.uint8)
    records = np.concatenate([labels[:, None], images.transpose(0, 3, 1, 2).reshape(count, -1)],
                             axis=1)
    members[name] = records.tobytes()
    splits[split].append((images, labels))
  members['batches.meta.txt'] = ('\n'.join(CLASSES) + '\n').encode()
  with tarfile.open(path, 'w:gz') as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(f'cifar-10-batches-bin/{name}')
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return {split: (np.concatenate([i for i, _ in parts]), np.concatenate([l for _, l in parts]))
          for split, parts in splits.items()}


class Server:
  """Serves `directory` on 127.0.0.1 (any free port) until closed; `requests` lists the
  paths asked for."""

  def __init__(self, directory):
    self.requests = []
    server = self

    class Handler(http.server.SimpleHTTPRequestHandler):
      def do_GET(self):  # pylint: disable=invalid-name
        server.requests.append(self.path)
        super().do_GET()

      def log_message(self, *args):  # Quiet.
        del args

    self.httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(directory)))
    self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
    self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
    self.thread.start()

  def close(self):
    self.httpd.shutdown()
    self.httpd.server_close()


def url_info(path):
  """(size, sha256) of a file, as TFDS registers a download."""
  with open(path, 'rb') as f:
    data = f.read()
  return len(data), hashlib.sha256(data).hexdigest()


def redirect_cifar10(url, size, checksum, patch):
  """Points TFDS's cifar10 builder at `url` (the archive of `tarball`), registered with
  its size and checksum. `patch(target, name, value)`: e.g. monkeypatch.setattr."""
  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import checksums
  from tensorflow_datasets.image_classification import cifar
  # The real description, for its file names; only its URL changes.
  info = cifar.Cifar10._cifar_info.fget(types.SimpleNamespace(name='cifar10'))
  patch(cifar.Cifar10, '_cifar_info', property(lambda self: info._replace(url=url)))
  patch(cifar.Cifar10, 'url_infos', {url: checksums.UrlInfo(size=size, checksum=checksum,
                                                            filename=ARCHIVE)})
