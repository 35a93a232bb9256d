"""Noise adaptation: learnable grids of noise-scale factors g over the plane, one per timestep.

A `NoiseAdaptation` decides how a sample is noised in training, which noise scale g the
denoiser is given in training and in sampling, whether g scales the reverse step's noise, and
what penalty or loss it adds. A new adaptation is one subclass of it, registered in
`gridnoise.plugins.ADAPTATIONS` (or a plug-in). The continuous-time models (`gridnoise.continuous`)
are adaptations of another `process`. Grids are `nn.Parameter`s and their extents buffers, so `state_dict`,
`.to(device)` and checkpoints carry them.

g is the product of the grids' values at a point's cell and timestep; `noise_scale` computes it.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from gridnoise.diffusion import NoiseSchedule
from gridnoise.errors import ConfigError, SamplerError

CONTINUOUS_SETTINGS = ("learned_schedule", "learn_ends", "latent_dim")  # AdaptationConfig's, see continuous.py


def grid_label(name: str) -> str:
    """File and metric stem of a grid, as the original study named them: "grid" or "<name>_grid"."""
    return "grid" if name == "grid" else f"{name}_grid"


class Grid(nn.Module):
    """A `(T, n, n)` tensor of factors over the rectangle `extent`, initialised to 1.

    Axis 1 of the tensor indexes x and axis 2 indexes y (the original study's layout).
    """

    values: nn.Parameter  # (T, n, n)
    extent: Tensor  # (4,): xmin, xmax, ymin, ymax

    def __init__(self, num_timesteps: int, size: int, extent: list[float] | tuple[float, ...]):
        super().__init__()
        if size < 1:
            raise ValueError(f"grid size must be >= 1, got {size}")
        self.size = size
        self.values = nn.Parameter(torch.ones(num_timesteps, size, size))
        self.register_buffer("extent", torch.tensor(list(extent), dtype=torch.float32))

    def cell_index(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Cells `(B,)`, `(B,)` of points `(B, 2)`; points outside the extent go to edge cells."""
        xmin, xmax, ymin, ymax = self.extent.unbind()
        # With the original extent [-1, 1] this is exactly its floor((p + 1) / 2 * n).
        i = torch.floor((points[:, 0] - xmin) / (xmax - xmin) * self.size).long()
        j = torch.floor((points[:, 1] - ymin) / (ymax - ymin) * self.size).long()
        return i.clamp(0, self.size - 1), j.clamp(0, self.size - 1)

    def forward(self, points: Tensor, timesteps: Tensor) -> Tensor:
        """Grid value `(B,)` at each point's cell and timestep."""
        i, j = self.cell_index(points)
        return self.values[timesteps, i, j]


def data_extent(points: Tensor, margin: float = 0.05) -> list[float]:
    """The points' bounding box widened by `margin` of its width on every side: (xmin, xmax, ymin, ymax)."""
    low, high = points.min(dim=0).values, points.max(dim=0).values
    pad = (high - low) * margin
    return [float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1])]


def edge_cell_share(points: Tensor, size: int, extent: list[float]) -> float:
    """Share of points whose cell in a `size` x `size` grid over `extent` lies on the grid's border.

    Points outside the extent are clamped into border cells, so a grid smaller than the data
    spends its border cells on everything it does not cover.
    """
    i, j = Grid(1, size, extent).cell_index(points)
    edge = (i == 0) | (i == size - 1) | (j == 0) | (j == size - 1)
    return float(edge.float().mean())


def _distinct(coordinates: Tensor) -> Tensor:
    """Sorted coordinates `(K,)` with near-equal ones (float32 rounding of the same edge) kept once."""
    c = coordinates.sort().values
    if len(c) < 2:
        return c
    span = float(c[-1] - c[0]) or 1.0
    return c[torch.cat([torch.ones(1, dtype=torch.bool, device=c.device), c.diff() > 1e-6 * span])]


class NoiseAdaptation(nn.Module):
    """Interface of an adaptation; this base class is plain DDPM (no adaptation)."""

    # "discrete": the DDPM process of `gridnoise.diffusion`, through the hooks below; "continuous": a
    # continuous-time model of `gridnoise.continuous`, with its own bound, sampler and likelihood
    process: ClassVar[str] = "discrete"
    conditions_model: ClassVar[bool] = False  # whether the denoiser takes the noise scale g as an input
    # Samplers whose steps this adaptation's reverse process is defined for (checked by `check_supported`).
    supported_samplers: ClassVar[tuple[str, ...]] = ("ddpm", "ddim")
    # Whether the denoiser sees the same g for the same (x_t, t) in training and in sampling.
    same_lookup: ClassVar[bool] = True
    # Why the probability-flow ODE likelihood (`gridnoise.likelihood`) is not this model's, or None
    # when sampling is the standard posterior step with the network seeing `sampling_noise_scale`.
    ode_unsupported: ClassVar[str | None] = None

    @classmethod
    def from_config(cls, cfg: Any, num_timesteps: int) -> NoiseAdaptation:
        """The adaptation an `AdaptationConfig` describes, for T = `num_timesteps`."""
        return cls()

    # the continuous-time kinds' settings of an `AdaptationConfig` (`gridnoise.continuous`) this one reads;
    # set away from their defaults for any other adaptation, they are refused rather than ignored
    continuous_settings: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Raise ConfigError if an `AdaptationConfig` cannot describe this adaptation (run by
        `RunConfig.validate`, before anything is built)."""
        defaults = type(cfg)()
        for key in CONTINUOUS_SETTINGS:
            if key not in cls.continuous_settings and getattr(cfg, key) != getattr(defaults, key):
                raise ConfigError(f"adaptation.{key} is not read by adaptation '{cfg.kind}' (it would be ignored): "
                                  "remove it, or choose a kind that reads it (see docs/reference/variants.md)")

    @property
    def condition_dim(self) -> int:
        """Columns the denoiser takes besides x_t and t: 1 (the noise scale g) when `conditions_model`."""
        return int(self.conditions_model)

    def set_extent(self, extent: list[float]) -> None:
        """Cover `extent` (xmin, xmax, ymin, ymax) instead of the configured one (`extent_from_data`);
        nothing to do for an adaptation without cells."""

    def training_inputs(
        self, scheduler: NoiseSchedule, x_start: Tensor, noise: Tensor, timesteps: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """The noised sample x_t `(B, D)` and the noise scale g `(B,)` (or None) the denoiser sees."""
        return scheduler.add_noise(x_start, noise, timesteps), None

    def sampling_noise_scale(self, sample: Tensor, timesteps: Tensor) -> Tensor | None:
        """The noise scale g `(B,)` given to the denoiser at x_t `(B, D)` during sampling, or None."""
        return None

    def reverse_std_scale(self, sample: Tensor, timesteps: Tensor) -> Tensor | None:
        """Factor `(B,)` on the reverse step's noise standard deviation at x_t, or None (1)."""
        return None

    def field_edges(self) -> tuple[Tensor, Tensor]:
        """Where `sampling_noise_scale` jumps, so the probability-flow ODE's field does too: the
        coordinates `(Kx,)` of the lines x = c and `(Ky,)` of the lines y = c (model units), sorted.
        The ODE likelihood adds the density's jump where a trajectory crosses one. The base class has
        none: its g is None."""
        empty = torch.zeros(0, dtype=torch.float64)
        return empty, empty

    def penalty(self) -> Tensor:
        """Regularisation added to the loss (a scalar)."""
        return torch.zeros(())

    def auxiliary_loss(self, scheduler: NoiseSchedule, x_start: Tensor, x_t: Tensor, timesteps: Tensor,
                       predicted_noise: Tensor) -> Tensor | None:
        """A loss term that trains the adaptation from the network's prediction, or None."""
        return None

    def grids(self) -> dict[str, Tensor]:
        """Named grid tensors `(T, n, n)`; empty when there are none."""
        return {}

    def terminal_signal(self, scheduler: NoiseSchedule) -> float:
        """abar_T: the share of the clean point's variance the process keeps at its last step, where
        sampling starts from N(0, I) instead (above about 0.01 the two disagree). For the discrete
        process, `scheduler`'s last alphas_cumprod."""
        return float(scheduler.alphas_cumprod[-1])


class GridAdaptation(NoiseAdaptation):
    """Shared by every grid variant: named grids whose values multiply into one noise scale g,
    optional L1 penalties pulling chosen grids toward 1, and an extent that can be reset to
    the data's (it is a buffer, so it is saved with the model)."""

    def __init__(self, num_timesteps: int, sizes: dict[str, int], extent, l1: dict[str, float] | None = None):
        super().__init__()
        if not sizes:
            raise ValueError("a grid adaptation needs at least one grid")
        self.grid_modules = nn.ModuleDict({name: Grid(num_timesteps, n, extent) for name, n in sizes.items()})
        self.l1 = dict(l1 or {})

    @classmethod
    def from_config(cls, cfg: Any, num_timesteps: int) -> NoiseAdaptation:
        """Grids of `cfg.grids` cells per side over `cfg.extent`, with `cfg.l1` penalties."""
        return cls(num_timesteps, cfg.grids, cfg.extent, cfg.l1)

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        super().check_config(cfg)
        if not cfg.grids:
            raise ConfigError(f"adaptation '{cfg.kind}' needs at least one grid in [adaptation.grids]")

    def named_grids(self) -> dict[str, Grid]:
        """The `Grid` modules by name, in the order their values multiply."""
        return {name: cast(Grid, grid) for name, grid in self.grid_modules.items()}

    def noise_scale(self, points: Tensor, timesteps: Tensor) -> Tensor:
        """g `(B,)`: the product of every grid's value at the cells of `points` `(B, 2)`."""
        first, *rest = self.named_grids().values()
        g = first(points, timesteps)
        for grid in rest:
            g = g * grid(points, timesteps)
        return g

    def field_edges(self) -> tuple[Tensor, Tensor]:
        """Every grid's interior cell edges (points outside the extent use the border cells, so the
        outer edges are no jumps); an edge that nested grids share is listed once."""
        lines: tuple[list[Tensor], list[Tensor]] = ([], [])
        for grid in self.named_grids().values():
            inner = torch.arange(1, grid.size, dtype=torch.float64, device=grid.extent.device) / grid.size
            for axis, (low, high) in enumerate(grid.extent.double().view(2, 2)):
                lines[axis].append(low + (high - low) * inner)
        return _distinct(torch.cat(lines[0])), _distinct(torch.cat(lines[1]))

    def set_extent(self, extent: list[float]) -> None:
        for grid in self.named_grids().values():
            grid.extent.copy_(torch.tensor(extent, dtype=torch.float32))

    def penalty(self) -> Tensor:
        total = torch.zeros((), device=next(self.parameters()).device)
        grids = self.named_grids()
        for name, weight in self.l1.items():
            total = total + weight * (grids[name].values - 1).abs().sum()
        return total

    def grids(self) -> dict[str, Tensor]:
        return {name: grid.values for name, grid in self.named_grids().items()}


class OriginalGridAdaptation(GridAdaptation):
    """The original study's mechanism: g scales the forward noise.

    g is looked up at the clean x_0 in training, x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) g eps,
    and at the noisy x_t in sampling. The denoiser gets g and still predicts the unscaled eps;
    the reverse step is the standard one. Training and sampling thus look g up at different
    points, and the forward process is not the one the reverse step assumes: kept as it was run.
    """

    conditions_model = True
    same_lookup = False  # g at x_0 in training, at x_t in sampling
    # "cell": the sampler its training implies, the clean point's cell as a latent (gridnoise.cell_sampler)
    supported_samplers = ("ddpm", "ddim", "cell")

    def training_inputs(self, scheduler, x_start, noise, timesteps):
        g = self.noise_scale(x_start, timesteps)
        return scheduler.add_noise(x_start, noise * g.unsqueeze(-1), timesteps), g

    def sampling_noise_scale(self, sample, timesteps):
        return self.noise_scale(sample, timesteps)


class ConditioningGridAdaptation(GridAdaptation):
    """Consistent conditioning: standard DDPM noising; g is looked up at the noisy x_t (and t)
    in training and sampling alike and given to the denoiser, so both paths see the same
    inputs. The grids learn through the denoiser's loss alone."""

    conditions_model = True

    def training_inputs(self, scheduler, x_start, noise, timesteps):
        x_t = scheduler.add_noise(x_start, noise, timesteps)
        return x_t, self.sampling_noise_scale(x_t, timesteps)

    def sampling_noise_scale(self, sample, timesteps):
        return self.noise_scale(sample, timesteps)


class ReverseVarianceGridAdaptation(GridAdaptation):
    """Learned reverse variance: standard DDPM noising and denoiser; g, looked up at x_t,
    multiplies the reverse step's noise standard deviation per region and timestep.

    The grids are trained by the variational-bound term KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
    (Ho et al. 2020, eq. 5) with the network's mean held fixed, as Nichol & Dhariwal (2021) train
    learned variances. For Gaussians with variances beta~_t and g^2 beta~_t in d dimensions it is
        d/2 (log g^2 + 1/g^2 - 1) + ||mu_q - mu_model||^2 / (2 g^2 beta~_t),
    minimised per cell at g^2 = 1 + E[||mu_q - mu_model||^2] / (d beta~_t) (cf. Analytic-DPM,
    Bao et al. 2022). t = 0 adds no noise, so it has no such term. The grids are trained for
    single DDPM steps, so DDIM's longer jumps are not supported.
    """

    supported_samplers = ("ddpm",)
    ode_unsupported = "the reverse step's variance is learned, not the standard posterior one"

    def reverse_std_scale(self, sample, timesteps):
        return self.noise_scale(sample, timesteps)

    def auxiliary_loss(self, scheduler, x_start, x_t, timesteps, predicted_noise):
        g2 = self.reverse_std_scale(x_t, timesteps) ** 2
        mean_model = scheduler.q_posterior_mean(
            scheduler.predict_start_from_noise(x_t, timesteps, predicted_noise.detach()), x_t, timesteps)
        mean_true = scheduler.q_posterior_mean(x_start, x_t, timesteps)
        noisy = timesteps > 0
        # beta~_0 = 0: use 1 there so the masked-out terms (and their gradients) stay finite
        variance = torch.where(noisy, scheduler.posterior_variance[timesteps], torch.ones_like(g2))
        d = x_t.shape[-1]
        gap = ((mean_true - mean_model) ** 2).sum(-1)
        kl = 0.5 * d * (torch.log(g2) + 1 / g2 - 1) + gap / (2 * g2 * variance)
        return torch.where(noisy, kl, torch.zeros_like(kl)).sum() / noisy.sum().clamp(min=1)



def ode_skip_reason(adaptation: type[NoiseAdaptation] | NoiseAdaptation) -> str | None:
    """Why `gridnoise evaluate` computes no probability-flow ODE likelihood for this adaptation, or
    None. A subclass that changes the reverse step or g without saying where g jumps is skipped: the
    change-of-variables formula needs to know every jump of the ODE's field."""
    cls = adaptation if isinstance(adaptation, type) else type(adaptation)
    if cls.ode_unsupported:
        return cls.ode_unsupported
    base = NoiseAdaptation
    if cls.reverse_std_scale is not base.reverse_std_scale:
        return "it changes the reverse step's variance: set ode_unsupported, or keep the standard step"
    if cls.sampling_noise_scale is not base.sampling_noise_scale and cls.field_edges is base.field_edges:
        return "its g's jumps are not declared: define field_edges (none if g is continuous)"
    return None


def check_supported(adaptation: type[NoiseAdaptation] | NoiseAdaptation, sampler: str, where: str = "") -> None:
    """Raise SamplerError unless `sampler` is in the adaptation's `supported_samplers`: the one
    place where a run's sampler is checked against its adaptation."""
    cls = adaptation if isinstance(adaptation, type) else type(adaptation)
    if sampler not in cls.supported_samplers:
        raise SamplerError(f"{where + ': ' if where else ''}the {sampler} sampler is not defined for "
                           f"{cls.__name__} (it supports {', '.join(cls.supported_samplers)}): sample this run "
                           f"with --sampler {cls.supported_samplers[0]}")
