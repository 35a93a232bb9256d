"""Noise adaptation: learnable grids of noise-scale factors over the plane, one per timestep.

A `NoiseAdaptation` decides how a sample is noised in training, which noise level the
denoiser is given in training and in sampling, and what penalty it adds to the loss. A new
adaptation is one subclass of it. Grids are `nn.Parameter`s and their extents buffers, so
`state_dict`, `.to(device)` and checkpoints carry them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridnoise.config import AdaptationConfig
from gridnoise.diffusion import DDPMScheduler


def grid_label(name: str) -> str:
    """File and metric stem of a grid, as the seed named them: "grid" or "<name>_grid"."""
    return "grid" if name == "grid" else f"{name}_grid"


class Grid(nn.Module):
    """A `(T, n, n)` tensor of factors over the rectangle `extent`, initialised to 1.

    Axis 1 of the tensor indexes x and axis 2 indexes y (the seed's layout).
    """

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
        # With the seed's extent [-1, 1] this is exactly its floor((p + 1) / 2 * n).
        i = torch.floor((points[:, 0] - xmin) / (xmax - xmin) * self.size).long()
        j = torch.floor((points[:, 1] - ymin) / (ymax - ymin) * self.size).long()
        return i.clamp(0, self.size - 1), j.clamp(0, self.size - 1)

    def forward(self, points: Tensor, timesteps: Tensor) -> Tensor:
        """Grid value `(B,)` at each point's cell and timestep."""
        i, j = self.cell_index(points)
        return self.values[timesteps, i, j]


class NoiseAdaptation(nn.Module):
    """Interface of an adaptation; this base class is plain DDPM (no adaptation)."""

    conditions_model: bool = False  # whether the denoiser takes the noise level g as an input

    def training_inputs(
        self, scheduler: DDPMScheduler, x_start: Tensor, noise: Tensor, timesteps: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """The noised sample x_t `(B, D)` and the level g `(B,)` (or None) the denoiser sees."""
        return scheduler.add_noise(x_start, noise, timesteps), None

    def sampling_level(self, sample: Tensor, timesteps: Tensor) -> Tensor | None:
        """The level g `(B,)` given to the denoiser at x_t during sampling, or None."""
        return None

    def penalty(self) -> Tensor:
        """Regularisation added to the loss (a scalar)."""
        return torch.zeros(())

    def grids(self) -> dict[str, Tensor]:
        """Named grid tensors `(T, n, n)`; empty when there are none."""
        return {}


class SeedGridAdaptation(NoiseAdaptation):
    """The seed's mechanism (SYSTEM.md section 4): g scales the forward noise.

    g is the product of all grids' values; in training it is looked up at the clean x_0, in
    sampling at the noisy x_t. The denoiser gets g and still predicts the unscaled noise; the
    reverse step is unchanged. Optional L1 penalties pull chosen grids toward 1.
    """

    conditions_model = True

    def __init__(self, num_timesteps: int, sizes: dict[str, int], extent, l1: dict[str, float] | None = None):
        super().__init__()
        if not sizes:
            raise ValueError("a grid adaptation needs at least one grid")
        self.grid_modules = nn.ModuleDict({name: Grid(num_timesteps, n, extent) for name, n in sizes.items()})
        self.l1 = dict(l1 or {})

    def level(self, points: Tensor, timesteps: Tensor) -> Tensor:
        g = None
        for grid in self.grid_modules.values():
            value = grid(points, timesteps)
            g = value if g is None else g * value
        return g

    def training_inputs(self, scheduler, x_start, noise, timesteps):
        g = self.level(x_start, timesteps)
        return scheduler.add_noise(x_start, noise * g.unsqueeze(-1), timesteps), g

    def sampling_level(self, sample, timesteps):
        return self.level(sample, timesteps)

    def penalty(self) -> Tensor:
        total = torch.zeros((), device=next(self.parameters()).device)
        for name, weight in self.l1.items():
            total = total + weight * (self.grid_modules[name].values - 1).abs().sum()
        return total

    def grids(self) -> dict[str, Tensor]:
        return {name: grid.values for name, grid in self.grid_modules.items()}


def build_adaptation(cfg: AdaptationConfig, num_timesteps: int) -> NoiseAdaptation:
    """The adaptation a config describes; unknown kinds raise ValueError."""
    if cfg.kind == "none":
        return NoiseAdaptation()
    if cfg.kind == "seed_grid":
        return SeedGridAdaptation(num_timesteps, cfg.grids, cfg.extent, cfg.l1)
    raise ValueError(f"unknown adaptation kind '{cfg.kind}': use none or seed_grid")
