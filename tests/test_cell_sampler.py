"""The consistent sampler of the original mechanism: its reductions to the standard sampler, each
step against a float64 reference posterior, the SNR repair, and its bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridnoise.adaptation import OriginalGridAdaptation
from gridnoise.cell_sampler import (
    cell_prior,
    cell_variances,
    cell_variational_bound,
    point_cells,
    posterior_coefficients,
    sample_cells,
)
from gridnoise.config import ModelConfig
from gridnoise.diffusion import NoiseSchedule
from gridnoise.likelihood import float64_schedule, variational_bound
from gridnoise.model import MLPDenoiser
from gridnoise.sampling import sample
from gridnoise.schedulers import DDPMScheduler

T = 20


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    model = MLPDenoiser(ModelConfig(hidden_dim=32, hidden_layers=1), condition_dim=1).eval()
    adaptation = OriginalGridAdaptation(T, {"coarse": 2, "fine": 4}, [-2, 2, -2, 2])
    points = torch.randn(3000, 2, generator=torch.Generator().manual_seed(1)) * 1.5
    return model, adaptation, points


def test_all_ones_grids_give_the_standard_coefficients():
    schedule = float64_schedule(NoiseSchedule(T))
    sigma2, adjusted = cell_variances(torch.ones((1, T), dtype=torch.float64), schedule)
    assert not adjusted.any()
    for t in range(1, T):
        a, b, v = posterior_coefficients(sigma2, schedule, t)
        assert float(a) == pytest.approx(float(schedule.posterior_mean_coef1[t]), rel=1e-12)
        assert float(b) == pytest.approx(float(schedule.posterior_mean_coef2[t]), rel=1e-12)
        assert float(v) == pytest.approx(float(schedule.posterior_variance[t]), rel=1e-10)
    assert [float(c) for c in posterior_coefficients(sigma2, schedule, 0)] == [1.0, 0.0, 0.0]


def test_each_step_is_the_exact_posterior_of_the_per_cell_process():
    """Against Gaussian conditioning of the joint (z_{t-1}, z_t) given x, in float64."""
    schedule = float64_schedule(NoiseSchedule(T))
    rng = np.random.default_rng(0)
    g = torch.from_numpy(np.exp(np.cumsum(rng.normal(0.02, 0.01, (3, T)), axis=1)))  # rising g: SNR falls
    sigma2, adjusted = cell_variances(g, schedule)
    assert not adjusted.any() and torch.allclose(sigma2, g**2 * (1 - schedule.alphas_cumprod))
    x, z = np.array([0.7, -0.3]), np.array([0.2, 0.9])
    for t in (1, 7, T - 1):
        a, b, v = (c.numpy() for c in posterior_coefficients(sigma2, schedule, t))
        abar_prev, alpha = float(schedule.alphas_cumprod[t - 1]), float(schedule.alphas[t])
        for k in range(3):
            before, now = float(sigma2[k, t - 1]), float(sigma2[k, t])
            # z_{t-1} ~ N(sqrt(abar_prev) x, before), z_t = sqrt(alpha) z_{t-1} + N(0, now - alpha before)
            cov = np.array([[before, math.sqrt(alpha) * before], [math.sqrt(alpha) * before, now]])
            mean = np.array([math.sqrt(abar_prev), math.sqrt(abar_prev * alpha)])[:, None] * x
            cond_mean = mean[0] + cov[0, 1] / cov[1, 1] * (z - mean[1])
            cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
            assert np.allclose(a[k] * x + b[k] * z, cond_mean, rtol=1e-12, atol=1e-14)
            assert v[k] == pytest.approx(cond_var, rel=1e-10)


def test_a_rising_snr_is_repaired_to_the_nearest_valid_process():
    schedule = float64_schedule(NoiseSchedule(T))
    g = torch.ones((1, T), dtype=torch.float64)
    g[0, 10] = 0.5  # the noise drops at t = 10: the SNR rises there
    sigma2, adjusted = cell_variances(g, schedule)
    s2 = sigma2[:, 1:] - schedule.alphas[1:] * sigma2[:, :-1]
    assert (s2 >= -1e-15).all()
    assert adjusted[0, 10] and adjusted.sum() >= 1 and not adjusted[0, :10].any()
    assert float(sigma2[0, 10]) == pytest.approx(float(schedule.alphas[10] * sigma2[0, 9]))


def test_all_ones_grids_sample_as_the_standard_sampler(parts):
    model, adaptation, points = parts
    scheduler = DDPMScheduler(T)
    prior = cell_prior(adaptation, points)
    assert prior.probs.sum() == pytest.approx(1.0) and (prior.noise_scales == 1).all()
    standard = sample(model, adaptation, scheduler, 500, torch.Generator().manual_seed(3))
    ours = sample_cells(model, prior, scheduler, 500, torch.Generator().manual_seed(3),
                        cell_generator=torch.Generator().manual_seed(9))
    # the same noise, float64 coefficients against the scheduler's float32 ones
    assert torch.allclose(ours, standard, atol=1e-4)


def test_the_bound_adds_the_cells_log_frequency(parts):
    model, adaptation, points = parts
    scheduler = DDPMScheduler(T)
    prior = cell_prior(adaptation, points)
    x = points[:300]
    ours = cell_variational_bound(model, adaptation, prior, scheduler, x, torch.Generator().manual_seed(5))
    standard = variational_bound(model, adaptation, scheduler, x, torch.Generator().manual_seed(5))
    # all-ones grids: the per-cell process is the standard one, drawn from the same noise
    assert np.allclose(ours.nll - ours.terms["cell"], standard.nll, rtol=1e-9, atol=1e-9)
    counts = {tuple(c): n for c, n in zip(*np.unique(point_cells(adaptation, points).numpy(), axis=0,
                                                     return_counts=True))}
    first = tuple(point_cells(adaptation, x[:1]).numpy()[0])
    assert ours.terms["cell"][0] == pytest.approx(-math.log(counts[first] / len(points)))


def test_learned_grids_change_the_process(parts):
    model, adaptation, points = parts
    with torch.no_grad():
        for grid in adaptation.named_grids().values():
            grid.values.uniform_(0.7, 1.3, generator=torch.Generator().manual_seed(4))
    prior = cell_prior(adaptation, points)
    sigma2, adjusted = cell_variances(prior.noise_scales, float64_schedule(NoiseSchedule(T)))
    assert adjusted.any()  # random grids break the SNR order somewhere; the repair makes every step valid
    drawn = sample_cells(model, prior, DDPMScheduler(T), 400, torch.Generator().manual_seed(3))
    assert drawn.shape == (400, 2) and torch.isfinite(drawn).all()
    bound = cell_variational_bound(model, adaptation, prior, DDPMScheduler(T), points[:200],
                                   torch.Generator().manual_seed(5))
    assert np.isfinite(bound.nll).all() and (bound.terms["adjusted"] > 0).any()


def test_it_samples_an_already_trained_original_run(tmp_path, tiny_run):
    """A run of the original mechanism, trained as always, sampled both ways from the command line."""
    from conftest import cli

    run = tiny_run("multiscale")  # sampling only reads it
    cli("sample", run, "-n", 500, "--sampler", "cell", "--out", tmp_path / "cell.npz", check=True)
    cli("sample", run, "-n", 500, "--out", tmp_path / "ddpm.npz", check=True)
    with np.load(tmp_path / "cell.npz") as a, np.load(tmp_path / "ddpm.npz") as b:
        cell, ddpm = a["samples"], b["samples"]
    assert cell.shape == (500, 2) and np.isfinite(cell).all() and not np.allclose(cell, ddpm)
    refused = cli("train", "--dataset", "moons", "--variant", "conditioning", "--steps", 5, "--out",
                        tmp_path / "c", "--set", 'eval.extra_samplers={cell={sampler="cell"}}')
    assert refused.returncode == 2 and "cell sampler is not defined for ConditioningGridAdaptation" in refused.stderr
