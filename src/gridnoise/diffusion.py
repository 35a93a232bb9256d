"""The diffusion process: the beta schedule and what follows from it (Ho et al. 2020).

`NoiseSchedule` owns the schedule tensors as buffers (so `.to(device)` and `state_dict` carry
them) and the closed forms every sampler shares: forward noising q(x_t | x_0) (`add_noise`),
x_0 from a noise prediction, and the posterior q(x_{t-1} | x_t, x_0). It knows nothing of the
network. The samplers built on it are in `gridnoise.schedulers`. Timesteps are always a `(B,)`
long tensor.
"""

from __future__ import annotations

import math
from typing import Literal

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


class NoiseSchedule(nn.Module):
    """The schedule's buffers (float64 maths, stored as `dtype`: float32 for training and sampling,
    float64 for likelihoods and references) and the process's closed forms.

    `num_train_timesteps` T; betas from `make_betas`, optionally rescaled to zero terminal SNR.
    """

    # buffers, each `(T,)`
    betas: Tensor
    alphas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_one_minus_alphas_cumprod: Tensor
    sqrt_recip_alphas_cumprod: Tensor
    sqrt_recipm1_alphas_cumprod: Tensor
    posterior_mean_coef1: Tensor
    posterior_mean_coef2: Tensor
    posterior_variance: Tensor

    def __init__(
        self,
        num_train_timesteps: int = 100,
        beta_schedule: Schedule = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        zero_terminal_snr: bool = False,
        dtype: torch.dtype = torch.float32,
        trained_betas: Tensor | None = None,
    ):
        super().__init__()
        if num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
        self.num_train_timesteps = num_train_timesteps
        # the constructor's arguments, so a scheduler can be rebuilt from them (diffusers' `config`)
        self.config = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                           beta_start=beta_start, beta_end=beta_end, zero_terminal_snr=zero_terminal_snr,
                           trained_betas=trained_betas)
        # Derived quantities are computed in float64 and stored as float32: in float32,
        # 1 - abar_t cancels badly at small t (posterior_mean_coef1[0] came out 0.9998, not 1).
        if trained_betas is not None and len(trained_betas) != num_train_timesteps:
            raise ValueError(f"trained_betas has {len(trained_betas)} values for {num_train_timesteps} timesteps")
        # `trained_betas` (diffusers' name): betas given outright, e.g. a continuous schedule's on T steps
        betas = (make_betas(num_train_timesteps, beta_schedule, beta_start, beta_end) if trained_betas is None
                 else torch.as_tensor(trained_betas)).double()
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        if zero_terminal_snr:
            alphas_cumprod[-1] = ZERO_SNR_FLOOR
            alphas[-1] = alphas_cumprod[-1] / alphas_cumprod[-2]
            betas = 1.0 - alphas
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        # Posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7); floored at 1e-20 as the original
        # study did, and exactly 0 at t = 0 where no noise is added.
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
            self.register_buffer(name, value.to(dtype))

    def __len__(self) -> int:
        return self.num_train_timesteps

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise (eq. 4); shapes `(B, D)`, `(B, D)`, `(B,)`."""
        s1 = self.sqrt_alphas_cumprod[timesteps].unsqueeze(-1)
        s2 = self.sqrt_one_minus_alphas_cumprod[timesteps].unsqueeze(-1)
        return s1 * original_samples + s2 * noise

    def predict_start_from_noise(self, sample: Tensor, timesteps: Tensor, noise: Tensor) -> Tensor:
        """x0_hat = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps_hat `(B, D)` (eq. 4 solved for x_0; no clipping)."""
        return (
            self.sqrt_recip_alphas_cumprod[timesteps].unsqueeze(-1) * sample
            - self.sqrt_recipm1_alphas_cumprod[timesteps].unsqueeze(-1) * noise
        )

    def q_posterior_mean(self, x_start: Tensor, x_t: Tensor, timesteps: Tensor) -> Tensor:
        """Mean `(B, D)` of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7)."""
        return (
            self.posterior_mean_coef1[timesteps].unsqueeze(-1) * x_start
            + self.posterior_mean_coef2[timesteps].unsqueeze(-1) * x_t
        )


def gaussian_kl(mean_q: Tensor, var_q: Tensor, mean_p: Tensor, var_p: Tensor) -> Tensor:
    """KL(N(mean_q, var_q I) || N(mean_p, var_p I)) `(B,)` for means `(B, D)`, variances `(B,)`."""
    d = mean_q.shape[-1]
    return 0.5 * (d * (torch.log(var_p / var_q) + var_q / var_p - 1) + ((mean_q - mean_p) ** 2).sum(-1) / var_p)


def gaussian_nll(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """-log N(x; mean, var I) `(B,)` for `(B, D)` points and variances `(B,)`."""
    d = x.shape[-1]
    return 0.5 * (d * torch.log(2 * math.pi * var) + ((x - mean) ** 2).sum(-1) / var)
