"""`--dataset=shapes`: the embedded quickstart dataset, generated in memory, no download.

Six classes that differ only in the object's shape (disk, ring, square,
triangle, plus, star). Everything else varies at random per image: the
object's and the background's grey levels (one dark, one light, either way
round), position, scale, rotation and pixel noise, so a representation must
ignore brightness, polarity and position to separate the classes: what
SimCLR's crops and colour distortion teach. The tones are grey, not
coloured: with saturated colours, a colour pair tells images apart so well
that a short run learns colour instead of shape (docs/performance.md#quickstart).
Deterministic for a given seed; 32x32 RGB uint8.
Splits: `train` (default 10,000 images) and `test` (2,000), balanced.
"""
import numpy as np

from tf2.data.datasets import array_source, check_builtin_splits

NAME = 'shapes'
CLASSES = ('disk', 'ring', 'square', 'triangle', 'plus', 'star')
SPLIT_SIZES = {'train': 10000, 'test': 2000}
SPLIT_SEEDS = {'train': 1, 'test': 2}
SIZE = 32
# Grey levels: one tone from each band, so that the shape always stands out.
DARK, LIGHT = (0.05, 0.35), (0.65, 0.95)


def _inside(shape, u, v):
  """Mask of points (u, v) in the shape's unit frame (radius about 1)."""
  r = np.hypot(u, v)
  if shape == 'disk':
    return r <= 1.0
  if shape == 'ring':
    return (r <= 1.0) & (r >= 0.55)
  if shape == 'square':
    return np.maximum(np.abs(u), np.abs(v)) <= 0.8
  if shape == 'triangle':
    return (v >= -0.5) & (np.sqrt(3.0) * np.abs(u) + v <= 1.0)
  if shape == 'plus':
    return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0))
  if shape == 'star':
    angle = np.arctan2(v, u)
    return r <= 0.45 + 0.55 * (0.5 + 0.5 * np.cos(5.0 * angle)) ** 2
  raise ValueError(shape)


def generate(num_images, seed, size=SIZE):
  """(uint8 images [N, size, size, 3], int64 labels [N]), classes balanced."""
  rng = np.random.RandomState(seed)
  labels = np.arange(num_images) % len(CLASSES)
  rng.shuffle(labels)
  grid = (np.arange(size) + 0.5) / size * 2.0 - 1.0          # pixel centres in [-1, 1]
  y, x = np.meshgrid(grid, grid, indexing='ij')
  images = np.empty([num_images, size, size, 3], np.uint8)
  for index, label in enumerate(labels):
    scale = rng.uniform(0.5, 0.85)
    cx, cy = rng.uniform(-1 + scale, 1 - scale, size=2)
    theta = rng.uniform(0, 2 * np.pi)
    cos, sin = np.cos(theta), np.sin(theta)
    u = (cos * (x - cx) + sin * (y - cy)) / scale
    v = (-sin * (x - cx) + cos * (y - cy)) / scale
    mask = _inside(CLASSES[label], u, v)[..., None]
    dark, light = rng.uniform(*DARK), rng.uniform(*LIGHT)
    foreground, background = (dark, light) if rng.rand() < 0.5 else (light, dark)
    image = np.where(mask, foreground, background) + rng.normal(0, 0.03, [size, size, 3])
    images[index] = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
  return images, labels.astype(np.int64)


def source(wanted):
  """The `DatasetSource` of the `wanted` splits (`runner.BUILTIN`), generated."""
  check_builtin_splits(NAME, SPLIT_SIZES, wanted)
  return array_source(NAME, {split: generate(SPLIT_SIZES[split], SPLIT_SEEDS[split])
                             for split in wanted}, len(CLASSES))
