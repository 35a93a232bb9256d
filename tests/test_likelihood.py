"""The variational bound and the probability-flow ODE likelihood, proved on Gaussian data, where the
optimal noise predictor, the data's density and the reverse chain's marginal are closed forms
(float64 throughout)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.diffusion import NoiseSchedule
from gridnoise.errors import MetricError
from gridnoise.likelihood import (
    bits_per_dim,
    continuous_alphas_cumprod,
    network_noise_model,
    ode_log_likelihood,
    variational_bound,
)

MEAN = torch.tensor([0.5, -1.0], dtype=torch.float64)
COV = torch.tensor([[1.5, 0.6], [0.6, 0.8]], dtype=torch.float64)
T = 20


class GaussianOptimal(nn.Module):
    """The optimal noise predictor for data N(MEAN, COV): at abar, z ~ N(sqrt(abar) m, S_abar) with
    S_abar = abar COV + (1 - abar) I, and E[eps | z] = sqrt(1 - abar) S_abar^-1 (z - sqrt(abar) m).
    Integer timesteps read the discrete abar_t, real ones the ODE's continuous abar(u)."""

    def __init__(self, schedule: NoiseSchedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, z: Tensor, timesteps: Tensor, noise_scale: Tensor | None = None) -> Tensor:
        if timesteps.is_floating_point():
            abar = continuous_alphas_cumprod(self.schedule, timesteps)[0]
        else:
            abar = self.schedule.alphas_cumprod[timesteps]
        cov = abar[:, None, None] * COV + (1 - abar)[:, None, None] * torch.eye(2, dtype=torch.float64)
        centred = z.double() - abar.sqrt()[:, None] * MEAN
        return (1 - abar).sqrt()[:, None] * torch.linalg.solve(cov, centred.unsqueeze(-1)).squeeze(-1)


def gaussian_log_density(x: Tensor, mean: Tensor, cov: Tensor) -> Tensor:
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


def marginal(abar: float) -> tuple[Tensor, Tensor]:
    return math.sqrt(abar) * MEAN, abar * COV + (1 - abar) * torch.eye(2, dtype=torch.float64)


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(T, dtype=torch.float64)


@pytest.fixture(scope="module")
def data():
    generator = torch.Generator().manual_seed(0)
    return MEAN + torch.randn((400, 2), generator=generator, dtype=torch.float64) @ torch.linalg.cholesky(COV).T


def reverse_chain_marginal(schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """The exact marginal N(mu, P) of x under the DDPM sampler with the optimal predictor: each step
    is linear-Gaussian, z_{t-1} = M_t z_t + v_t + sqrt(beta~_t) xi, and the decoder adds N(0, beta_0 I)."""
    eye = torch.eye(2, dtype=torch.float64)
    mu, cov = torch.zeros(2, dtype=torch.float64), eye.clone()
    for t in range(T - 1, -1, -1):
        a = float(schedule.alphas_cumprod[t])
        inverse = torch.linalg.inv(a * COV + (1 - a) * eye)
        # x0_hat = (z - sqrt(1 - a) eps) / sqrt(a), eps = sqrt(1 - a) S^-1 (z - sqrt(a) m)
        A = (eye - (1 - a) * inverse) / math.sqrt(a)
        b = (1 - a) * inverse @ MEAN
        c1, c2 = float(schedule.posterior_mean_coef1[t]), float(schedule.posterior_mean_coef2[t])
        M, v = c1 * A + c2 * eye, c1 * b
        var = float(schedule.betas[0]) if t == 0 else float(schedule.posterior_variance[t])
        mu, cov = M @ mu + v, M @ cov @ M.T + var * eye
    return mu, cov


def test_continuous_schedule_meets_the_discrete_one(schedule):
    u = torch.arange(T, dtype=torch.float64)
    abar, beta = continuous_alphas_cumprod(schedule, u)
    assert torch.allclose(abar, schedule.alphas_cumprod, rtol=1e-14)
    mid = continuous_alphas_cumprod(schedule, torch.tensor([3.5], dtype=torch.float64))[0]
    assert float(mid) == pytest.approx(math.sqrt(schedule.alphas_cumprod[3] * schedule.alphas_cumprod[4]), rel=1e-12)
    assert torch.allclose(beta[:-1], -torch.log(schedule.alphas[1:]), rtol=1e-12)  # constant on [t, t+1]
    assert float(beta[-1]) == pytest.approx(-math.log(schedule.alphas[-1]), rel=1e-12)  # T-1 ends the last one
    at_end, beta_end = continuous_alphas_cumprod(schedule, torch.tensor([4.0], dtype=torch.float64), segment=3)
    assert float(at_end) == pytest.approx(float(schedule.alphas_cumprod[4]), rel=1e-14)  # segment [3, 4] at 4
    assert float(beta_end) == pytest.approx(-math.log(schedule.alphas[4]), rel=1e-12)


def test_the_ode_likelihood_of_the_optimal_predictor_is_the_gaussian_density(schedule, data):
    """With the exact score and the true marginal at T-1 as prior, the flow is exact: -log p_0(x) is
    -log N(x; sqrt(abar_0) m, abar_0 S + (1 - abar_0) I) at every point."""
    x = data[:100]
    model = GaussianOptimal(schedule)
    eps = network_noise_model(model, NoiseAdaptation())
    mean_T, cov_T = marginal(float(schedule.alphas_cumprod[-1]))
    exact = ode_log_likelihood(eps, schedule, x, tolerance=1e-8,
                               prior=lambda z: gaussian_log_density(z.double(), mean_T, cov_T))
    expected = -gaussian_log_density(x, *marginal(float(schedule.alphas_cumprod[0])))
    assert np.allclose(exact.nll, expected.numpy(), atol=1e-5)

    # with the sampler's prior N(0, I) the difference is exactly the prior mismatch at the end point
    default = ode_log_likelihood(eps, schedule, x, tolerance=1e-8)
    end = torch.from_numpy(default.terms["end"])
    mismatch = gaussian_log_density(end, mean_T, cov_T) - gaussian_log_density(end, torch.zeros(2, dtype=torch.float64),
                                                                              torch.eye(2, dtype=torch.float64))
    assert np.allclose(default.nll - exact.nll, mismatch.numpy(), atol=1e-5)
    assert np.allclose(default.terms["end"], exact.terms["end"], atol=1e-6)  # the same flow


def test_the_bound_of_the_optimal_predictor_is_above_the_exact_likelihoods(schedule, data):
    model = GaussianOptimal(schedule)
    bound = variational_bound(model, NoiseAdaptation(), schedule, data, torch.Generator().manual_seed(1))
    assert bound.terms["steps"].shape == (len(data), T) and np.isfinite(bound.nll).all()
    assert np.allclose(bound.nll, bound.terms["prior"] + bound.terms["steps"].sum(1))
    # the prior term is the closed-form KL(N(sqrt(abar) x, 1 - abar) || N(0, 1)), summed over 2 dimensions
    abar = float(schedule.alphas_cumprod[-1])
    prior = 0.5 * (abar * (data**2).sum(1) + 2 * (1 - abar) - 2 - 2 * math.log(1 - abar))
    assert np.allclose(bound.terms["prior"], prior.numpy(), rtol=1e-12)
    # the sampler's marginal is Gaussian here: the bound is above its -log p(x) (by the posterior gap),
    # and that is above the data's own -log density on average (Gibbs' inequality)
    mu, cov = reverse_chain_marginal(schedule)
    sampler_nll = -gaussian_log_density(data, mu, cov).numpy()
    gap = bound.nll - sampler_nll
    assert gap.mean() > 3 * gap.std(ddof=1) / math.sqrt(len(gap))  # significantly above, on average
    data_nll = -gaussian_log_density(data, MEAN, COV).numpy()
    assert sampler_nll.mean() > data_nll.mean()
    ode = ode_log_likelihood(network_noise_model(model, NoiseAdaptation()), schedule, data[:100], tolerance=1e-7)
    assert bound.nll[:100].mean() > ode.nll.mean()


class PiecewiseDrift(nn.Module):
    """A noise predictor whose ODE field is piecewise constant: eps = sigma(u) (z - c(z)) gives
    f = -1/2 beta(u) c(z), with c = -(V_LEFT, 0) left of x = 0 and -(V_RIGHT, 0) right of it. The
    field has no divergence and jumps at x = 0, so every density change is the edge's jump."""

    def __init__(self, schedule: NoiseSchedule, left: float = 4.0, right: float = 1.5):
        super().__init__()
        self.schedule, self.left, self.right = schedule, left, right

    def forward(self, z: Tensor, u: Tensor, step: Tensor) -> Tensor:
        sigma = (1 - continuous_alphas_cumprod(self.schedule, u, int(step[0]))[0]).sqrt()[:, None]
        speed = torch.where(z[:, 0] < 0, self.left, self.right)
        drift = torch.stack([-speed, torch.zeros_like(speed)], 1)
        return sigma * (z - drift)


V_LEFT, V_RIGHT = 4.0, 1.5


def test_a_jumping_field_adds_the_flux_ratio_at_each_crossing(schedule):
    """Closed form: each point moves right by s = V * S, S = integral of beta / 2 = log(abar_0 / abar_T) / 2,
    slowing from V_LEFT to V_RIGHT at x = 0. The flow map stretches x by V_RIGHT / V_LEFT for the
    points that cross, so log p_0(x) = log N(end) + log(V_RIGHT / V_LEFT) there, and log N(end) elsewhere."""
    S = 0.5 * math.log(float(schedule.alphas_cumprod[0] / schedule.alphas_cumprod[-1]))
    x0 = torch.linspace(-1.5 * V_LEFT * S, 0.5, 41, dtype=torch.float64)
    x = torch.stack([x0, torch.linspace(-1, 1, 41, dtype=torch.float64)], 1)
    crosses = (x0 < 0) & (x0 + V_LEFT * S > 0)
    end_x = torch.where(x0 >= 0, x0 + V_RIGHT * S,
                        torch.where(crosses, V_RIGHT * (S + x0 / V_LEFT), x0 + V_LEFT * S))
    end = torch.stack([end_x, x[:, 1]], 1)
    standard = gaussian_log_density(end, torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    expected = -(standard + crosses * math.log(V_RIGHT / V_LEFT))
    edges = (torch.zeros(1, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    result = ode_log_likelihood(PiecewiseDrift(schedule), schedule, x, tolerance=1e-9, edges=edges)
    assert 5 < crosses.sum() < 35  # both kinds of point are tested
    assert np.allclose(result.terms["end"], end.numpy(), atol=1e-6)
    assert np.allclose(result.nll, expected.numpy(), atol=1e-6)
    assert np.array_equal(result.terms["crossings"], crosses.numpy()) and not result.terms["nontransversal"].any()
    # without the edges the change of variables misses exactly the jump
    blind = ode_log_likelihood(PiecewiseDrift(schedule), schedule, x, tolerance=1e-9)
    assert np.allclose(blind.nll - result.nll, (crosses * math.log(V_RIGHT / V_LEFT)).numpy(), atol=1e-6)


def test_a_flow_that_slides_along_an_edge_is_counted_as_not_transversal(schedule):
    """Both sides drift toward x = 0: points that reach it stay on it (the flow is not invertible,
    a strip of data maps onto the line). Each such point's crossings are counted as not transversal."""
    S = 0.5 * math.log(float(schedule.alphas_cumprod[0] / schedule.alphas_cumprod[-1]))
    x0 = torch.tensor([-3 * S, -0.5 * S, 0.5 * S, 3 * S], dtype=torch.float64)  # far, reaches, reaches, far
    x = torch.stack([x0, torch.zeros(4, dtype=torch.float64)], 1)
    edges = (torch.zeros(1, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    result = ode_log_likelihood(PiecewiseDrift(schedule, 1.0, -1.0), schedule, x, tolerance=1e-7, edges=edges)
    assert np.array_equal(result.terms["nontransversal"] > 0, [False, True, True, False])
    assert np.allclose(result.terms["end"][[1, 2], 0], 0, atol=1e-5)  # stuck on the edge


def test_a_grid_models_ode_likelihood_is_its_flow_maps_change_of_variables():
    """On a real grid-conditioned network (the multi-scale variant's nested 5x5 and 20x20 grids,
    float64, grid values randomised so g jumps at each edge), -log p_0 + log N(end) must be log |det|
    of the flow map's Jacobian, measured here by central differences of the end points. With the
    edges' jumps it is; with the divergence integral alone it is not."""
    from gridnoise.components import build_components
    from gridnoise.config import RunConfig, adaptation_for

    cfg = RunConfig(variant="multiscale", adaptation=adaptation_for("multiscale"))
    cfg.diffusion.num_timesteps = 10
    _, adaptation, model = build_components(cfg, torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for grid in adaptation.grids().values():
            grid.copy_(torch.exp(0.7 * torch.randn(grid.shape, generator=generator)))
    model, adaptation = model.double().eval(), adaptation.double()
    edges = adaptation.field_edges()
    assert [len(e) for e in edges] == [19, 19]  # the coarse grid's 4 edges per axis are among the fine grid's 19
    schedule = NoiseSchedule(10, beta_start=0.01, beta_end=0.3, dtype=torch.float64)
    h = 1e-2
    x = torch.rand((3, 2), generator=generator, dtype=torch.float64) * 1.6 - 0.8
    shifts = torch.tensor([[0, 0], [h, 0], [-h, 0], [0, h], [0, -h]], dtype=torch.float64)
    stencil = (x[:, None] + shifts).reshape(-1, 2)
    result = ode_log_likelihood(network_noise_model(model, adaptation), schedule, stencil, tolerance=1e-6, edges=edges)
    end = torch.from_numpy(result.terms["end"]).reshape(3, 5, 2)
    jacobian = torch.stack([(end[:, 1] - end[:, 2]) / (2 * h), (end[:, 3] - end[:, 4]) / (2 * h)], 2)
    log_det = torch.linalg.det(jacobian).abs().log().numpy()
    centre = slice(0, None, 5)
    assert (result.terms["crossings"][centre] >= 3).all() and not result.terms["nontransversal"].any()
    with_jumps = -(result.terms["divergence"] + result.terms["jumps"])[centre]
    assert np.abs(with_jumps - log_det).max() < 0.06
    assert np.abs(-result.terms["divergence"][centre] - log_det).min() > 0.2  # without them: off by 0.25-0.35


def test_bits_per_dim_converts_units():
    assert bits_per_dim(2 * math.log(2)) == pytest.approx(1.0)
    assert bits_per_dim(0.0, scale=2.0) == pytest.approx(1.0)  # data twice as spread: one more bit per dim


class OverflowsLate(nn.Module):
    """The optimal predictor until u = 5.5, then infinite noise (what a float32 network whose
    activations overflow predicts): a real field the solver cannot integrate past that time."""

    def __init__(self, schedule: NoiseSchedule):
        super().__init__()
        self.optimal = GaussianOptimal(schedule)

    def forward(self, z: Tensor, timesteps: Tensor, noise_scale: Tensor | None = None) -> Tensor:
        # a factor that does not depend on z, so the divergence stays finite where the factor is 1
        return self.optimal(z, timesteps) * torch.where(timesteps > 5.5, math.inf, 1.0)[:, None]


def test_a_field_that_stops_being_finite_is_a_metric_error_not_a_solver_crash(schedule, data):
    # Without the check, RK45 shrinks its step to NaN and the next evaluation indexes the schedule at
    # a NaN time: an IndexError from deep inside scipy.
    eps = network_noise_model(OverflowsLate(schedule), NoiseAdaptation())
    with pytest.raises(MetricError, match="the probability-flow field is not finite at u = ") as info:
        ode_log_likelihood(eps, schedule, data[:20])
    text = str(info.value)
    assert 5.5 < float(text.split("at u = ")[1].split()[0]) <= 6 and "\n" not in text  # where it stopped
