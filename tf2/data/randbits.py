"""RandBits: k random bits fixed per image, added to every view as constant channels.

The feature-suppression experiment of "Intriguing Properties of Contrastive
Losses" (section 4, Fig. 5a): the bits tell images apart as well as their
content does, and carry nothing about the label, so a contrastive network can
solve its task with them and learn less of the content.

- The bits are a hash of the image's pixels (the notebook hashes its JPEG
  encoding): the same image always gets the same bits, in every view and
  every epoch, and different images independent ones.
- They go in as k constant channels after the RGB ones of each view, the
  same in both views. A crop and a resize leave a constant plane as it is,
  so they are appended to each view after its crop, as the notebook does.
  The colour distortion has run on the RGB channels by then, and the device
  augmentations (blur, `--color_jitter_on_device`) touch only those.
"""
import tensorflow as tf

from tf2.data import augment


def image_bits(image, bits):
  """float32 [bits] of 0s and 1s: `bits` bits of a hash of the pixels of `image`."""
  digest = tf.strings.to_hash_bucket_fast(tf.io.serialize_tensor(image), 2 ** bits)
  return tf.cast(tf.bitwise.right_shift(digest, tf.range(bits, dtype=tf.int64)) % 2,
                 tf.float32)


def append_bits(stacked, bits, views):
  """[H, W, 3 views] -> [H, W, (3 + k) views]: each view followed by the k constant
  planes of `bits` ([k])."""
  shape = tf.shape(stacked)
  planes = tf.broadcast_to(bits, [shape[0], shape[1], tf.size(bits)])
  return tf.concat([part for view in tf.split(stacked, views, axis=-1)
                    for part in (view, planes)], -1)


def with_bits(stacked, image, bits, views):
  """`append_bits` with the bits of `image`, the decoded image the views were made from
  (made RGB first, so that a grey image and its RGB decoding get the same bits)."""
  return append_bits(stacked, image_bits(augment.to_rgb(image), bits), views)
