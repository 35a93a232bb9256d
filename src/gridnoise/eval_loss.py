"""The original study's eval loss of a trained model (the sample metrics are in `gridnoise.metrics`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.continuous import ContinuousNoise
from gridnoise.diffusion import NoiseSchedule
from gridnoise.model import continuous_time


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
    not included. Not comparable across variants whose forward noise differs. For a continuous-time
    model: the same MSE at t ~ U(0, 1) (its bound's `mse`).
    """
    losses = []
    if isinstance(adaptation, ContinuousNoise):
        network = continuous_time(model, len(scheduler))
        for start in range(0, len(data), batch_size):
            losses.append(adaptation.bound(network, data[start:start + batch_size], generator)["mse"].mean())
        return float(torch.stack(losses).mean())
    for start in range(0, len(data), batch_size):
        x_start = data[start:start + batch_size]
        noise = torch.randn(x_start.shape, generator=generator, device=data.device)
        timesteps = torch.randint(0, len(scheduler), (len(x_start),), generator=generator, device=data.device)
        x_t, g = adaptation.training_inputs(scheduler, x_start, noise, timesteps)
        losses.append(torch.mean((model(x_t, timesteps, g) - noise) ** 2))
    return float(torch.stack(losses).mean())
