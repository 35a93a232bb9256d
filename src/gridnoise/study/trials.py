"""A tuning trial's work on a worker: train a run to the next report step, then score it.

A trial is an ordinary run directory, without figures, trained in segments (`train_run(..., until=step)`): it
pauses at each step where `gridnoise tune` reports an intermediate value, and resumes from its
checkpoint with the numbers of an uninterrupted run, so pruning never changes a surviving
trial's result. Each value is measured on the run's *validation* draw (`VALIDATION_STREAM`),
never on the training points or the held-out draw the final comparison is measured on.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from gridnoise import rundir
from gridnoise.adaptation import ode_skip_reason
from gridnoise.components import sampling_components
from gridnoise.config import RunConfig, from_dict
from gridnoise.data import model_points
from gridnoise.data.datafile import to_data, to_model
from gridnoise.data.densities import entropy, has_density
from gridnoise.errors import MetricError
from gridnoise.likelihood import ODE_TOLERANCE, bits_per_dim
from gridnoise.metrics import KLEstimator, sample_quality
from gridnoise.run import train_run
from gridnoise.sampling import draw
from gridnoise.schedulers import make_scheduler
from gridnoise.seeding import generator
from gridnoise.study.evaluation import (
    VALIDATION_STREAM,
    bound_sampler,
    heldout_points,
    kl_bits,
    ode_likelihood,
    sampler_bound,
)
from gridnoise.study.executor import keep_freed_memory

ODE_OBJECTIVE_POINTS = 200  # validation points an ODE objective solves (its cost grows with them)


def trial_segment(config: dict, directory: str, until: int, objective: str, points: int, threads: int = 1) -> float:
    """Worker side: train the trial's run in `directory` up to step `until` (resuming it), and return
    its `objective` on `points` validation points."""
    keep_freed_memory()
    torch.set_num_threads(threads)
    cfg = from_dict(RunConfig, config).validate()
    train_run(cfg, directory, resume=True, progress=False, until=until, figures=False)  # scored, not viewed
    return objective_value(directory, objective, points)


def objective_value(run_dir: str | Path, objective: str, points: int) -> float:
    """`objective` of the run's checkpoint (its EMA network and grids, as it samples) on `points` of
    its validation draw: a likelihood in bits per dimension (or a KL in bits) from the bound or the
    ODE, or a sample metric of as many samples. Raises MetricError where it is not defined."""
    state = rundir.load_checkpoint(Path(run_dir) / rundir.CHECKPOINT_FILE, torch.device("cpu"))
    cfg = from_dict(RunConfig, state["config"])
    scheduler, model, adaptation = sampling_components(state, torch.device("cpu"))
    validation, _ = heldout_points(cfg, points, VALIDATION_STREAM)
    x = torch.as_tensor(to_model(validation, cfg.data.shift, cfg.data.scale), dtype=torch.float32)
    if objective in ("nll_elbo", "kl_bound"):
        bound = sampler_bound(model, adaptation, scheduler, cfg, x, bound_sampler(cfg),
                              generator(cfg.seed, "validation-elbo"))
        return _likelihood_objective(objective, bits_per_dim(bound.mean(), cfg.data.scale), cfg)
    if objective in ("nll_ode", "kl_exact"):
        reason = ode_skip_reason(adaptation)
        if reason is not None:
            raise MetricError(f"{objective} cannot score this run ({cfg.adaptation.kind}: {reason}): tune on "
                              "nll_elbo instead")
        ode = ode_likelihood(model, adaptation, scheduler, cfg, x[:ODE_OBJECTIVE_POINTS], ODE_TOLERANCE)
        return _likelihood_objective(objective, bits_per_dim(ode.mean(), cfg.data.scale), cfg)
    sample_scheduler = make_scheduler(cfg.diffusion, cfg.sampler)
    drawn = draw(model, adaptation, sample_scheduler, cfg.sampler, points, cfg.seed,
                 torch.as_tensor(model_points(cfg)) if cfg.sampler.sampler == "cell" else None)
    samples = to_data(drawn.numpy(), cfg.data.shift, cfg.data.scale)
    if not np.isfinite(samples).all():
        return math.nan
    if objective == "kl_divergence":
        return KLEstimator(validation, cfg.eval.kl_k)(samples)
    return sample_quality(samples, validation, seed=cfg.seed)[objective]


def _likelihood_objective(objective: str, nll_bits: float, cfg: RunConfig) -> float:
    """-log p in bits per dimension, or for a KL objective 2 nll - H (bits) where the density is known."""
    if not objective.startswith("kl_"):
        return nll_bits
    if not has_density(cfg.dataset):
        raise MetricError(f"{objective} needs a data set with a known density, and {cfg.dataset} has none: tune on "
                          "nll_elbo instead")
    return kl_bits(nll_bits, entropy(cfg.dataset).bits)
