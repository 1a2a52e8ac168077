"""--train_mode=distill: the SimCLRv2 loss against numpy, 8 replicas against one device,
and run.py end to end (teacher from a fine-tuning run, export, resume, clear errors)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import recipes
from imagenet_subsets import make
from test_run import parse
from test_train_step import make_batch, randomized_initial_weights
from tf2 import runner
from tf2.config import Config, ConfigError
from tf2.models.model import SimCLRModel
from tf2.training import distillation
from tf2.training.optimizers import build_optimizer
from tf2.training.train_step import TrainStep
from tf2.training.train_step import unpack


def softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize('temperature', [1.0, 0.5, 4.0])
def test_loss_is_simclrv2_equation_2(rng, temperature):
  teacher, student = rng.randn(6, 5) * 3, rng.randn(6, 5) * 3
  expected = -np.mean(np.sum(softmax(teacher / temperature) *
                             np.log(softmax(student / temperature)), -1))
  got = distillation.distillation_loss(tf.constant(teacher), tf.constant(student), temperature)
  assert float(got) == pytest.approx(expected, rel=1e-6)
  t, s = tf.Variable(teacher), tf.Variable(student)
  with tf.GradientTape() as tape:
    loss = distillation.distillation_loss(t, s, temperature)
  grad_t, grad_s = tape.gradient(loss, [t, s])
  assert grad_t is None  # The teacher's probabilities are targets, not learned.
  # d/ds: (P_S - P_T) / (tau * batch).
  np.testing.assert_allclose(grad_s.numpy(), (softmax(student / temperature) -
                                              softmax(teacher / temperature)) / (6 * temperature),
                             rtol=1e-6)
  assert float(distillation.agreement(tf.constant(teacher), tf.constant(teacher))) == 1.0


# The small ConvNet: what the 8 replicas test is the step, which any encoder takes alike.
DISTILL = Config(train_mode='distill', teacher_checkpoint='(in memory)', encoder='convnet',
                 image_size=16, train_batch_size=16, learning_rate=0.5, weight_decay=1e-4,
                 optimizer='lars', distill_temperature=2.0, distill_alpha=0.25,
                 precision='float64').validate()


def distill_step(strategy, initial, teacher_weights, batch):
  with strategy.scope():
    teacher = SimCLRModel(DISTILL.replace(train_mode='finetune', teacher_checkpoint=None), 10,
                          name='teacher').build_for()
    teacher.set_weights(teacher_weights)
    model = SimCLRModel(DISTILL, 10).build_for()
    model.set_weights(initial)
    optimizer = build_optimizer(DISTILL, DISTILL.learning_rate)
  step = TrainStep(DISTILL, model, optimizer, strategy, teacher)
  step.build_optimizer_state()
  ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat())
  return model, teacher, unpack(step.make_loop()(iter(ds), 1))[0]


@pytest.mark.slow
def test_eight_replicas_equal_one_device_and_the_formula(strategy8):
  """Teacher and student on every replica; float64 so that the comparison is exact."""
  strategy = strategy8
  batch = make_batch(DISTILL, views=1)
  initial = randomized_initial_weights(DISTILL, seed=5)
  teacher_weights = randomized_initial_weights(DISTILL, seed=6)
  teacher_weights = [w * 1.5 if w.ndim == 2 else w for w in teacher_weights]  # Other logits.
  single, teacher, metrics = distill_step(tf.distribute.get_strategy(), initial,
                                          teacher_weights, batch)
  dist, _, dist_metrics = distill_step(strategy, initial, teacher_weights, batch)
  for name in metrics:
    assert dist_metrics[name] == pytest.approx(metrics[name], rel=1e-6, abs=1e-9), name
  moved = set()
  for va, vb, w0 in zip(single.variables, dist.variables, initial):
    a, b = va.numpy(), vb.numpy()
    np.testing.assert_allclose(b - w0, a - w0, rtol=0, atol=1e-7 * np.abs(a - w0).max() + 1e-300)
    if va.trainable and np.abs(a - w0).max() > 0:
      moved.add(va.path.split('/')[1])
  # The student's encoder and supervised head learn; its projection head is not used.
  assert moved == {'convnet', 'head_supervised'}
  # The loss the step reported, recomputed from the models before the step.
  fresh = SimCLRModel(DISTILL, 10).build_for()
  fresh.set_weights(initial)
  student_logits = fresh(batch[0], training=True)['logits_sup'].numpy()
  teacher_logits = teacher(batch[0], training=False)['logits_sup'].numpy()
  tau, alpha = DISTILL.distill_temperature, DISTILL.distill_alpha
  distill = -np.mean(np.sum(softmax(teacher_logits / tau) *
                            np.log(softmax(student_logits / tau)), -1))
  supervised = -np.mean(np.log(softmax(student_logits))[np.arange(16), batch[1]])
  assert metrics['distill_loss'] == pytest.approx(distill, rel=1e-6)
  assert metrics['supervised_loss'] == pytest.approx(supervised, rel=1e-6)
  assert metrics['total_loss'] == pytest.approx(
      (1 - alpha) * distill + alpha * supervised + metrics['weight_decay'], rel=1e-6)
  assert metrics['teacher_agreement'] == pytest.approx(
      np.mean(teacher_logits.argmax(-1) == student_logits.argmax(-1)))
  # Only the student moved.
  for w, v in zip(teacher_weights, teacher.variables):
    np.testing.assert_array_equal(w, v.numpy())


TINY = ('python run.py --dataset=shapes --eval_split=test --image_size=16 --resnet_depth=18 '
        '--train_batch_size=16 --eval_batch_size=500 --use_tpu=False --checkpoint_steps=2 '
        '--train_summary_steps=0 --linear_probe=False ')


@pytest.fixture(scope='module')
def teacher_dir(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('teacher')
  runner.run(parse(TINY + f'--train_mode=finetune --resnet_base_width=16 --train_steps=4 '
                          f'--learning_rate=0.1 --mode=train --export_saved_model=True '
                          f'--model_dir={model_dir}'))
  return str(model_dir)


def test_smaller_student_end_to_end_with_resume_eval_and_an_exported_teacher(teacher_dir,
                                                                             tmp_path):
  student = tmp_path / 'student'
  command = (TINY + f'--train_mode=distill --teacher_checkpoint={teacher_dir} '
             f'--resnet_base_width=8 --learning_rate=0.1 --eval_steps=1 '
             f'--model_dir={student}')
  result = runner.run(parse(command + ' --train_steps=2 --mode=train_then_eval'))
  assert result['global_step'] == 2 and result['eval/num_examples'] == 500
  assert 0 <= result['eval/label_top_1_accuracy'] <= 1
  assert 0 <= result['eval/teacher_label_top_1_accuracy'] <= 1
  assert os.path.isdir(student / 'saved_model' / '2')
  with open(student / 'flags.json') as f:
    assert json.load(f)['teacher_checkpoint'] == teacher_dir
  # Resume: the same command with more steps continues from step 2.
  assert runner.run(parse(command + ' --train_steps=3 --mode=train')) is None
  assert tf.train.latest_checkpoint(str(student)).endswith('ckpt-3')
  # --mode=eval evaluates the student's checkpoints without the teacher.
  result = runner.run(parse(command + ' --train_steps=3 --mode=eval'))
  assert result['global_step'] == 3 and 'eval/teacher_label_top_1_accuracy' not in result
  # The teacher's export works as the teacher too (flags.json two levels up).
  export = os.path.join(teacher_dir, 'saved_model', '4')
  runner.run(parse(command.replace(teacher_dir, export).replace(
      str(student), str(tmp_path / 'from_export')) + ' --train_steps=1 --mode=train'))
  assert tf.train.latest_checkpoint(str(tmp_path / 'from_export')).endswith('ckpt-1')


def test_teacher_errors_come_before_training(teacher_dir, tmp_path):
  pretrained = tmp_path / 'pretrained'
  runner.run(parse(TINY + f'--resnet_base_width=8 --train_steps=1 --mode=train '
                          f'--lineareval_while_pretraining=False --model_dir={pretrained}'))
  distill = TINY + '--train_mode=distill --resnet_base_width=8 --train_steps=1 --mode=train '
  with pytest.raises(ConfigError, match='no supervised head'):
    runner.run(parse(distill + f'--teacher_checkpoint={pretrained} '
                               f'--model_dir={tmp_path / "a"}'))
  with pytest.raises(ConfigError, match='no flags.json'):
    runner.run(parse(distill + f'--teacher_checkpoint={tmp_path} --model_dir={tmp_path / "b"}'))
  root = tmp_path / 'three_classes'
  for split in ('train', 'test'):
    for cls in 'abc':
      (root / split / cls).mkdir(parents=True)
      tf.io.write_file(str(root / split / cls / '0.png'), tf.io.encode_png(
          tf.zeros([16, 16, 3], tf.uint8)))
  with pytest.raises(ConfigError, match='predicts 6 classes but .* has 3'):
    runner.run(parse(distill.replace('--dataset=shapes', f'--dataset={root}') +
                     f'--teacher_checkpoint={teacher_dir} --model_dir={tmp_path / "c"}'))
  with pytest.raises(ConfigError, match='needs --teacher_checkpoint'):
    parse(distill + f'--model_dir={tmp_path / "d"}').validate()
  for name in ('a', 'b', 'c'):
    assert not (tmp_path / name / 'checkpoint').exists()


def readme_recipe():
  """The four lines of the semi-supervised recipe, as docs/semi_supervised.md writes them."""
  lines = recipes.shell_lines(recipes.section('semi_supervised.md', 'The recipe'))
  assert len(lines) == 4 and lines[0].startswith('python -m imagenet_subsets.make')
  return lines


def test_readme_recipe_on_real_cifar10(real_cifar10, tmp_path):
  """pretrain -> fine-tune on a 1% subset from projection layer 1 -> distil, as the docs
  write them, shortened (steps, batch, width, eval) and pointed at temporary paths."""
  shorten = (' --train_steps=2 --train_batch_size=10 --eval_batch_size=500 --eval_steps=1 '
             '--resnet_base_width=8 --checkpoint_steps=1 --train_summary_steps=0')
  lines = [line.replace('/tmp/simclr_v2', f'{tmp_path}/simclr_v2').replace(
      '/tmp/cifar10_1pct', f'{tmp_path}/cifar10_1pct').replace('/tmp/cifar_tfds', real_cifar10)
           for line in readme_recipe()]
  subset_args = lines[0].split()[3:]
  subset = make.main(subset_args)
  assert len(subset) == 20  # 1% of the 2,000 prepared training images, 2 per class.
  assert runner.run(parse(lines[1] + shorten)) is None
  teacher = runner.run(parse(lines[2] + shorten))
  assert teacher['global_step'] == 2
  ft_config = parse(lines[2] + shorten)
  assert ft_config.ft_proj_selector == 1 and ft_config.num_proj_layers == 3
  student = runner.run(parse(lines[3] + shorten))
  assert student['global_step'] == 2 and 'eval/teacher_label_top_1_accuracy' in student
  with open(tmp_path / 'simclr_v2_distill' / 'flags.json') as f:
    assert json.load(f)['teacher_checkpoint'] == f'{tmp_path}/simclr_v2_ft1pct'
