"""Config validation: wrong settings fail with a message naming the flag."""
import dataclasses

import pytest

from tf2.config import Config


def test_defaults_are_the_originals():
  c = Config()
  assert (c.learning_rate, c.weight_decay, c.temperature, c.train_batch_size) == (0.3, 1e-6, 0.1, 512)
  assert (c.resnet_depth, c.width_multiplier, c.sk_ratio, c.num_proj_layers) == (50, 1, 0.0, 3)
  assert (c.optimizer, c.proj_head_mode, c.global_bn, c.use_blur) == ('lars', 'nonlinear', True, True)
  with pytest.raises(dataclasses.FrozenInstanceError):
    c.learning_rate = 1.0


@pytest.mark.parametrize('changes,flag', [
    (dict(train_mode='pretrain', fine_tune_after_block=2), '--fine_tune_after_block'),
    (dict(resnet_depth=42), '--resnet_depth'),
    (dict(optimizer='sgd'), '--optimizer'),
    (dict(ft_proj_selector=5), '--ft_proj_selector'),
    (dict(temperature=0.0), '--temperature'),
    (dict(precision='float16'), '--precision'),
    (dict(image_size=4), '--image_size=4 is below 8'),
    (dict(train_mode='distill'), '--teacher_checkpoint'),
])
def test_invalid_settings_name_the_flag(changes, flag):
  with pytest.raises(ValueError, match=flag):
    Config(**changes).validate()


def test_cifar_stem_and_supervised_head_rules():
  assert Config(image_size=32).cifar_stem and not Config(image_size=33).cifar_stem
  assert Config(train_mode='finetune', lineareval_while_pretraining=False).has_supervised_head
  assert not Config(lineareval_while_pretraining=False).has_supervised_head
  assert Config(train_mode='finetune', fine_tune_after_block=3).encoder_fine_tune_after_block == 3
