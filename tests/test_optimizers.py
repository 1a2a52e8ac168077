"""Optimizer choice and the explicit weight-decay term, per optimizer."""
import keras
import numpy as np
import pytest

from tf2.config import Config
from tf2.training.lars import LARS
from tf2.models.model import SimCLRModel
from tf2.training.optimizers import build_optimizer, weight_decay_loss


@pytest.fixture(scope='module')
def model():
  return SimCLRModel(Config(resnet_depth=18, image_size=8, use_blur=False), 4).build_for()


def l2(variables):
  return sum(0.5 * np.sum(v.numpy().astype(np.float64) ** 2) for v in variables)


def test_lars_decays_only_supervised_kernel_explicitly(model):
  got = float(weight_decay_loss(model.trainable_variables, 'lars', 1e-3))
  kernel = model.supervised_head.linear_layer.dense.kernel
  assert got == pytest.approx(1e-3 * l2([kernel]), rel=1e-5)


@pytest.mark.parametrize('name', ['momentum', 'adam'])
def test_other_optimizers_decay_every_non_bn_variable(model, name):
  got = float(weight_decay_loss(model.trainable_variables, name, 1e-3))
  chosen = [v for v in model.trainable_variables if 'batch_normalization' not in v.path]
  assert any('bias' in v.path for v in chosen)
  assert got == pytest.approx(1e-3 * l2(chosen), rel=1e-5)


def test_build_optimizer_kinds():
  cfg = Config()
  assert isinstance(build_optimizer(cfg, 0.1), LARS)
  sgd = build_optimizer(cfg.replace(optimizer='momentum'), 0.1)
  assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
  assert isinstance(build_optimizer(cfg.replace(optimizer='adam'), 0.1), keras.optimizers.Adam)
