"""Warmup + cosine schedule against its closed form."""
import math

import pytest

from tf2.training import lr_schedule
from tf2.config import Config


def closed_form(step, base, batch, scaling, warmup_epochs, num_examples, total):
  scaled = base * batch / 256 if scaling == 'linear' else base * math.sqrt(batch)
  warmup = int(round(warmup_epochs * num_examples // batch))
  if step < warmup:
    return step / warmup * scaled
  t = total - warmup
  return scaled * 0.5 * (1 + math.cos(math.pi * min(step - warmup, t) / t))


@pytest.mark.parametrize('scaling,batch', [('linear', 512), ('sqrt', 4096)])
def test_values_at_key_steps(scaling, batch):
  num_examples, epochs, warmup_epochs = 50000, 100, 10
  total = lr_schedule.train_steps(num_examples, epochs, batch)
  assert total == num_examples * epochs // batch + 1
  sched = lr_schedule.WarmUpAndCosineDecay(0.3, num_examples, batch, warmup_epochs, total,
                                           scaling)
  warmup = sched.warmup_steps
  peak = 0.3 * batch / 256 if scaling == 'linear' else 0.3 * math.sqrt(batch)
  assert warmup == int(round(warmup_epochs * num_examples // batch))
  for step in (0, 1, warmup // 2, warmup - 1, warmup, warmup + 1,
               (warmup + total) // 2, total - 1, total, total + 10):
    want = closed_form(step, 0.3, batch, scaling, warmup_epochs, num_examples, total)
    assert float(sched(step)) == pytest.approx(want, rel=1e-5, abs=1e-6 * peak), step
  assert float(sched(warmup)) == pytest.approx(peak, rel=1e-6)
  assert float(sched(total)) == pytest.approx(0.0, abs=1e-7)


def test_no_warmup_and_explicit_steps():
  cfg = Config(learning_rate=0.1, warmup_epochs=0, train_steps=100, train_batch_size=256)
  sched = lr_schedule.schedule_from_config(cfg, 1000)
  assert sched.total_steps == 100 and sched.warmup_steps == 0
  assert float(sched(0)) == pytest.approx(0.1)
  assert float(sched(50)) == pytest.approx(0.05, rel=1e-5)
