"""The continuous-time model family: noise schedules that are part of a valid model, trained by its
bound and judged by its exact likelihood (issue 28's question: can noise that adapts to where the
data lie help at all?).

Three kinds, each an adaptation (`adaptation.kind`) the rest of gridnoise runs like any other:

- `vdm` (`ContinuousNoise`): VDM's learned scalar log-SNR schedule gamma(t) (`vdm.LogSNRSchedule`),
  the same for every point: the best an input-independent schedule can do.
- `mulan` (`GaussianLatentNoise`): MuLAN's per-coordinate schedule gamma(t, z) from a continuous
  latent z with encoder q(z | x) = N(mu(x), diag s(x)^2) and prior N(0, I).
- `mulan_cells` (`CellLatentNoise`): the same with a grid cell c as the latent, q(c | x) a learned
  categorical over the cells and p(c) a learned prior: the original study's idea (the clean point's
  cell decides the noise) made a valid model.

The time of the process is t in [0, 1]; the denoiser is told t (T - 1), the discrete models' range of
timesteps, so the same network and embedding serve both families. The schedule's default ends are
the discrete schedule's (`log_snr_ends`): its first and last latents' log-SNR, so a fixed linear
schedule is the continuous-time limit of the discrete DDPM with the same ends (`vdm.discrete_betas`).

Each model gives its bound (`bound`, what training minimises), its samples (`sample`: the latent from
its prior first, then ancestral steps), and what its probability-flow ODE likelihood needs
(`likelihood.continuous_ode_likelihood`): the schedule and condition a latent gives (`given`) and how
the latent is marginalised (`ode_latents`: nothing to do for VDM, a sum over the cells for
`mulan_cells`, importance sampling over z for `mulan`). A noise model here is the network as
`(z_t (B, D), t (B,), condition (B, C) or None) -> eps (B, D)`; `model.continuous_time` makes one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.diffusion import NoiseSchedule
from gridnoise.errors import ConfigError
from gridnoise.mulan import PolynomialSchedule, categorical_latent_bound, gaussian_latent_bound
from gridnoise.vdm import LogSNRSchedule, NoiseModel, Schedule, continuous_bound
from gridnoise.vdm import sample as vdm_sample

DIMS = 2
ENCODER_WIDTH = 64  # hidden units of the latent models' small networks (encoder, schedule head)
IMPORTANCE_SAMPLES = 8  # draws of z ~ q(z | x) per point for a continuous latent's ODE likelihood

# (z_t (B, D), t (B,) in [0, 1], condition (B, C) or None) -> eps_hat (B, D)
ConditionalNoiseModel = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def log_snr_ends(diffusion: Any) -> tuple[float, float]:
    """gamma_0, gamma_1 = -log SNR of a `DiffusionConfig`'s first and last latents, log((1 - abar) /
    abar) at t = 0 and T - 1 (float64): the continuous models' default ends."""
    abar = NoiseSchedule(diffusion.num_timesteps, diffusion.beta_schedule, diffusion.beta_start, diffusion.beta_end,
                         diffusion.zero_terminal_snr, dtype=torch.float64).alphas_cumprod
    gamma = torch.log1p(-abar) - torch.log(abar)
    return float(gamma[0]), float(gamma[-1])


def _given(noise_model: ConditionalNoiseModel, condition: Tensor | None) -> NoiseModel:
    """`noise_model` with its condition fixed: `(z_t, t) -> eps`, as `vdm`'s functions take it."""
    return lambda z, t: noise_model(z, t, condition)


class ContinuousNoise(NoiseAdaptation):
    """VDM: continuous time, one log-SNR schedule gamma(t) for every point and coordinate, learned
    (VDM's monotone network) or fixed (linear), between ends that are fixed or learned. No latent.

    The discrete hooks of `NoiseAdaptation` (`training_inputs` and the like) do not apply: the trainer,
    sampler and evaluation call `bound`, `sample`, `given` and `ode_latents` for this family (`process`)."""

    process: ClassVar[str] = "continuous"
    supported_samplers = ("ddpm",)  # ancestral steps, any number of them (`sampler.steps`)
    continuous_settings: ClassVar[tuple[str, ...]] = ("learned_schedule", "learn_ends")

    def __init__(self, ends: tuple[float, float] = (-10.0, 10.0), learned: bool = True, learn_ends: bool = False):
        super().__init__()
        self.schedule = LogSNRSchedule(*ends, learned=learned, learn_ends=learn_ends)

    @classmethod
    def from_config(cls, cfg: Any, num_timesteps: int, ends: tuple[float, float] = (-10.0, 10.0)) -> NoiseAdaptation:
        """The model an `AdaptationConfig` describes, between the log-SNR `ends` (`log_snr_ends`)."""
        return cls(ends, learned=cfg.learned_schedule, learn_ends=cfg.learn_ends)

    def training_inputs(self, scheduler, x_start, noise, timesteps):
        raise TypeError(f"{type(self).__name__} is a continuous-time model: train it with its bound()")

    # -- the model ----------------------------------------------------------------------------
    def bound(self, noise_model: ConditionalNoiseModel, x: Tensor,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """The bound's terms on -log p(x) for points `x` `(B, D)`, each `(B,)` in nats, with their sum
        `nll` and the denoiser's squared error `mse` (`vdm.continuous_bound`; one draw of t and noise)."""
        return continuous_bound(self.schedule, _given(noise_model, None), x, generator)

    def sample(self, noise_model: ConditionalNoiseModel, num_samples: int, steps: int,
               generator: torch.Generator | None = None, callback=None, clip_sample: float = 0.0) -> Tensor:
        """`(num_samples, D)` points: `steps` ancestral steps from N(0, I) (`vdm.sample`; `callback` and
        `clip_sample` as there)."""
        return vdm_sample(self.schedule, _given(noise_model, None), num_samples, steps, generator,
                          DIMS, device=self.schedule.ends.device, callback=callback, clip_sample=clip_sample)

    def ode_latents(self, x: Tensor, generator: torch.Generator | None = None) -> list[tuple[Any, Tensor]]:
        """How the ODE likelihood (`likelihood.continuous_ode_likelihood`) marginalises the latent at
        points `x` `(N, D)`: pairs (latent, log weight `(N,)`) with log p(x) = log sum_k w_k p(x | latent_k),
        exact for a categorical latent (every category, its prior), an importance-sampled estimate
        for a continuous one. Without a latent: one pair, (None, 0)."""
        return [(None, torch.zeros(len(x), dtype=x.dtype, device=x.device))]

    def given(self, latent: Any) -> tuple[Schedule, Tensor | None]:
        """The schedule and the denoiser's condition `(N, C)` (None without a latent) for a batch of latents."""
        return self.schedule, None

    @property
    def ends(self) -> Tensor:
        """gamma(0), gamma(1) `(2,)`: one pair for every point, coordinate and latent."""
        return self.schedule.ends

    def terminal_signal(self, scheduler: NoiseSchedule | None = None) -> float:
        """abar at t = 1, where sampling starts from N(0, I): sigmoid(-gamma(1)), since alpha^2 =
        sigmoid(-gamma) (VDM eq. 3). The model's own end, learned or fixed; `scheduler` (the discrete
        process's) plays no part."""
        return float(torch.sigmoid(-self.ends[1].detach()))

    # -- what the figures draw --------------------------------------------------------------------
    def gamma(self, t: Tensor, points: Tensor | None = None) -> Tensor:
        """gamma at times `t` `(K,)`: `(K,)` for a scalar schedule; at `points` `(P, D)`, `(K, P, D)`,
        each point's coordinates under the schedule its latent (the encoder's choice) gives it."""
        with torch.no_grad():
            gamma = self.schedule(t.to(self.schedule.ends.device, torch.float32))
        return gamma if points is None else gamma[:, None, None].expand(len(t), *points.shape)


class LatentNoise(ContinuousNoise):
    """MuLAN's family: a per-coordinate polynomial schedule gamma(t, z) (`mulan.PolynomialSchedule`)
    whose coefficients a latent z sets, and a denoiser that sees z. Subclasses define the latent:
    its encoder, prior, `coefficients(z)` `(B, D, 3)` and the denoiser's `condition(z)` `(B, C)`."""

    # what the ODE likelihood's latents are, for its record (`nll_ode_<latent_count>`): "cells" summed
    # over, or "importance_samples" drawn
    latent_count: ClassVar[str] = "importance_samples"
    continuous_settings: ClassVar[tuple[str, ...]] = ("learn_ends",)

    def __init__(self, ends: tuple[float, float] = (-10.0, 10.0), learn_ends: bool = False):
        NoiseAdaptation.__init__(self)
        self.polynomial = PolynomialSchedule(*ends, learn_ends=learn_ends)

    @property
    def ends(self) -> Tensor:
        return self.polynomial.ends

    def given(self, latent: Any) -> tuple[Schedule, Tensor | None]:
        return self.polynomial.conditioned(self.coefficients(latent)), self.condition(latent)

    def gamma_given(self, t: Tensor, latent: Tensor) -> Tensor:
        """gamma `(K, B, D)` at times `t` `(K,)` under the schedules of a batch of latents (`B`)."""
        with torch.no_grad():
            schedule, _ = self.given(latent)
            return torch.stack([schedule(torch.full((len(latent),), float(s), device=latent.device)) for s in t])

    def coefficients(self, latent: Tensor) -> Tensor:
        raise NotImplementedError

    def condition(self, latent: Tensor) -> Tensor:
        raise NotImplementedError

    def bound_given(self, noise_model: ConditionalNoiseModel, generator: torch.Generator | None):
        """(x `(B, D)`, latent `(B, ...)` or `(K B,)`) -> the bound's terms given the latent, `(B,)` or
        `(K B,)` (`mulan.BoundGiven`)."""
        def bound(x: Tensor, latent: Tensor) -> dict[str, Tensor]:
            schedule, condition = self.given(latent)
            return continuous_bound(schedule, _given(noise_model, condition), x, generator,
                                    copies=len(latent) // len(x))
        return bound

    def sample_given(self, noise_model: ConditionalNoiseModel, latent: Tensor, steps: int,
                     generator: torch.Generator | None, callback=None, clip_sample: float = 0.0) -> Tensor:
        schedule, condition = self.given(latent)
        return vdm_sample(schedule, _given(noise_model, condition), len(latent), steps, generator,
                          DIMS, device=latent.device, callback=callback, clip_sample=clip_sample)


def _mlp(inputs: int, outputs: int) -> nn.Sequential:
    """A small network whose last layer starts at 0 (its output is its bias until it learns)."""
    last = nn.Linear(ENCODER_WIDTH, outputs)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(inputs, ENCODER_WIDTH), nn.SiLU(), nn.Linear(ENCODER_WIDTH, ENCODER_WIDTH),
                         nn.SiLU(), last)


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


class GaussianLatentNoise(LatentNoise):
    """MuLAN with a continuous latent z `(K,)`: encoder q(z | x) = N(mu(x), diag e^{2 log s(x)}),
    prior N(0, I), the schedule's coefficients a network of z, and z given to the denoiser. At
    initialisation q(z | x) = p(z) and the schedule is linear for every z: VDM's fixed schedule."""

    continuous_settings: ClassVar[tuple[str, ...]] = ("learn_ends", "latent_dim")

    def __init__(self, ends: tuple[float, float] = (-10.0, 10.0), learn_ends: bool = False, latent_dim: int = 2):
        super().__init__(ends, learn_ends)
        self.latent_dim = latent_dim
        self.encoder = _mlp(DIMS, 2 * latent_dim)
        self.head = _mlp(latent_dim, DIMS * 3)
        with torch.no_grad():
            cast(nn.Linear, self.head[-1]).bias.copy_(torch.tensor(PolynomialSchedule.LINEAR * DIMS))

    @classmethod
    def from_config(cls, cfg: Any, num_timesteps: int, ends: tuple[float, float] = (-10.0, 10.0)) -> NoiseAdaptation:
        return cls(ends, learn_ends=cfg.learn_ends, latent_dim=cfg.latent_dim)

    @property
    def condition_dim(self) -> int:  # type: ignore[override]
        return self.latent_dim

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x)'s mean and log standard deviation, each `(B, K)`."""
        mean, log_std = self.encoder(x.to(_dtype(self.encoder))).to(x.dtype).chunk(2, -1)
        return mean, log_std

    def coefficients(self, latent: Tensor) -> Tensor:
        return self.head(latent.to(_dtype(self.head))).to(latent.dtype).view(len(latent), DIMS, 3)

    def condition(self, latent: Tensor) -> Tensor:
        return latent

    def gamma(self, t: Tensor, points: Tensor | None = None) -> Tensor:
        """gamma at times `t` `(K,)`: `(K, D)` at the prior's mean z = 0; at `points` `(P, D)`, `(K, P, D)`
        at each point's encoder mean."""
        device = self.polynomial.ends.device
        with torch.no_grad():
            z = torch.zeros(1, self.latent_dim, device=device) if points is None else \
                self.encode(points.to(device, torch.float32))[0]
        gamma = self.gamma_given(t, z)
        return gamma[:, 0] if points is None else gamma

    def bound(self, noise_model, x, generator=None):
        mean, log_std = self.encode(x)
        return gaussian_latent_bound(x, mean, log_std, self.bound_given(noise_model, generator), generator)

    def sample(self, noise_model, num_samples, steps, generator=None, callback=None, clip_sample=0.0):
        device = self.polynomial.ends.device
        z = torch.randn((num_samples, self.latent_dim), generator=generator, device=device)
        return self.sample_given(noise_model, z, steps, generator, callback, clip_sample)

    def ode_latents(self, x, generator=None):
        """K = `IMPORTANCE_SAMPLES` draws z_k ~ q(z | x), each weighted p(z_k) / (K q(z_k | x)): log p(x) ~
        log sum_k w_k p(x | z_k), whose expectation is at most log p(x) (Jensen; IWAE's bound), so
        -log p comes out high by a gap that shrinks as K grows. The noise is drawn point by point
        (`(N, K, latent_dim)`), so the first m points get the same draws whatever N: a solver check on
        a subset of the points compares like with like."""
        with torch.no_grad():
            mean, log_std = (v.to(x.dtype) for v in self.encode(x))
        noise = torch.randn((len(x), IMPORTANCE_SAMPLES, self.latent_dim), generator=generator, dtype=mean.dtype,
                            device=mean.device)
        pairs = []
        for k in range(IMPORTANCE_SAMPLES):
            z = mean + log_std.exp() * noise[:, k]
            log_q = _normal_log_density(noise[:, k]) - log_std.sum(-1)
            pairs.append((z, _normal_log_density(z) - log_q - math.log(IMPORTANCE_SAMPLES)))
        return pairs


def _normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) `(B,)` for `(B, K)`."""
    return -0.5 * (z ** 2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


class CellLatentNoise(LatentNoise):
    """MuLAN with a grid cell c as its latent (`adaptation.grids`, one grid of n x n cells over
    `adaptation.extent`): encoder q(c | x) = softmax over cells of -||(x - centre_c) / w||^2 / 2 + a
    learned correction (w the cell's width, so it starts as a soft "the cell x lies in"), a learned
    prior p(c), one learned set of schedule coefficients per cell, and the one-hot cell given to the
    denoiser. Exact in c: the bound sums over the cells (C denoiser passes per point, so training
    costs C times a VDM step), and the ODE likelihood is log sum_c p(c) p(x | c) (C solves)."""

    extent: Tensor  # (4,): xmin, xmax, ymin, ymax
    latent_count = "cells"

    def __init__(self, size: int, extent: list[float] | tuple[float, ...],
                 ends: tuple[float, float] = (-10.0, 10.0), learn_ends: bool = False):
        super().__init__(ends, learn_ends)
        self.size, cells = size, size * size
        self.register_buffer("extent", torch.tensor(list(extent), dtype=torch.float32))
        self.encoder = _mlp(DIMS, cells)
        self.prior_logits = nn.Parameter(torch.zeros(cells))
        self.cell_coefficients = nn.Parameter(torch.tensor(PolynomialSchedule.LINEAR).repeat(cells, DIMS, 1))

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        if len(cfg.grids) != 1:
            raise ConfigError(f"adaptation '{cfg.kind}' takes one grid of cells in [adaptation.grids], e.g. "
                              f"cells = 4 (got {len(cfg.grids)})")

    @classmethod
    def from_config(cls, cfg: Any, num_timesteps: int, ends: tuple[float, float] = (-10.0, 10.0)) -> NoiseAdaptation:
        return cls(next(iter(cfg.grids.values())), cfg.extent, ends, learn_ends=cfg.learn_ends)

    @property
    def condition_dim(self) -> int:  # type: ignore[override]
        return self.size * self.size

    def set_extent(self, extent: list[float]) -> None:
        self.extent.copy_(torch.tensor(extent, dtype=torch.float32))

    def centres(self) -> tuple[Tensor, Tensor]:
        """The cells' centres `(C, D)` (cell c = i n + j: column i along x, row j along y) and widths `(D,)`."""
        low, high = self.extent.view(2, 2).unbind(-1)
        width = (high - low) / self.size
        index = torch.arange(self.size, device=self.extent.device, dtype=torch.float32)
        i, j = torch.meshgrid(index, index, indexing="ij")
        return low + (torch.stack([i, j], -1).view(-1, DIMS) + 0.5) * width, width

    def logits(self, x: Tensor) -> Tensor:
        """q(c | x)'s logits `(B, C)`."""
        centres, width = self.centres()
        h = x.to(centres.dtype)
        distance = (((h[:, None, :] - centres) / width) ** 2).sum(-1)
        return (-0.5 * distance + self.encoder(h)).to(x.dtype)

    def coefficients(self, latent: Tensor) -> Tensor:
        return self.cell_coefficients[latent]

    def condition(self, latent: Tensor) -> Tensor:
        return F.one_hot(latent, self.size * self.size).float()

    def bound(self, noise_model, x, generator=None):
        return categorical_latent_bound(x, self.logits(x), self.prior_logits, self.bound_given(noise_model, generator))

    def sample(self, noise_model, num_samples, steps, generator=None, callback=None, clip_sample=0.0):
        cells = torch.multinomial(torch.softmax(self.prior_logits.detach(), -1), num_samples, replacement=True,
                                  generator=generator)
        return self.sample_given(noise_model, cells, steps, generator, callback, clip_sample)

    def ode_latents(self, x, generator=None):
        """Every cell c with weight p(c): log p(x) = log sum_c p(c) p(x | c), exact (C ODE solves)."""
        log_prior = torch.log_softmax(self.prior_logits.detach().to(x.dtype), -1)
        return [(torch.full((len(x),), c, dtype=torch.long, device=x.device), log_prior[c].expand(len(x)))
                for c in range(len(log_prior))]

    def gamma(self, t: Tensor, points: Tensor | None = None) -> Tensor:
        """gamma at times `t` `(K,)`: each cell's `(K, C, D)`; at `points` `(P, D)`, `(K, P, D)` under
        each point's most likely cell under q(c | x)."""
        with torch.no_grad():
            cells = torch.arange(self.size ** 2, device=self.extent.device) if points is None else \
                self.logits(points.to(self.extent.device)).argmax(-1)
        return self.gamma_given(t, cells)


CURVE_TIMES = 101  # times at which the learned gamma(t) curves are saved
PLANE_TIMES = (0.25, 0.5, 0.75)  # times at which an adaptive model's gamma over the plane is saved
PLANE_SIZE = 64  # lattice points per side of that plane
CURVES = 16  # a continuous latent's curves: at this many draws of z from its prior


def schedule_arrays(adaptation: ContinuousNoise, extent: list[float], seed: int = 0) -> dict[str, Tensor]:
    """What a run's schedule figure draws (saved when the run finishes), in model units:

        t      `(K,)` times in [0, 1]
        gamma  `(K, M, D)` curves: VDM's one (the same in each coordinate), each cell's, or a continuous
               latent's at M prior draws of z
        plane_t, plane_gamma  `(L,)` times and `(L, P, P, D)` gamma over a P x P lattice of `extent`
               (xmin, xmax, ymin, ymax), axis 1 along x (an adaptive model's only), at the latent
               the encoder gives each lattice point
    """
    t = torch.linspace(0, 1, CURVE_TIMES)
    if isinstance(adaptation, GaussianLatentNoise):
        z = torch.randn(CURVES, adaptation.latent_dim, generator=torch.Generator().manual_seed(seed))
        gamma = adaptation.gamma_given(t, z.to(adaptation.polynomial.ends.device))
    elif isinstance(adaptation, CellLatentNoise):
        gamma = adaptation.gamma(t)
    else:
        gamma = adaptation.gamma(t)[:, None, None].expand(len(t), 1, DIMS)
    arrays = {"t": t, "gamma": gamma.cpu()}
    if isinstance(adaptation, LatentNoise):
        xs = torch.linspace(extent[0], extent[1], PLANE_SIZE)
        ys = torch.linspace(extent[2], extent[3], PLANE_SIZE)
        lattice = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).view(-1, DIMS)
        plane_t = torch.tensor(PLANE_TIMES)
        plane = adaptation.gamma(plane_t, lattice).cpu().view(len(plane_t), PLANE_SIZE, PLANE_SIZE, DIMS)
        arrays.update(plane_t=plane_t, plane_gamma=plane)
    return arrays
