"""The continuous-time process (VDM) against closed forms, in float64: the schedule's ends,
monotonicity and derivative, and, for Gaussian data with its optimal denoiser, the bound's terms,
VDM's invariance to the schedule between fixed ends, and the bound's limit, the true -log p."""

import math

import numpy as np
import pytest
import torch

from gridnoise.vdm import (
    LogSNRSchedule,
    alpha_sigma,
    continuous_bound,
    gaussian_diffusion_term,
    per_coordinate,
    reverse_step,
    sample,
)

SCALE, DIMS, POINTS = 1.7, 2, 400_000


def optimal_noise(scale: float, schedule: LogSNRSchedule):
    """E[eps | z_t] for data N(0, scale^2 I): z_t = alpha x + sigma eps, so Cov(eps, z_t) = sigma I and
    Var z_t = alpha^2 scale^2 + sigma^2."""
    def noise_model(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = alpha_sigma(schedule(t))
        return (sigma / (alpha ** 2 * scale ** 2 + sigma ** 2))[:, None] * z
    return noise_model


def schedules(g0: float, g1: float) -> dict[str, LogSNRSchedule]:
    """A linear schedule and a learned one that is far from linear: its monotone network set to a
    steep sigmoid step at t = 0.3 (most of gamma's rise happens there)."""
    learned = LogSNRSchedule(g0, g1, learned=True, hidden=1).double()
    with torch.no_grad():
        learned.l1.weight.fill_(1.0), learned.l1.bias.fill_(0.0)
        learned.l2.weight.fill_(30.0), learned.l2.bias.fill_(-9.0)
        learned.l3.weight.fill_(20.0)
    return {"fixed": LogSNRSchedule(g0, g1).double(), "learned": learned}


def test_the_learned_test_schedule_is_far_from_linear():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    with torch.no_grad():
        assert (schedules(-6.0, 6.0)["learned"].shape(t) - t).abs().max() > 0.4


@pytest.mark.parametrize("kind", ["fixed", "learned"])
def test_the_schedule_runs_from_its_ends_upwards_with_its_autograd_slope(kind):
    schedule = schedules(-6.0, 4.0)[kind]
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    gamma, slope = schedule.with_derivative(t)
    assert gamma[0].item() == pytest.approx(-6.0, abs=1e-12) and gamma[-1].item() == pytest.approx(4.0, abs=1e-12)
    assert (gamma.diff() > 0).all() and (slope > 0).all()
    h = 1e-6
    inner = t[1:-1]
    numeric = (schedule(inner + h) - schedule(inner - h)) / (2 * h)
    assert torch.allclose(slope[1:-1], numeric, rtol=1e-6, atol=1e-8)
    if kind == "fixed":
        assert torch.allclose(slope, torch.full_like(slope, 10.0))
    alpha, sigma = alpha_sigma(gamma)
    assert torch.allclose(alpha ** 2 + sigma ** 2, torch.ones_like(alpha))  # variance preserving
    assert torch.allclose(torch.log(alpha ** 2 / sigma ** 2), -gamma)  # gamma = -log SNR


def test_learned_ends_train_and_fixed_ones_do_not():
    learned = LogSNRSchedule(-5.0, 5.0, learned=True, learn_ends=True, hidden=8)
    fixed = LogSNRSchedule(-5.0, 5.0, learned=True, hidden=8)
    x = torch.randn(64, 2)
    for schedule in (learned, fixed):
        continuous_bound(schedule, lambda z, t: torch.zeros_like(z), x)["nll"].mean().backward()
    assert learned.ends.grad is not None and learned.ends.grad.abs().sum() > 0
    assert fixed.ends.grad is None and fixed.l2.weight.grad is not None  # its shape still trains


@pytest.mark.parametrize("kind", ["fixed", "learned"])
def test_with_the_optimal_denoiser_the_bound_depends_only_on_the_ends(kind):
    """VDM eq. 19: for Gaussian data and its optimal denoiser every schedule with ends (-6, 6) has the
    same diffusion term, d/2 [log(1 + s^2 e^{-gamma_0}) - log(1 + s^2 e^{-gamma_1})]; the Monte Carlo
    bound matches it, and its prior and reconstruction terms their closed forms, within 4 standard errors."""
    g0, g1 = -6.0, 6.0
    schedule = schedules(g0, g1)[kind]
    x = SCALE * torch.randn(POINTS, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    terms = continuous_bound(schedule, optimal_noise(SCALE, schedule), x, torch.Generator().manual_seed(2))
    a1, s1 = math.sqrt(1 / (1 + math.exp(g1))), math.sqrt(1 / (1 + math.exp(-g1)))
    a0, s0 = math.sqrt(1 / (1 + math.exp(g0))), math.sqrt(1 / (1 + math.exp(-g0)))
    closed = {"diffusion": gaussian_diffusion_term(g0, g1, SCALE, DIMS),
              "prior": 0.5 * DIMS * (a1 ** 2 * SCALE ** 2 + s1 ** 2 - 1 - math.log(s1 ** 2)),
              "reconstruction": 0.5 * DIMS * (math.log(2 * math.pi * s0 ** 2 / a0 ** 2) + 1)}
    for name, value in closed.items():
        estimate = terms[name].detach()
        stderr = estimate.std().item() / math.sqrt(POINTS)
        assert abs(estimate.mean().item() - value) < 4 * stderr + 1e-12, (name, estimate.mean().item(), value)


def test_the_bound_closes_on_the_true_likelihood_as_the_ends_widen():
    """With the optimal denoiser, prior + diffusion + reconstruction in closed form is above the data's
    entropy d/2 log(2 pi e s^2) (the expected -log p) and reaches it as gamma_0 -> -inf, gamma_1 -> inf."""
    entropy = 0.5 * DIMS * math.log(2 * math.pi * math.e * SCALE ** 2)

    def bound(g0: float, g1: float) -> float:
        a1, s1 = 1 / (1 + math.exp(g1)), 1 / (1 + math.exp(-g1))  # squares
        prior = 0.5 * DIMS * (a1 * SCALE ** 2 + s1 - 1 - math.log(s1))
        recon = 0.5 * DIMS * (math.log(2 * math.pi) + g0 + 1)  # sigma_0^2 / alpha_0^2 = e^{gamma_0}
        return prior + gaussian_diffusion_term(g0, g1, SCALE, DIMS) + recon

    gaps = [bound(-w, w) - entropy for w in (2.0, 4.0, 8.0, 16.0)]
    assert all(g > 0 for g in gaps) and all(a > b for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-5


def chain_variance(schedule: LogSNRSchedule, steps: int) -> float:
    """Var of the sampler's output, per coordinate, for Gaussian data and its optimal denoiser: each
    reverse step is linear, z_s = a z_t + b noise, so Var z_s = a^2 Var z_t + b^2 from Var z_1 = 1."""
    eps = optimal_noise(SCALE, schedule)
    t = torch.arange(steps, 0, -1, dtype=torch.float64) / steps
    one = torch.ones(steps, 1, dtype=torch.float64)
    with torch.no_grad():
        a = reverse_step(schedule, eps, one, t, t - 1 / steps, torch.zeros_like(one)).squeeze(1)  # slope in z_t
        b = reverse_step(schedule, eps, 0 * one, t, t - 1 / steps, one).squeeze(1)  # and in the noise
        alpha0, _ = alpha_sigma(schedule.ends[0])
    var = 1.0
    for ai, bi in zip(a.tolist(), b.tolist()):
        var = ai * ai * var + bi * bi
    return var / alpha0.item() ** 2


@pytest.mark.parametrize("steps", [1, 10, 200])
def test_ancestral_sampling_follows_the_closed_form_chain(steps):
    schedule = schedules(-6.0, 6.0)["learned"]
    n = 100_000
    x = sample(schedule, optimal_noise(SCALE, schedule), n, steps, torch.Generator().manual_seed(3),
               dtype=torch.float64)
    expected = chain_variance(schedule, steps)
    stderr = expected * math.sqrt(2 / (n - 1))  # of a Gaussian sample's variance
    assert (x.var(dim=0) - expected).abs().max() < 4 * stderr, (x.var(dim=0), expected)


@pytest.mark.parametrize("kind", ["fixed", "learned"])
def test_more_steps_reach_the_models_marginal_at_rate_one_over_steps(kind):
    """The chain's variance tends to Var(z_0 / alpha_0) = s^2 + e^{gamma_0} under q, its error
    shrinking tenfold with ten times the steps (first order in 1 / steps)."""
    schedule = schedules(-6.0, 6.0)[kind]
    marginal = SCALE ** 2 + math.exp(-6.0)
    gaps = [marginal - chain_variance(schedule, steps) for steps in (1000, 10_000)]
    assert 0 < gaps[1] < gaps[0] and gaps[0] / gaps[1] == pytest.approx(10, rel=0.15)
    assert gaps[1] / marginal < 5e-3


@pytest.mark.parametrize("kind", ["fixed", "learned"])
def test_the_ode_of_the_optimal_denoiser_gives_the_exact_marginal_density(kind):
    """The probability-flow ODE (likelihood.ode_log_likelihood on the continuous clock) of Gaussian
    data's optimal denoiser maps q(z_1) onto q(z_0) = N(0, (alpha_0^2 s^2 + sigma_0^2) I): with q(z_1) as
    its prior, -log p_0 at held-out points is that Gaussian's, for a linear and a non-linear schedule."""
    from gridnoise.likelihood import ode_log_likelihood

    schedule = schedules(-6.0, 6.0)[kind]
    eps = optimal_noise(SCALE, schedule)
    x = SCALE * torch.randn(50, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(4))

    def variance(gamma: float) -> float:  # Var z_t per coordinate under q
        return SCALE ** 2 / (1 + math.exp(gamma)) + 1 / (1 + math.exp(-gamma))

    def log_normal(z: torch.Tensor, var: float) -> torch.Tensor:
        return -0.5 * (z ** 2).sum(1) / var - 0.5 * DIMS * math.log(2 * math.pi * var)

    found = ode_log_likelihood(lambda z, u, step: eps(z, u), schedule, x, tolerance=1e-9,
                               prior=lambda z: log_normal(z.double(), variance(6.0)))
    expected = -log_normal(x, variance(-6.0))
    assert np.allclose(found.nll, expected.numpy(), atol=1e-5)


class DiscreteOptimal(torch.nn.Module):
    """The optimal noise predictor of data N(0, SCALE^2 I) for a discrete schedule's timesteps."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, z, timesteps, noise_scale=None):
        abar = self.schedule.alphas_cumprod[timesteps].double()
        return ((1 - abar).sqrt() / (abar * SCALE ** 2 + 1 - abar))[:, None] * z.double()


def ddpm_steps(g0: float, g1: float, steps: int) -> float:
    """The expected sum of a DDPM's bound steps k >= 1 on the log-SNR grid of `discrete_betas`, for
    the optimal predictor: each is 1/2 (SNR_{k-1} - SNR_k) E||x - x0_hat(z_k)||^2 (VDM eq. 13) with
    E||x - E[x | z_k]||^2 = d s^2 / (1 + SNR_k s^2)."""
    snr = torch.exp(-torch.linspace(g0, g1, steps, dtype=torch.float64))
    return float((0.5 * DIMS * (snr[:-1] - snr[1:]) * SCALE ** 2 / (1 + snr[1:] * SCALE ** 2)).sum())


def test_a_ddpm_on_the_same_log_snr_tends_to_the_continuous_bound():
    """The discrete bound (likelihood.variational_bound) of a DDPM on the schedule's log-SNR at T
    steps: its steps' mean matches their closed form (4 standard errors), its prior is the continuous
    one, and the steps' sum falls to L_diffusion at first order in 1/T."""
    from gridnoise.adaptation import NoiseAdaptation
    from gridnoise.diffusion import NoiseSchedule
    from gridnoise.likelihood import variational_bound
    from gridnoise.vdm import discrete_betas, prior_term

    g0, g1, steps = -6.0, 6.0, 50
    vdm = LogSNRSchedule(g0, g1).double()
    ddpm = NoiseSchedule(steps, trained_betas=discrete_betas(vdm, steps), dtype=torch.float64)
    assert torch.allclose(ddpm.alphas_cumprod[[0, -1]].log() - (1 - ddpm.alphas_cumprod[[0, -1]]).log(),
                          -torch.tensor([g0, g1], dtype=torch.float64))
    x = SCALE * torch.randn(20_000, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    bound = variational_bound(DiscreteOptimal(ddpm), NoiseAdaptation(), ddpm, x, torch.Generator().manual_seed(6))
    found = bound.terms["steps"][:, 1:].sum(1)
    assert abs(found.mean() - ddpm_steps(g0, g1, steps)) < 4 * found.std() / math.sqrt(len(found))
    assert np.allclose(bound.terms["prior"], prior_term(vdm, x).numpy(), rtol=1e-12)
    limit = gaussian_diffusion_term(g0, g1, SCALE, DIMS)
    gaps = [ddpm_steps(g0, g1, n) - limit for n in (1000, 10_000)]  # more steps, a lower bound (VDM eq. 16)
    assert 0 < gaps[1] < gaps[0] and gaps[0] / gaps[1] == pytest.approx(10, rel=0.05)


def test_a_clipped_step_is_the_step_of_the_clipped_prediction():
    """Clipping the predicted x rewrites the step's mean in x: it is the unclipped step of a denoiser
    whose eps gives the clipped x, and where the clip does not bind it is the plain step."""

    schedule = schedules(-6.0, 6.0)["learned"]
    gen = torch.Generator().manual_seed(30)
    z, noise = torch.randn(500, DIMS, generator=gen, dtype=torch.float64), torch.randn(500, DIMS, generator=gen,
                                                                                       dtype=torch.float64)
    t, s = torch.full((500,), 0.6, dtype=torch.float64), torch.full((500,), 0.5, dtype=torch.float64)
    eps = optimal_noise(SCALE, schedule)
    plain = reverse_step(schedule, eps, z, t, s, noise)
    assert torch.allclose(reverse_step(schedule, eps, z, t, s, noise, clip_sample=1e6), plain, rtol=1e-12, atol=1e-12)

    def clipped_eps(z, t):  # the eps whose predicted x is the clipped one
        alpha, sigma = alpha_sigma(per_coordinate(schedule(t), z))
        x = ((z - sigma * eps(z, t)) / alpha).clamp(-0.1, 0.1)
        return (z - alpha * x) / sigma
    clipped = reverse_step(schedule, eps, z, t, s, noise, clip_sample=0.1)
    assert torch.allclose(clipped, reverse_step(schedule, clipped_eps, z, t, s, noise), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(clipped, plain)
