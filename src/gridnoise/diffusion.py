"""The DDPM noise process: schedule, forward noising and the reverse step (Ho et al. 2020).

`DDPMScheduler` owns the schedule tensors as buffers and knows nothing of the network: it
turns a clean sample and noise into x_t (`add_noise`) and a predicted noise into x_{t-1}
(`step`), in the verbs of diffusers' schedulers. Timesteps are always a `(B,)` long tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import math

import torch
from torch import Tensor, nn

Schedule = Literal["linear", "quadratic", "cosine"]
COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal (2021), eq. 17
MAX_COSINE_BETA = 0.999  # their clipping, which keeps the end of the schedule from being singular
# With zero terminal SNR, abar_T = 0 makes x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar) infinite for an
# eps-predicting network; like diffusers, the last abar is set to 2^-24 instead (SNR ~ 6e-8).
ZERO_SNR_FLOOR = 2.0**-24


def make_betas(
    num_timesteps: int,
    schedule: Schedule = "linear",
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> Tensor:
    """Betas of a schedule `(T,)`: float32 for "linear" and "quadratic" (linear in sqrt(beta), then
    squared), float64 for "cosine" (Nichol & Dhariwal 2021, whose schedule ignores beta_start/end)."""
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float32)
    if schedule == "quadratic":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=torch.float32) ** 2
    if schedule == "cosine":
        steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        f = torch.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
        abar = f / f[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=MAX_COSINE_BETA)
    raise ValueError(f"unknown beta schedule '{schedule}': use linear, quadratic or cosine")


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Betas whose abar_T is 0 (Lin et al. 2024, Algorithm 1): shift sqrt(abar) so its last value is 0
    and scale it so its first is unchanged. Returns float64."""
    sqrt_abar = torch.cumprod(1 - betas.double(), 0).sqrt()
    first, last = sqrt_abar[0].clone(), sqrt_abar[-1].clone()
    sqrt_abar = (sqrt_abar - last) * first / (first - last)
    abar = sqrt_abar**2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return 1 - alphas


@dataclass
class SchedulerOutput:
    prev_sample: Tensor  # x_{t-1}, (B, D)
    pred_original_sample: Tensor  # x0_hat, (B, D)


class DDPMScheduler(nn.Module):
    """Schedule buffers plus `add_noise` (forward) and `step` (ancestral reverse step)."""

    def __init__(
        self,
        num_timesteps: int = 100,
        beta_schedule: Schedule = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        zero_terminal_snr: bool = False,
    ):
        super().__init__()
        if num_timesteps < 2:
            raise ValueError(f"num_timesteps must be >= 2, got {num_timesteps}")
        self.num_timesteps = num_timesteps
        # Derived quantities are computed in float64 and stored as float32: in float32,
        # 1 - abar_t cancels badly at small t (posterior_mean_coef1[0] came out 0.9998, not 1).
        betas = make_betas(num_timesteps, beta_schedule, beta_start, beta_end).double()
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        if zero_terminal_snr:
            alphas_cumprod[-1] = ZERO_SNR_FLOOR
            alphas[-1] = alphas_cumprod[-1] / alphas_cumprod[-2]
            betas = 1.0 - alphas
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        # Posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7); floored at 1e-20 as the seed
        # did, and exactly 0 at t = 0 where no noise is added.
        posterior_variance = (betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)).clamp(min=1e-20)
        posterior_variance[0] = 0.0
        buffers = dict(
            betas=betas,
            alphas=alphas,
            alphas_cumprod=alphas_cumprod,
            alphas_cumprod_prev=alphas_cumprod_prev,
            sqrt_alphas_cumprod=alphas_cumprod.sqrt(),
            sqrt_one_minus_alphas_cumprod=(1 - alphas_cumprod).sqrt(),
            sqrt_recip_alphas_cumprod=(1 / alphas_cumprod).sqrt(),
            sqrt_recipm1_alphas_cumprod=(1 / alphas_cumprod - 1).sqrt(),
            posterior_mean_coef1=betas * alphas_cumprod_prev.sqrt() / (1 - alphas_cumprod),
            posterior_mean_coef2=(1 - alphas_cumprod_prev) * alphas.sqrt() / (1 - alphas_cumprod),
            posterior_variance=posterior_variance,
        )
        for name, value in buffers.items():
            self.register_buffer(name, value.float())

    def __len__(self) -> int:
        return self.num_timesteps

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise; shapes `(B, D)`, `(B, D)`, `(B,)`."""
        s1 = self.sqrt_alphas_cumprod[timesteps].unsqueeze(-1)
        s2 = self.sqrt_one_minus_alphas_cumprod[timesteps].unsqueeze(-1)
        return s1 * original_samples + s2 * noise

    def predict_start_from_noise(self, sample: Tensor, timesteps: Tensor, noise: Tensor) -> Tensor:
        """x0_hat = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps_hat (no clipping)."""
        return (
            self.sqrt_recip_alphas_cumprod[timesteps].unsqueeze(-1) * sample
            - self.sqrt_recipm1_alphas_cumprod[timesteps].unsqueeze(-1) * noise
        )

    def q_posterior_mean(self, x_start: Tensor, x_t: Tensor, timesteps: Tensor) -> Tensor:
        """Mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7)."""
        return (
            self.posterior_mean_coef1[timesteps].unsqueeze(-1) * x_start
            + self.posterior_mean_coef2[timesteps].unsqueeze(-1) * x_t
        )

    def step(
        self,
        model_output: Tensor,
        timesteps: Tensor,
        sample: Tensor,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        std_scale: Tensor | None = None,
        clip_sample: float = 0.0,
    ) -> SchedulerOutput:
        """One ancestral step x_t -> x_{t-1} from the predicted noise; no noise is added at t = 0.

        `std_scale` `(B,)` multiplies the step's noise standard deviation (a learned reverse
        variance); None keeps the posterior's. `clip_sample` > 0 clips the predicted x_0 to
        [-clip_sample, clip_sample] before the posterior mean is formed.
        """
        pred_original = self.predict_start_from_noise(sample, timesteps, model_output)
        if clip_sample > 0:
            pred_original = pred_original.clamp(-clip_sample, clip_sample)
        mean = self.q_posterior_mean(pred_original, sample, timesteps)
        if noise is None:
            noise = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
        std = self.posterior_variance[timesteps].sqrt()
        if std_scale is not None:
            std = std * std_scale
        std = std.unsqueeze(-1)
        return SchedulerOutput(prev_sample=mean + std * noise, pred_original_sample=pred_original)

    def ddim_step(
        self,
        model_output: Tensor,
        timesteps: Tensor,
        prev_timesteps: Tensor,
        sample: Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        clip_sample: float = 0.0,
    ) -> SchedulerOutput:
        """One DDIM step x_t -> x_{t'} for any earlier t' (Song et al. 2021, eq. 12); t' = -1 means x_0.

        sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t'); eta = 0 is
        deterministic, and eta = 1 with t' = t - 1 is the DDPM posterior variance. `clip_sample` > 0
        clips the predicted x_0 and re-derives the noise from it (as diffusers' DDIMScheduler does).
        """
        abar_t = self.alphas_cumprod[timesteps].unsqueeze(-1)
        abar_prev = torch.where(prev_timesteps >= 0, self.alphas_cumprod[prev_timesteps.clamp(min=0)],
                                torch.ones_like(self.alphas_cumprod[timesteps])).unsqueeze(-1)
        pred_original = self.predict_start_from_noise(sample, timesteps, model_output)
        if clip_sample > 0:
            pred_original = pred_original.clamp(-clip_sample, clip_sample)
            model_output = (sample - abar_t.sqrt() * pred_original) / (1 - abar_t).sqrt()
        sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp(min=0).sqrt()
        direction = (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * model_output
        prev = abar_prev.sqrt() * pred_original + direction
        if eta > 0:
            if noise is None:
                noise = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
            prev = prev + sigma * noise
        return SchedulerOutput(prev_sample=prev, pred_original_sample=pred_original)
