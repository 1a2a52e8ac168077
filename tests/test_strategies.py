"""Strategy choice: TPU failure message, TF_CONFIG task count, CPU default."""
import json
import time

import pytest
import tensorflow as tf

from tf2 import strategies
from tf2.config import Config


def test_unreachable_tpu_stops_fast_with_what_to_do():
  start = time.time()
  with pytest.raises(strategies.StrategyError, match=r"'no-such-tpu'.*--use_tpu=False"):
    strategies.make_strategy(Config(use_tpu=True, tpu_name='no-such-tpu'))
  with pytest.raises(strategies.StrategyError, match='no --tpu_name'):
    strategies.make_strategy(Config(use_tpu=True))
  assert time.time() - start < 30


def test_tf_config_tasks():
  assert strategies.num_tf_config_tasks({}) == 0
  cluster = {'cluster': {'chief': ['a:1'], 'worker': ['b:1', 'c:1']},
             'task': {'type': 'worker', 'index': 0}}
  assert strategies.num_tf_config_tasks({'TF_CONFIG': json.dumps(cluster)}) == 3
  with pytest.raises(strategies.StrategyError, match='TF_CONFIG'):
    strategies.num_tf_config_tasks({'TF_CONFIG': '{not json'})


def test_cpu_default_strategy():
  strategy = strategies.make_strategy(Config(use_tpu=False), environ={})
  assert strategy.num_replicas_in_sync == 1
  assert strategy is tf.distribute.get_strategy()


def test_xla_with_several_cpu_replicas_is_refused_with_the_reason(strategy8):
  strategies.check_jit_compile(strategy8, jit_compile=False)
  strategies.check_jit_compile(tf.distribute.get_strategy(), jit_compile=True)
  with pytest.raises(strategies.StrategyError, match='8 replicas on CPU.*--jit_compile=False'):
    strategies.check_jit_compile(strategy8, jit_compile=True)
  # The reason: a jit-compiled replica step that reads a mirrored variable fails there.
  with strategy8.scope():
    v = tf.Variable(1.0)

  @tf.function
  def run():
    return strategy8.run(tf.function(lambda: v * 2.0, jit_compile=True))

  with pytest.raises(Exception, match='Trying to access resource'):
    run()
