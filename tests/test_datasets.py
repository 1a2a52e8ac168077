"""Dataset sources: image folders (mixed formats, corrupt files), subset lists, TFDS."""
import hashlib
import os
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import SHARED_DIR
from tf2.data import datasets


def write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)


def png(value, channels=3, dtype=np.uint8, size=6):
  return tf.io.encode_png(np.full((size, size, channels), value, dtype)).numpy()


def jpg(value, size=6):
  return tf.io.encode_jpeg(np.full((size, size, 3), value, np.uint8), quality=100).numpy()


@pytest.fixture
def mixed_folder(tmp_path):
  root = tmp_path / 'data'
  write(root / 'train/cat/a.jpg', jpg(10))
  write(root / 'train/cat/b.png', png(20))
  write(root / 'train/cat/gray.png', png(30, channels=1))
  write(root / 'train/dog/rgba.png', png(40, channels=4))
  write(root / 'train/dog/deep.png', png(50 * 257, dtype=np.uint16))
  write(root / 'train/dog/upper.JPEG', jpg(60))
  write(root / 'train/dog/corrupt.jpg', b'<html>404 not found</html>')
  write(root / 'train/dog/notes.txt', b'not listed: wrong extension')
  write(root / 'test/cat/c.png', png(70))
  write(root / 'test/dog/d.png', png(80))
  return str(root)


def collect(ds):
  return [(img.numpy(), int(lbl)) for img, lbl in ds]


def test_labelled_mixed_format_folder(mixed_folder):
  source = datasets.build_source(mixed_folder, None, ['train', 'test'])
  assert source.num_classes == 2
  assert source.split_sizes == {'train': 6, 'test': 2}
  assert [os.path.basename(p) for p in source.skipped_files] == ['corrupt.jpg']
  items = collect(source.read('train'))
  assert len(items) == 6
  for image, _ in items:
    assert image.shape == (6, 6, 3) and image.dtype == np.uint8
  values = sorted((int(round(img.mean())), label) for img, label in items)
  # 16-bit 50*257 becomes 50 in 8 bits; JPEG values are within a level or two.
  assert [label for _, label in values] == [0, 0, 0, 1, 1, 1]
  assert np.allclose([v for v, _ in values], [10, 20, 30, 40, 50, 60], atol=2)


def test_strict_mode_names_the_corrupt_file(mixed_folder):
  with pytest.raises(datasets.DatasetError, match='corrupt.jpg'):
    datasets.build_source(mixed_folder, None, ['train'], strict=True)


def test_corrupt_body_behind_valid_header_is_named_and_counted(tmp_path):
  root = tmp_path / 'data'
  write(root / 'train/a/good.png', png(5))
  write(root / 'train/a/broken.png', b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
  write(root / 'train/a/cut.jpg', jpg(3)[:20])
  source = datasets.build_source(str(root), None, ['train'])
  assert sorted(os.path.basename(p) for p in source.skipped_files) == ['broken.png', 'cut.jpg']
  assert source.split_sizes == {'train': 1}
  assert len(collect(source.read('train'))) == 1
  with pytest.raises(datasets.DatasetError, match='broken.png'):
    datasets.build_source(str(root), None, ['train'], strict=True)


def test_a_restart_decodes_only_new_or_changed_files(tmp_path, monkeypatch):
  """The full decode check of a folder is cached by path, size and mtime: a second start
  decodes nothing, a file rewritten since is decoded again (and found broken), and a
  damaged cache only costs a full scan."""
  root, cache = tmp_path / 'data', str(tmp_path / 'cache')
  for i in range(6):
    write(root / f'train/c{i % 2}/{i}.png', png(10 * i))
  write(root / 'train/c0/bad.png', b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
  decoded = []
  real = datasets._decode_problem  # pylint: disable=protected-access
  monkeypatch.setattr(datasets, '_decode_problem', lambda p: decoded.append(p) or real(p))

  def start():
    decoded.clear()
    return datasets.build_source(str(root), None, ['train'], scan_cache_dir=cache)

  first = start()
  assert len(decoded) == 7 and first.split_sizes == {'train': 6}
  second = start()
  assert decoded == [] and second.split_sizes == {'train': 6}
  assert [os.path.basename(p) for p in second.skipped_files] == ['bad.png']
  write(root / 'train/c1/3.png', png(30)[:30])  # Rewritten, now cut short: new size.
  third = start()
  assert [os.path.basename(p) for p in decoded] == ['3.png']
  assert third.split_sizes == {'train': 5}
  (cache_file,) = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs]
  write(cache_file, b'{not json')
  start()
  assert len(decoded) == 7


def test_large_folders_check_headers_and_drop_bad_bodies_while_reading(tmp_path):
  root = tmp_path / 'data'
  write(root / 'train/a/good.png', png(5))
  write(root / 'train/a/broken.png', b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
  source = datasets.folder_source(str(root), ['train'], full_check_limit=1)
  assert source.split_sizes == {'train': 2} and not source.skipped_files
  assert len(collect(source.read('train'))) == 1


def test_unlabelled_folders(tmp_path):
  split_root = tmp_path / 'split'
  for i in range(3):
    write(split_root / f'train/{i}.png', png(i))
  source = datasets.build_source(str(split_root), None, ['train'])
  assert source.num_classes == 0 and source.split_sizes == {'train': 3}
  assert [label for _, label in collect(source.read('train'))] == [-1, -1, -1]
  flat = tmp_path / 'flat'
  for i in range(2):
    write(flat / f'{i}.jpg', jpg(i))
  assert datasets.build_source(str(flat), None, ['train']).split_sizes == {'train': 2}


def test_folder_errors(tmp_path):
  (tmp_path / 'empty/train/cls').mkdir(parents=True)
  with pytest.raises(datasets.DatasetError, match='No images'):
    datasets.build_source(str(tmp_path / 'empty'), None, ['train'])
  with pytest.raises(datasets.DatasetError, match="No split 'validation'"):
    datasets.build_source(str(tmp_path / 'empty'), None, ['validation'])
  with pytest.raises(datasets.DatasetError, match='neither a TFDS name nor'):
    datasets.build_source(str(tmp_path / 'missing'), None, ['train'])


def test_subset_list_selects_exactly_the_listed_files(tmp_path):
  root = tmp_path / 'data'
  for i in range(10):
    write(root / f'train/c{i % 2}/n{i:04d}.png', png(i * 10))
  listed = ['n0001.png', 'n0004.png', 'n0007.png', 'n0008.png']
  subset = tmp_path / 'subset.txt'
  subset.write_text('\n'.join(listed) + '\n')
  for split in (str(subset), f'train:{subset}'):
    source = datasets.build_source(str(root), None, [split])
    assert source.num_examples(split) == 4
    got = sorted(int(img[0, 0, 0]) // 10 for img, _ in collect(source.read(split)))
    assert got == [1, 4, 7, 8]


@pytest.mark.skipif(not os.path.isdir(SHARED_DIR), reason='../shared is absent')
def test_published_one_percent_list():
  path = os.path.join(SHARED_DIR, 'reference', 'imagenet_subsets', '1percent.txt')
  names = datasets.read_subset_list(path)
  assert len(names) == 12811 and len(set(names)) == 12811
  digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
  assert digest.startswith('71e82a48') and digest.endswith('cf17')


def test_tfds_through_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=12):
    source = datasets.build_source('cifar10', str(tmp_path), ['train', 'test[:50%]'])
    assert source.num_classes == 10
    assert source.split_sizes['train'] == 12
    image, label = next(iter(source.read('train')))
    assert image.shape == (32, 32, 3) and 0 <= int(label) < 10


def test_tfds_sample_reads_the_kept_positions_decoded(real_cifar10):
  """A sample of a TFDS split skips decoding the rest and yields exactly the examples at
  the kept positions of the full read, decoded as the full read decodes them."""
  source = datasets.build_source('cifar10', real_cifar10, ['test[:200]'])
  full = [(image.numpy(), int(label)) for image, label in source.read('test[:200]')]
  keep = np.zeros(200, bool)
  keep[[0, 7, 99, 150, 199]] = True
  sampled = list(source.read('test[:200]', keep=keep))
  assert len(sampled) == 5 and source.labels('test[:200]') is None
  for (image, label), position in zip(sampled, np.flatnonzero(keep)):
    np.testing.assert_array_equal(image.numpy(), full[position][0])
    assert int(label) == full[position][1]


def test_tfds_errors_fail_fast_without_downloading(tmp_path):
  with pytest.raises(datasets.DatasetError, match='does not know a dataset'):
    datasets.build_source('no_such_dataset_xyz', str(tmp_path), ['train'])
  start = time.time()
  with pytest.raises(datasets.DatasetError, match='not prepared'):
    datasets.build_source('cifar10', str(tmp_path), ['train'])
  assert time.time() - start < 30


def test_real_cifar10(real_cifar10):
  source = datasets.build_source('cifar10', real_cifar10, ['train', 'test'])
  assert source.num_classes == 10
  assert source.split_sizes == {'train': 2000, 'test': 10000}
  labels = [int(l) for _, l in source.read('test').take(500)]
  assert len(set(labels)) == 10


def test_missing_tfds_split_is_named(real_cifar10):
  start = time.time()
  with pytest.raises(datasets.DatasetError, match="Split 'validation' of cifar10"):
    datasets.build_source('cifar10', real_cifar10, ['train', 'validation'])
  assert time.time() - start < 30


def test_palette_png_and_cmyk_jpeg_decode_to_rgb(tmp_path):
  import io
  from PIL import Image
  rgb = np.zeros((6, 6, 3), np.uint8)
  rgb[...] = (200, 50, 100)
  palette, cmyk = io.BytesIO(), io.BytesIO()
  Image.fromarray(rgb).quantize(colors=4).save(palette, 'PNG')  # adaptive palette
  Image.fromarray(rgb).convert('CMYK').save(cmyk, 'JPEG', quality=100)
  write(tmp_path / 'd/train/x/palette.png', palette.getvalue())
  write(tmp_path / 'd/train/x/cmyk.jpg', cmyk.getvalue())
  source = datasets.build_source(str(tmp_path / 'd'), None, ['train'])
  for image, _ in collect(source.read('train')):
    assert image.shape == (6, 6, 3)
    assert np.abs(image.astype(int) - rgb).max() <= 2


def test_gray_alpha_truncated_and_huge_images(tmp_path):
  """Grayscale+alpha decodes to RGB; a JPEG cut in half is recovered; a
  20000x20000 JPEG is decoded at 1/4 scale (5000 px, not 1.2 GB); a PNG too
  large to decode whole is skipped with its size named; nothing runs out of memory."""
  from PIL import Image
  root = tmp_path / 'd'
  write(root / 'train/x/ga.png', png(90, channels=2))
  photo = tf.io.encode_jpeg(np.random.RandomState(0).randint(0, 256, (64, 64, 3), np.uint8),
                            quality=90).numpy()
  write(root / 'train/x/cut.jpg', photo[:len(photo) // 2])
  Image.new('L', (20000, 20000), 120).save(root / 'train/x/huge.jpg', quality=50)
  header = png(0)
  header = header[:16] + (30000).to_bytes(4, 'big') * 2 + header[24:]  # IHDR: 30000x30000.
  write(root / 'train/x/huge.png', header)
  source = datasets.build_source(str(root), None, ['train'])
  assert source.skipped_files == (str(root / 'train/x/huge.png'),)
  shapes = {}
  for image, _ in source.read('train'):
    shapes[image.shape] = image.numpy()
  assert set(shapes) == {(6, 6, 3), (64, 64, 3), (5000, 5000, 3)}
  assert np.all(shapes[(6, 6, 3)] == 90)
  assert abs(int(np.median(shapes[(5000, 5000, 3)])) - 120) <= 2


def test_folder_without_a_readable_image_is_named(tmp_path):
  write(tmp_path / 'd/train/x/a.jpg', b'garbage')
  write(tmp_path / 'd/train/x/b.png', b'\x89PNG\r\n\x1a\n' + b'\x00' * 40)
  with pytest.raises(datasets.DatasetError, match=r'No readable image in .*/train: all 2'):
    datasets.build_source(str(tmp_path / 'd'), None, ['train'])


def test_partial_tfds_directory_is_named(real_cifar10, tmp_path):
  import shutil
  version = os.path.join(real_cifar10, 'cifar10', '3.0.2')
  partial = tmp_path / 'cifar10' / '3.0.2'
  partial.mkdir(parents=True)
  for name in os.listdir(version):
    if not name.startswith('cifar10-train.tfrecord'):
      shutil.copy(os.path.join(version, name), partial)
  start = time.time()
  with pytest.raises(datasets.DatasetError, match="incomplete: 1 of the 1 files of split 'train'"):
    datasets.build_source('cifar10', str(tmp_path), ['train', 'test'])
  assert time.time() - start < 30
