"""Linear evaluation on frozen features (SimCLR section 4 protocol, full-batch form).

Features are the encoder output (`features.REPRESENTATION`: the ResNet's
pooled `final_avg_pool`) of centre-cropped images, computed once in inference mode on every replica
(`tf2/evaluation/features.py`); a multinomial
logistic regression is fitted on the standardised training features by
full-batch Adam with a small L2 penalty, and its test accuracy is reported.
`compare_with_random_encoder` runs the same protocol on a randomly
initialised encoder of the same architecture, whose BatchNorm statistics are
first estimated on training images (otherwise its untrained moving averages
would make the baseline unfairly weak). The encoders are probed one after the
other, so only one encoder's features are held at a time, and at most
`--linear_probe_max_examples` training examples of them.
"""
from absl import logging
import numpy as np
import tensorflow as tf

from tf2.data import input_pipeline
from tf2.evaluation import features

PROBE_SEED = 0


def _eval_batches(source, config, split, batch_size):
  """(images, labels) batches of `split` with evaluation preprocessing, unsharded."""
  return input_pipeline.make_input_fn(source, config, is_training=False, split=split,
                                      global_batch_size=batch_size)()


def estimate_batch_norm_statistics(model, source, config, split, batches=20, batch_size=256):
  """Runs training-mode forward passes (no weight update) so BN moving averages fit the data."""
  size = config.image_size

  @tf.function(input_signature=[tf.TensorSpec([None, size, size, config.view_channels],
                                               tf.float32)])
  def forward(images):
    model(images, training=True)

  for images, _ in _eval_batches(source, config, split, batch_size).take(batches):
    forward(images)


def fit_logistic_regression(train_x, train_y, num_classes, steps=500, l2=1e-4,
                            learning_rate=0.05):
  """Returns predict(x) -> class ids, for weights fitted on standardised features."""
  mean, std = train_x.mean(0), train_x.std(0) + 1e-6
  x = tf.constant((train_x - mean) / std)
  y = tf.constant(train_y.astype(np.int32))
  w = tf.Variable(tf.zeros([x.shape[1], num_classes]))
  b = tf.Variable(tf.zeros([num_classes]))
  optimizer = tf.optimizers.Adam(learning_rate)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      logits = tf.matmul(x, w) + b
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
      loss += l2 * tf.reduce_sum(w * w)
    optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))
    return loss

  for _ in range(steps):
    step()

  def predict(features):
    logits = tf.matmul(tf.constant((features - mean) / std), w) + b
    return tf.argmax(logits, 1).numpy()

  return predict


def probe_accuracy(model, strategy, source, config, train_split, test_split, num_classes):
  """Test accuracy of the probe fitted on at most --linear_probe_max_examples train
  examples (a seeded sample spread over the split, the same for every encoder)."""
  cap = config.linear_probe_max_examples
  extractor = features.FeatureExtractor(config, model, strategy)
  train_x, train_y = extractor(source, train_split, sample=cap, seed=PROBE_SEED)
  logging.info('Linear probe fitted on %d of the %d %s examples%s.', len(train_y),
               source.num_examples(train_split), train_split,
               f' (--linear_probe_max_examples={cap})'
               if len(train_y) < source.num_examples(train_split) else '')
  test_x, test_y = extractor(source, test_split)
  predict = fit_logistic_regression(train_x, train_y, num_classes)
  return float(np.mean(predict(test_x) == test_y))


def compare_with_random_encoder(model, make_random_model, strategy, source, config,
                                train_split, test_split):
  """{'trained': accuracy, 'random': accuracy} under the same linear protocol."""
  num_classes = source.num_classes
  trained = probe_accuracy(model, strategy, source, config, train_split, test_split,
                           num_classes)
  random_model = make_random_model()
  estimate_batch_norm_statistics(random_model, source, config, train_split)
  random = probe_accuracy(random_model, strategy, source, config, train_split, test_split,
                          num_classes)
  logging.info('Linear probe on frozen features: trained encoder %.4f, random encoder %.4f',
               trained, random)
  return {'trained': trained, 'random': random}


def report(config, model, make_random_model, strategy, source):
  """--linear_probe: the comparison, printed, and its result entries."""
  accuracies = compare_with_random_encoder(model, make_random_model, strategy, source, config,
                                           config.train_split, config.eval_split)
  print(f'Linear probe (logistic regression on frozen features, {config.eval_split} split): '
        f'pretrained encoder {100 * accuracies["trained"]:.1f}% top-1, randomly initialised '
        f'encoder {100 * accuracies["random"]:.1f}% (chance '
        f'{100 / source.num_classes:.1f}%).', flush=True)
  return {'linear_probe/trained_encoder_top_1': accuracies['trained'],
          'linear_probe/random_encoder_top_1': accuracies['random']}
