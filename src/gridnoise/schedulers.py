"""Samplers of the reverse process, in the shape of diffusers' schedulers.

Each scheduler is a `NoiseSchedule` (the schedule's buffers and closed forms) plus a step rule:

    scheduler = DDIMScheduler.from_config(cfg.diffusion, SamplerConfig("ddim", steps=20))
    for t in scheduler.timesteps:                     # set by set_timesteps, from T-1 down
        eps = model(x, timesteps, ...)                # timesteps: (B,) long, all equal to t
        x = scheduler.step(eps, timesteps, x, generator=g).prev_sample

`DDPMScheduler` takes every timestep with the ancestral posterior step (Ho et al. 2020);
`DDIMScheduler` takes any subset with Song et al. (2021)'s step. Sampler settings (eta,
clip_sample) are constructor arguments, kept in `config` as diffusers keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from gridnoise.diffusion import NoiseSchedule, Schedule
from gridnoise.registry import SAMPLERS

if TYPE_CHECKING:
    from gridnoise.config import DiffusionConfig, SamplerConfig


@dataclass
class SchedulerOutput:
    prev_sample: Tensor  # x_{t-1} (or x_{t'} for DDIM), (B, D)
    pred_original_sample: Tensor  # x0_hat, (B, D), after clipping


def _predicted_start(scheduler: DDPMScheduler | DDIMScheduler, model_output: Tensor, timesteps: Tensor,
                     sample: Tensor) -> Tensor:
    """x0_hat `(B, D)` from the predicted noise, clipped to [-clip_sample, clip_sample] when that is > 0."""
    pred_original = scheduler.predict_start_from_noise(sample, timesteps, model_output)
    if scheduler.clip_sample > 0:
        pred_original = pred_original.clamp(-scheduler.clip_sample, scheduler.clip_sample)
    return pred_original


def _randn_like(sample: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)


class DDPMScheduler(NoiseSchedule):
    """Ancestral sampling over all T timesteps: x_{t-1} ~ N(mu_q(x0_hat, x_t), g^2 beta~_t I).

    `clip_sample` > 0 clips each step's predicted x_0 to [-clip_sample, clip_sample] before the
    posterior mean is formed (diffusers' `clip_sample_range`); 0 leaves it alone.
    """

    name: ClassVar[str] = "ddpm"

    def __init__(
        self,
        num_train_timesteps: int = 100,
        beta_schedule: Schedule = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        zero_terminal_snr: bool = False,
        clip_sample: float = 0.0,
        trained_betas: Tensor | None = None,
    ):
        super().__init__(num_train_timesteps, beta_schedule, beta_start, beta_end, zero_terminal_snr,
                         trained_betas=trained_betas)
        self.clip_sample = clip_sample
        self.config["clip_sample"] = clip_sample
        self.set_timesteps()

    @classmethod
    def from_config(cls, diffusion: DiffusionConfig, sampler: SamplerConfig | None = None) -> DDPMScheduler:
        """The scheduler of a run's `DiffusionConfig`, with a sampler's clip setting."""
        return cls(diffusion.num_timesteps, diffusion.beta_schedule, diffusion.beta_start, diffusion.beta_end,
                   diffusion.zero_terminal_snr, clip_sample=sampler.clip_sample if sampler else 0.0)

    def set_timesteps(self, num_inference_steps: int | None = None, device: torch.device | str | None = None) -> None:
        """`timesteps` = T-1, ..., 0: DDPM's posterior step is defined between neighbours only."""
        T = self.num_train_timesteps
        if num_inference_steps not in (None, T):
            raise ValueError(f"DDPM takes all T = {T} timesteps (got {num_inference_steps}): use DDIM for fewer")
        self.timesteps = torch.arange(T - 1, -1, -1, device=device)

    def step(
        self,
        model_output: Tensor,
        timesteps: Tensor,
        sample: Tensor,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        std_scale: Tensor | None = None,
    ) -> SchedulerOutput:
        """One ancestral step x_t -> x_{t-1} `(B, D)` from the predicted noise `(B, D)` at `timesteps` `(B,)`.

        `std_scale` `(B,)` multiplies the step's noise standard deviation (a learned reverse
        variance g); None keeps the posterior's. The noise is drawn from `generator` unless given;
        at t = 0 the posterior variance is 0, so none reaches the sample.
        """
        pred_original = _predicted_start(self, model_output, timesteps, sample)
        mean = self.q_posterior_mean(pred_original, sample, timesteps)
        if noise is None:
            noise = _randn_like(sample, generator)
        std = self.posterior_variance[timesteps].sqrt()
        if std_scale is not None:
            std = std * std_scale
        std = std.unsqueeze(-1)
        return SchedulerOutput(prev_sample=mean + std * noise, pred_original_sample=pred_original)


def ddim_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """`steps` timesteps from T-1 down, evenly spaced and "trailing" so the first is T-1, where
    sampling starts (Lin et al. 2024, section 3.4); all T of them when steps = T."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"DDIM needs 1 <= sample steps <= T = {num_timesteps} (got {steps})")
    return [round(num_timesteps - i * num_timesteps / steps) - 1 for i in range(steps)]


class DDIMScheduler(NoiseSchedule):
    """DDIM (Song et al. 2021) over a trailing subset of the timesteps, with noise level `eta`.

    eta = 0 is deterministic; eta = 1 with every timestep is DDPM's posterior step. `clip_sample`
    > 0 clips the predicted x_0 and re-derives the noise from it, as diffusers' DDIMScheduler does.
    """

    name: ClassVar[str] = "ddim"
    prev_timesteps: Tensor  # `(T,)`: the timestep each step jumps to, -1 for x_0

    def __init__(
        self,
        num_train_timesteps: int = 100,
        beta_schedule: Schedule = "linear",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        zero_terminal_snr: bool = False,
        eta: float = 0.0,
        clip_sample: float = 0.0,
        trained_betas: Tensor | None = None,
    ):
        super().__init__(num_train_timesteps, beta_schedule, beta_start, beta_end, zero_terminal_snr,
                         trained_betas=trained_betas)
        self.eta, self.clip_sample = eta, clip_sample
        self.config.update(eta=eta, clip_sample=clip_sample)
        self.set_timesteps(num_train_timesteps)

    @classmethod
    def from_config(cls, diffusion: DiffusionConfig, sampler: SamplerConfig | None = None) -> DDIMScheduler:
        """The scheduler of a run's `DiffusionConfig` with a sampler's eta, clip and steps (0: all T)."""
        scheduler = cls(diffusion.num_timesteps, diffusion.beta_schedule, diffusion.beta_start, diffusion.beta_end,
                        diffusion.zero_terminal_snr, eta=sampler.eta if sampler else 0.0,
                        clip_sample=sampler.clip_sample if sampler else 0.0)
        if sampler is not None and sampler.steps:
            scheduler.set_timesteps(sampler.steps)
        return scheduler

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        """`timesteps`: `num_inference_steps` trailing timesteps from T-1 down (`ddim_timesteps`).

        Each step jumps from its timestep to the next one in this list, the last one to x_0.
        """
        schedule = ddim_timesteps(self.num_train_timesteps, num_inference_steps)
        self.timesteps = torch.tensor(schedule, device=device)
        # prev[t]: the largest timestep of the schedule below t, -1 (meaning x_0) below the lowest
        prev = torch.full((self.num_train_timesteps,), -1, dtype=torch.long)
        for t, t_prev in zip(schedule, schedule[1:] + [-1]):
            prev[t_prev + 1:t + 1] = t_prev
        self.register_buffer("prev_timesteps", prev.to(self.alphas_cumprod.device), persistent=False)

    def step(
        self,
        model_output: Tensor,
        timesteps: Tensor,
        sample: Tensor,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        std_scale: Tensor | None = None,
    ) -> SchedulerOutput:
        """One DDIM step x_t -> x_{t'} `(B, D)`, t' the schedule's next timestep (Song et al. 2021, eq. 12).

        sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t'), times `std_scale`
        `(B,)` when given; t' = -1 means x_0 (abar = 1).
        """
        prev_timesteps = self.prev_timesteps[timesteps]
        abar_t = self.alphas_cumprod[timesteps].unsqueeze(-1)
        abar_prev = torch.where(prev_timesteps >= 0, self.alphas_cumprod[prev_timesteps.clamp(min=0)],
                                torch.ones_like(self.alphas_cumprod[timesteps])).unsqueeze(-1)
        pred_original = _predicted_start(self, model_output, timesteps, sample)
        if self.clip_sample > 0:  # the noise is re-derived from the clipped x_0
            model_output = (sample - abar_t.sqrt() * pred_original) / (1 - abar_t).sqrt()
        sigma = self.eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).clamp(min=0).sqrt()
        if std_scale is not None:
            sigma = sigma * std_scale.unsqueeze(-1)
        direction = (1 - abar_prev - sigma**2).clamp(min=0).sqrt() * model_output
        prev = abar_prev.sqrt() * pred_original + direction
        if self.eta > 0:
            if noise is None:
                noise = _randn_like(sample, generator)
            prev = prev + sigma * noise
        return SchedulerOutput(prev_sample=prev, pred_original_sample=pred_original)


SCHEDULERS: dict[str, type[DDPMScheduler] | type[DDIMScheduler]] = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}


def make_scheduler(diffusion: DiffusionConfig, sampler: SamplerConfig | None = None) -> DDPMScheduler | DDIMScheduler:
    """The scheduler a `SamplerConfig` names (DDPM by default), built from the run's `DiffusionConfig`;
    the cell sampler (`gridnoise.cell_sampler`) takes its own steps on DDPM's schedule."""
    name = sampler.sampler if sampler is not None else "ddpm"
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler '{name}': use one of {', '.join(SAMPLERS)}")
    return SCHEDULERS[SAMPLERS[name].scheduler].from_config(diffusion, sampler)
