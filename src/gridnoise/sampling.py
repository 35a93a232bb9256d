"""Sampling: run the reverse process from pure noise with a trained network and its grids.

Two samplers: DDPM's ancestral sampler over every timestep (the study's), and DDIM (Song et
al. 2021) over a chosen number of steps with a chosen eta.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.config import SamplerConfig
from gridnoise.diffusion import DDPMScheduler
from gridnoise.errors import GridnoiseError


# Points per network call. A (2048, 256) fp32 activation is 2 MiB, about one core's L2 cache;
# whole 10000-point batches spill to L3 and the element-wise layers (ReLU, residual adds,
# concatenation) then dominate: chunking made sampling 1.5x (fp32) to 1.9x (bf16) faster on one
# core. Rows of a matmul do not depend on each other, so the numbers are unchanged. A GPU wants
# the whole batch at once, so it is not chunked.
CHUNK = 2048


def predict_noise(model: nn.Module, x: Tensor, timesteps: Tensor, level: Tensor | None) -> Tensor:
    """`model(x, timesteps, level)`, evaluated CHUNK points at a time on a CPU."""
    if len(x) <= CHUNK or x.device.type != "cpu":
        return model(x, timesteps, level)
    return torch.cat([model(x[i:i + CHUNK], timesteps[i:i + CHUNK], None if level is None else level[i:i + CHUNK])
                      for i in range(0, len(x), CHUNK)])


class SamplerError(GridnoiseError, ValueError):
    """A sampler that the run's variant or schedule does not support."""


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps from T-1 down, evenly spaced and "trailing" so the first is T-1, where
    sampling starts (Lin et al. 2024, section 3.4); all T of them when steps = T."""
    if not 1 <= steps <= num_timesteps:
        raise SamplerError(f"DDIM needs 1 <= sample steps <= T = {num_timesteps} (got {steps})")
    return [round(num_timesteps - i * num_timesteps / steps) - 1 for i in range(steps)]


@torch.no_grad()
def sample(
    model: nn.Module,
    adaptation: NoiseAdaptation,
    scheduler: DDPMScheduler,
    num_samples: int,
    generator: torch.Generator,
    sampler: SamplerConfig | None = None,
    callback: Callable[[int, Tensor], None] | None = None,
) -> Tensor:
    """Draw `(num_samples, 2)` points, from t = T-1 down to x_0.

    The adaptation supplies the noise level the network sees at each x_t (the seed looks the
    grid up at the current noisy point) and, for a learned reverse variance, the factor on the
    step's noise; the reverse step itself is the scheduler's. `callback(t, x)` sees the starting
    noise (t = T) and every step's result (t = the timestep it was computed from).
    """
    sampler = sampler or SamplerConfig()
    device = scheduler.betas.device
    x = torch.randn((num_samples, 2), generator=generator, device=device)
    if callback is not None:
        callback(len(scheduler), x)
    if sampler.sampler == "ddpm":
        for t in reversed(range(len(scheduler))):
            timesteps = torch.full((num_samples,), t, dtype=torch.long, device=device)
            level = adaptation.sampling_level(x, timesteps)
            scale = adaptation.reverse_std_scale(x, timesteps)
            eps = predict_noise(model, x, timesteps, level)
            x = scheduler.step(eps, timesteps, x, generator=generator, std_scale=scale,
                               clip_sample=sampler.clip_sample).prev_sample
            if callback is not None:
                callback(t, x)
        return x
    if adaptation.reverse_std_scale(x[:1], torch.zeros(1, dtype=torch.long, device=device)) is not None:
        raise SamplerError("DDIM is not defined for a learned reverse variance (its grids are trained for "
                           "single DDPM steps): sample this run with --sampler ddpm")
    schedule = ddim_timesteps(len(scheduler), sampler.steps or len(scheduler))
    for t, t_prev in zip(schedule, schedule[1:] + [-1]):
        timesteps = torch.full((num_samples,), t, dtype=torch.long, device=device)
        eps = predict_noise(model, x, timesteps, adaptation.sampling_level(x, timesteps))
        x = scheduler.ddim_step(eps, timesteps, torch.full_like(timesteps, t_prev), x, eta=sampler.eta,
                                generator=generator, clip_sample=sampler.clip_sample).prev_sample
        if callback is not None:
            callback(t, x)
    return x
