"""Sampling: run the reverse process from pure noise with a trained network and its grids.

One loop for every sampler (`sample`): the scheduler (`gridnoise.schedulers`) says which
timesteps to visit and how to step; the adaptation says which noise scale g the network sees at
x_t and, for a learned reverse variance, the factor on the step's noise. `sample_run` draws
from a saved run directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from gridnoise import rundir
from gridnoise.adaptation import GridAdaptation, NoiseAdaptation, check_supported
from gridnoise.cell_sampler import cell_prior, sample_cells
from gridnoise.components import resolve_device, sampling_components
from gridnoise.config import RunConfig, SamplerConfig, check_sampler, from_dict
from gridnoise.continuous import ContinuousNoise
from gridnoise.data import model_points
from gridnoise.data.datafile import to_data
from gridnoise.errors import CheckpointError
from gridnoise.model import continuous_time, predict_noise
from gridnoise.schedulers import DDIMScheduler, DDPMScheduler, make_scheduler
from gridnoise.seeding import generator


@torch.no_grad()
def sample(
    model: nn.Module,
    adaptation: NoiseAdaptation,
    scheduler: DDPMScheduler | DDIMScheduler,
    num_samples: int,
    generator: torch.Generator,
    callback: Callable[[int, Tensor], None] | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """Draw `(num_samples, 2)` points, from x_T ~ N(0, I) through `scheduler.timesteps` down to x_0.

    `noise` `(num_samples, 2)` is the starting x_T (drawn from `generator` when None); the steps'
    noise always comes from `generator`. `callback(t, x)` sees the starting noise (t = T) and
    every step's result (t = the timestep it was computed from).
    """
    check_supported(adaptation, scheduler.name)
    device = scheduler.betas.device
    x = torch.randn((num_samples, 2), generator=generator, device=device) if noise is None else noise.to(device)
    if callback is not None:
        callback(len(scheduler), x)
    for t in scheduler.timesteps.tolist():
        timesteps = torch.full((num_samples,), t, dtype=torch.long, device=device)
        g = adaptation.sampling_noise_scale(x, timesteps)
        std_scale = adaptation.reverse_std_scale(x, timesteps)
        model_output = predict_noise(model, x, timesteps, g)
        x = scheduler.step(model_output, timesteps, x, generator=generator, std_scale=std_scale).prev_sample
        if callback is not None:
            callback(t, x)
    return x


def draw(model: nn.Module, adaptation: NoiseAdaptation, scheduler: DDPMScheduler | DDIMScheduler,
         sampler: SamplerConfig, num_samples: int, seed: int, training_points: Tensor | None = None, callback=None,
         stream: str = "sample") -> Tensor:
    """`(num_samples, 2)` points with any sampler: the scheduler's loop (`sample`, random stream `stream`),
    for "cell" the original mechanism's consistent sampler (`gridnoise.cell_sampler`), its cells drawn
    from the frequencies of `training_points` `(N, 2)` (model units; stream "cells"), or a continuous-time
    model's own sampler (`continuous`) with `sampler.steps` ancestral steps (0: T)."""
    device = scheduler.betas.device
    if isinstance(adaptation, ContinuousNoise):
        T = len(scheduler.betas)
        with torch.no_grad():
            return adaptation.sample(continuous_time(model, T), num_samples, sampler.steps or T,
                                     generator(seed, stream, device), callback, sampler.clip_sample)
    if sampler.sampler != "cell":
        return sample(model, adaptation, scheduler, num_samples, generator(seed, stream, device), callback)

    check_supported(adaptation, "cell")
    assert isinstance(adaptation, GridAdaptation) and training_points is not None
    prior = cell_prior(adaptation, training_points.to(device))
    return sample_cells(model, prior, scheduler, num_samples, generator(seed, "sample", device),
                        cell_generator=generator(seed, "cells", device), clip_sample=scheduler.clip_sample,
                        callback=callback)


def sample_run(run_dir: str | Path, num_samples: int, seed: int | None = None, device: str = "auto",
               sampler: SamplerConfig | None = None, callback=None) -> np.ndarray:
    """Draw `(num_samples, 2)` samples from a saved run's EMA network and grids with `seed`'s
    sampling stream (None: the run's own seed, which redraws its `samples.npz` exactly), with
    `sampler` (default: the run's own); `callback(t, x)` sees every intermediate state."""
    dev = resolve_device(device)
    state = rundir.load_checkpoint(Path(run_dir) / rundir.CHECKPOINT_FILE, dev)
    cfg = from_dict(RunConfig, state["config"])
    if int(state["step"]) < cfg.train.steps:
        raise CheckpointError(
            f"{run_dir} stopped at step {int(state['step'])} of {cfg.train.steps}: finish it with "
            "`gridnoise train --out RUN_DIR --resume` first")
    sampler = sampler or cfg.sampler
    check_sampler(sampler, cfg.diffusion.num_timesteps, cfg.adaptation.kind)
    with rundir.checkpoint_fits(Path(run_dir) / rundir.CHECKPOINT_FILE):
        _, model, adaptation = sampling_components(state, dev)
    scheduler = make_scheduler(cfg.diffusion, sampler).to(dev)
    seed = cfg.seed if seed is None else seed
    points = None
    if sampler.sampler == "cell":  # its cells come from the training data

        points = torch.as_tensor(model_points(cfg))
    drawn = draw(model, adaptation, scheduler, sampler, num_samples, seed, points, callback).cpu().numpy()
    return to_data(drawn, cfg.data.shift, cfg.data.scale)  # in the data's own units
