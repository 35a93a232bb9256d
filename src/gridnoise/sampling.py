"""Sampling: run the reverse process from pure noise with a trained network and its grids."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.diffusion import DDPMScheduler


@torch.no_grad()
def sample(
    model: nn.Module,
    adaptation: NoiseAdaptation,
    scheduler: DDPMScheduler,
    num_samples: int,
    generator: torch.Generator,
) -> Tensor:
    """Draw `(num_samples, 2)` points with the DDPM ancestral sampler, t = T-1 ... 0.

    The adaptation supplies the noise level the network sees at each x_t (the seed looks the
    grid up at the current noisy point) and, for a learned reverse variance, the factor on the
    step's noise; the reverse step itself is the scheduler's.
    """
    device = scheduler.betas.device
    x = torch.randn((num_samples, 2), generator=generator, device=device)
    for t in reversed(range(len(scheduler))):
        timesteps = torch.full((num_samples,), t, dtype=torch.long, device=device)
        level = adaptation.sampling_level(x, timesteps)
        scale = adaptation.reverse_std_scale(x, timesteps)
        x = scheduler.step(model(x, timesteps, level), timesteps, x, generator=generator, std_scale=scale).prev_sample
    return x
