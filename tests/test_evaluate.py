"""Evaluation: top-1/top-5 over every example exactly once, under 8 replicas; result files."""
import json

import numpy as np
import tensorflow as tf

from tf2.config import Config
from tf2.evaluation import evaluate as evaluation
from tf2.evaluation import results as results_lib
from tf2.data.datasets import array_source
from tf2.models.model import SimCLRModel

CONFIG = Config(resnet_depth=18, image_size=16, use_tpu=False, global_bn=False,
                resnet_base_width=8, train_mode='finetune', eval_split='test',
                eval_batch_size=16, weight_decay=1e-4, optimizer='momentum')


def test_counts_match_numpy_on_8_replicas(strategy8, rng, tmp_path):
  num = 50  # Not a multiple of the batch or of the replica count.
  images = rng.randint(0, 256, [num, 16, 16, 3]).astype(np.uint8)
  labels = rng.randint(0, 7, num)
  source = array_source('arrays', {'test': (images, labels)}, num_classes=7)
  with strategy8.scope():
    model = SimCLRModel(CONFIG, 7).build_for()
    for v in model.supervised_head.variables:  # Non-trivial logits.
      v.assign(tf.random.normal(v.shape, seed=1))
  result = evaluation.evaluate(CONFIG, model, strategy8, source, step=5)

  logits = model(tf.constant(images, tf.float32) / 255.0, training=False)['logits_sup'].numpy()
  top1 = np.mean(logits.argmax(1) == labels)
  top5 = np.mean([labels[i] in np.argsort(-logits[i])[:5] for i in range(num)])
  assert result['eval/num_examples'] == num
  np.testing.assert_allclose(result[evaluation.TOP_1], top1, atol=1e-9)
  np.testing.assert_allclose(result[evaluation.TOP_5], top5, atol=1e-9)
  assert 0 < top1 < top5 < 1
  l2 = sum(float(np.sum(v.numpy() ** 2)) / 2 for v in model.trainable_variables
           if 'batch_normalization' not in v.path)
  np.testing.assert_allclose(result[evaluation.REGULARIZATION], 1e-4 * l2, rtol=1e-5)

  results_lib.write_results(CONFIG, result, str(tmp_path))
  for name in ('result.json', 'result_5.json'):
    with open(tmp_path / name) as f:
      assert json.load(f)[evaluation.TOP_1] == result[evaluation.TOP_1]
  with open(tmp_path / 'flags.json') as f:
    flags = json.load(f)
  assert flags['train_mode'] == 'finetune' and flags['eval_batch_size'] == 16


def test_evaluating_at_every_checkpoint_traces_once(rng):
  """The eval step is made once per model: later evaluations (new weights, same
  shapes) reuse its trace, and the results follow the new weights."""
  images = rng.randint(0, 256, [20, 16, 16, 3]).astype(np.uint8)
  source = array_source('arrays', {'test': (images, rng.randint(0, 7, 20))}, num_classes=7)
  strategy = tf.distribute.get_strategy()
  model = SimCLRModel(CONFIG, 7).build_for()
  evaluator = evaluation.Evaluator(CONFIG, model, strategy)
  results = []
  for seed in range(3):
    for v in model.supervised_head.variables:
      v.assign(tf.random.normal(v.shape, seed=seed))
    results.append(evaluator(source, step=seed))
  step = evaluator.step
  assert step is not None and step.experimental_get_tracing_count() == 2  # Full + partial batch.
  logits = model(tf.constant(images, tf.float32) / 255.0, training=False)['logits_sup'].numpy()
  np.testing.assert_allclose(results[-1][evaluation.TOP_1],
                             np.mean(logits.argmax(1) == source.read('test').map(
                                 lambda x, y: y).batch(20).get_single_element().numpy()))
