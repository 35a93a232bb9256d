"""Exponential moving average of a module's weights with the original study's warm-up rule."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """Holds `averaged`, an EMA copy of a module, updated by `update(module)` once per step.

    The original study's rule (ema-pytorch's defaults): on every `update_every`-th call,
    copy the weights outright while the call index s is <= `warmup_steps`; afterwards
    average with decay min(1 - (1 + k)^-power, max_decay), k = s - warmup_steps the number of
    calls past the warm-up.
    """

    num_calls: torch.Tensor  # () long: calls of `update` so far

    def __init__(self, module: nn.Module, max_decay: float = 0.995, update_every: int = 10,
                 warmup_steps: int = 100, power: float = 2 / 3):
        super().__init__()
        self.averaged = copy.deepcopy(module).requires_grad_(False)
        self.max_decay, self.update_every = max_decay, update_every
        self.warmup_steps, self.power = warmup_steps, power
        self.register_buffer("num_calls", torch.zeros((), dtype=torch.long))

    def decay(self, call_index: int) -> float:
        """Decay used at 0-based call `call_index` (0 means copy)."""
        k = call_index - self.warmup_steps
        if k <= 0:
            return 0.0
        return min(1.0 - (1.0 + k) ** -self.power, self.max_decay)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        s = int(self.num_calls)
        self.num_calls += 1
        if s % self.update_every:
            return
        averaged: list[torch.Tensor] = list(self.averaged.parameters())
        current = [p.detach() for p in module.parameters()]
        d = self.decay(s)
        if d == 0.0:
            torch._foreach_copy_(averaged, current)
        else:
            torch._foreach_lerp_(averaged, current, 1.0 - d)
