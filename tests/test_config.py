"""Config validation: wrong settings fail with a message naming the flag."""
import dataclasses

import pytest

from tf2.config import Config, ConfigError


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
    (dict(encoder='vit'), '--encoder'),
    (dict(randbits=31), r'--randbits must be in \[0, 30\]'),
    (dict(randbits=-1), '--randbits'),
    (dict(crop_min_area=0.0), '--crop_min_area'),
    (dict(encoder='convnet', sk_ratio=0.0625), '--sk_ratio is a ResNet setting'),
    (dict(encoder='convnet', train_mode='finetune', fine_tune_after_block=2),
     '--fine_tune_after_block is a ResNet setting'),
    (dict(encoder='convnet', image_size=14), '--encoder=convnet needs --image_size >= 15'),
    (dict(randbits=5, digits_on_images=16), '--randbits and --digits_on_images'),
    (dict(digits_on_images=-1), '--digits_on_images must be >= 0'),
    (dict(digits_label='flower'), '--digits_label'),
])
def test_invalid_settings_name_the_flag(changes, flag):
  with pytest.raises(ValueError, match=flag):
    Config(**changes).validate()


def test_a_view_has_the_rgb_and_the_bit_channels():
  assert Config().view_channels == 3 and Config(randbits=20).view_channels == 23
  edges = Config(encoder='convnet', randbits=30, crop_min_area=1.0, image_size=15).validate()
  assert (edges.view_channels, edges.image_size) == (33, 15)


def test_cifar_stem_and_supervised_head_rules():
  assert Config(image_size=32).cifar_stem and not Config(image_size=33).cifar_stem
  assert Config(train_mode='finetune', lineareval_while_pretraining=False).has_supervised_head
  assert not Config(lineareval_while_pretraining=False).has_supervised_head
  assert Config(train_mode='finetune', fine_tune_after_block=3).encoder_fine_tune_after_block == 3


@pytest.mark.parametrize('changes,message', [
    (dict(learning_rate=-1.0), '--learning_rate must be >= 0, got -1.0'),
    (dict(weight_decay=-1e-4), '--weight_decay must be >= 0'),
    (dict(warmup_epochs=-1), '--warmup_epochs must be >= 0'),
    (dict(lars_eeta=-0.001), '--lars_eeta must be >= 0'),
    (dict(train_steps=-5), '--train_steps must be >= 0'),
    (dict(checkpoint_steps=-1), '--checkpoint_steps must be >= 0'),
    (dict(log_every_secs=-1.0), '--log_every_secs must be >= 0'),
    (dict(keep_checkpoint_max=-1), '--keep_checkpoint_max must be >= 0'),
    (dict(momentum=1.0), r'--momentum must be in \[0, 1\)'),
    (dict(momentum=-0.1), r'--momentum must be in \[0, 1\)'),
    (dict(batch_norm_decay=1.5), r'--batch_norm_decay must be in \[0, 1\]'),
    (dict(train_steps=0, train_epochs=0), 'nothing to train'),
    (dict(variable_schema='(unclosed'), 'not a valid regular expression'),
    (dict(data_service_address='not-an-address', model_dir='m'), 'is not grpc://HOST:PORT'),
    (dict(data_service_address='grpc://host:port', model_dir='m'), 'is not grpc://HOST:PORT'),
    (dict(data_service_address='http://host:5050', model_dir='m'), 'is not grpc://HOST:PORT'),
    (dict(contrastive_loss='generalized', memory_size=1024),
     '--memory_size works with --contrastive_loss=nt_xent only'),
    (dict(contrastive_loss='generalized', gcl_loss_scaling=0.0), '--gcl_loss_scaling > 0'),
    (dict(contrastive_loss='infonce'), '--contrastive_loss'),
    (dict(knn_num_queries=-1), '--knn_num_queries >= 0'),
])
def test_values_out_of_range_are_refused_with_the_flag_and_the_range(changes, message):
  with pytest.raises(ConfigError, match=message):
    Config(**changes).validate()


def test_what_is_allowed_at_the_edges_validates():
  Config(learning_rate=0.0, weight_decay=0.0, momentum=0.0, batch_norm_decay=1.0,
         train_epochs=0, train_steps=10, data_service_address='grpc://127.0.0.1:5050',
         model_dir='m').validate()
  Config(train_steps=0, train_epochs=0, mode='eval').validate()  # eval trains nothing.
  assert Config(variable_schema='?!global_step').validate()


def test_a_run_needs_a_model_dir_but_a_model_does_not():
  Config().validate()
  with pytest.raises(ConfigError, match='--model_dir is required'):
    Config().validate(for_run=True)
  Config(model_dir='m').validate(for_run=True)

