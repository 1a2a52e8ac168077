"""The loader gives the same outputs from our export and from a signature-style module."""
import numpy as np
import tensorflow as tf

from checkpoints import loader
from tf2 import export
from tf2.config import Config
from tf2.models.model import SimCLRModel

CONFIG = Config(resnet_depth=18, image_size=32, use_tpu=False, resnet_base_width=8,
                train_mode='finetune')


def test_our_export_and_a_tf1_style_signature_agree(tmp_path):
  model = SimCLRModel(CONFIG, 5).build_for()
  images = tf.random.uniform([3, 32, 32, 3], seed=7)
  ours = loader.load(export.export_saved_model(model, str(tmp_path), 1))
  assert ours.kind == 'tf2'

  # A TF1 hub module exposes a 'default' signature: images -> endpoints + 'default'.
  module = tf.Module()
  module.model = model

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def default(images):
    out = model(images, training=False, return_endpoints=True)
    return dict({k: v for k, v in out.items() if k != 'final_avg_pool'},
                default=out['final_avg_pool'])

  tf.saved_model.save(module, str(tmp_path / 'tf1_style'), signatures={'default': default})
  signature = loader.load(str(tmp_path / 'tf1_style'))
  assert signature.kind == 'tf1_signature'

  reference = model(images, training=False, return_endpoints=True)
  for features in (ours, signature):
    out = features(images)
    assert set(out) == set(reference)
    for key in reference:
      np.testing.assert_allclose(out[key].numpy(), reference[key].numpy(), atol=1e-5)


def test_a_tf1_format_module_with_train_and_inference_graphs(tmp_path, rng):
  """A TF1 SavedModel as hub modules are: two MetaGraphs, a 'default' signature."""
  path = str(tmp_path / 'tf1_hub')
  scale = rng.rand(3).astype(np.float32)
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
    weight = tf.compat.v1.get_variable('base_model/scale', initializer=scale)
    pooled = tf.reduce_mean(images, [1, 2]) * weight
    outputs = {'default': pooled, 'block_group4': images * weight, 'logits_sup': pooled * 2.0}
    signature = tf.compat.v1.saved_model.predict_signature_def({'images': images}, outputs)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      builder = tf.compat.v1.saved_model.Builder(path)
      builder.add_meta_graph_and_variables(session, [], signature_def_map={'default': signature})
      builder.add_meta_graph(['train'], signature_def_map={'default': signature})
      builder.save()
  batch = rng.rand(2, 8, 8, 3).astype(np.float32)
  out = loader.load(path)(batch)
  assert set(out) == {'final_avg_pool', 'block_group4', 'logits_sup'}
  np.testing.assert_allclose(out['final_avg_pool'].numpy(), batch.mean((1, 2)) * scale,
                             rtol=1e-5)
