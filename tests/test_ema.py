import pytest
import torch
from torch import nn

from gridnoise.ema import EMA


def test_warmup_copy_then_decay_schedule():
    ema = EMA(nn.Linear(1, 1), max_decay=0.995, update_every=10, warmup_steps=100, power=2 / 3)
    assert ema.decay(0) == 0 and ema.decay(100) == 0
    assert ema.decay(110) == pytest.approx(1 - 11 ** (-2 / 3))
    assert ema.decay(10_000) == 0.995


def test_update_rule_matches_independent_simulation():
    torch.manual_seed(0)
    net = nn.Linear(2, 1, bias=False)
    ema = EMA(net, max_decay=0.9, update_every=3, warmup_steps=4, power=1.0)
    expected = net.weight.detach().clone()
    for s in range(30):
        with torch.no_grad():
            net.weight.add_(torch.randn_like(net.weight))
        ema.update(net)
        w = net.weight.detach()
        if s % 3 == 0:
            if s <= 4:
                expected = w.clone()
            else:
                d = min(1 - (1 + (s - 4)) ** -1.0, 0.9)
                expected = d * expected + (1 - d) * w
        assert torch.allclose(ema.averaged.weight, expected, atol=1e-6), f"call {s}"
    assert int(ema.num_calls) == 30
