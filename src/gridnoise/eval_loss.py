"""The original study's eval loss of a trained model (the sample metrics are in `gridnoise.metrics`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.diffusion import NoiseSchedule


@torch.no_grad()
def eval_loss(
    model: nn.Module,
    adaptation: NoiseAdaptation,
    scheduler: NoiseSchedule,
    data: Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """The original study's eval loss: mean over batches of one pass of `data` `(N, 2)` of MSE(eps_hat, eps).

    Fresh noise and timesteps; the adaptation noises the batch as in training. The penalty is
    not included. Not comparable across variants whose forward noise differs.
    """
    losses = []
    for start in range(0, len(data), batch_size):
        x_start = data[start:start + batch_size]
        noise = torch.randn(x_start.shape, generator=generator, device=data.device)
        timesteps = torch.randint(0, len(scheduler), (len(x_start),), generator=generator, device=data.device)
        x_t, g = adaptation.training_inputs(scheduler, x_start, noise, timesteps)
        losses.append(torch.mean((model(x_t, timesteps, g) - noise) ** 2))
    return float(torch.stack(losses).mean())
