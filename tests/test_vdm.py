"""The continuous-time process (VDM) against closed forms, in float64: the schedule's ends,
monotonicity and derivative, and, for Gaussian data with its optimal denoiser, the bound's terms,
VDM's invariance to the schedule between fixed ends, and the bound's limit, the true -log p."""

import math

import numpy as np
import pytest
import torch

from gridnoise.vdm import (
    LogSNRSchedule,
    PolynomialSchedule,
    alpha_sigma,
    categorical_latent_bound,
    continuous_bound,
    gaussian_diffusion_term,
    gaussian_latent_bound,
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


SCALES = torch.tensor([0.5, 3.0], dtype=torch.float64)  # independent coordinates of different scales


def coordinate_optimal(schedule):
    """E[eps | z_t] for data N(0, diag(SCALES^2)) under a per-coordinate schedule: coordinate by
    coordinate, sigma_i z_i / (alpha_i^2 s_i^2 + sigma_i^2)."""
    def noise_model(z, t):
        alpha, sigma = alpha_sigma(per_coordinate(schedule(t), z))
        return sigma / (alpha ** 2 * SCALES ** 2 + sigma ** 2) * z
    return noise_model


def polynomial(n: int, seed: int = 0):
    """A PolynomialSchedule conditioned on random coefficients, different for every point and coordinate."""
    coefficients = 3 * torch.randn(n, DIMS, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return PolynomialSchedule(-6.0, 6.0).double().conditioned(coefficients)


def test_the_polynomial_schedule_rises_between_its_ends_with_its_closed_form_slope():
    schedule = polynomial(7)
    t = torch.linspace(0, 1, 7, dtype=torch.float64).requires_grad_(True)
    gamma, slope = schedule.with_derivative(t)
    zeros, ones = torch.zeros(7, dtype=torch.float64), torch.ones(7, dtype=torch.float64)
    assert torch.allclose(schedule(zeros), torch.full((7, DIMS), -6.0, dtype=torch.float64))
    assert torch.allclose(schedule(ones), torch.full((7, DIMS), 6.0, dtype=torch.float64))
    for i in range(DIMS):  # each row depends on its own time only
        (autograd,) = torch.autograd.grad(gamma[:, i].sum(), t, retain_graph=True)
        assert torch.allclose(slope[:, i], autograd)
    grid = torch.linspace(0, 1, 201, dtype=torch.float64)
    curves = torch.stack([polynomial(1, seed)(torch.full((1,), float(u), dtype=torch.float64))[0]
                          for seed in range(3) for u in grid]).reshape(3, 201, DIMS)
    assert (curves.diff(dim=1) > 0).all()


def test_a_per_coordinate_schedule_equal_in_every_coordinate_is_the_scalar_one():
    """The bound and the sampler broadcast a scalar schedule over the coordinates exactly as a
    per-coordinate schedule with the same curve in each (MuLAN with its latent ignored is VDM)."""
    n = 1000
    coefficients = torch.tensor([1.0, -2.0, 1.5], dtype=torch.float64).expand(n, DIMS, 3)
    wide = PolynomialSchedule(-6.0, 6.0).double().conditioned(coefficients)

    class Scalar:  # the same curve, one value per point
        ends = wide.ends

        def __call__(self, t):
            return wide(t)[:, 0]

        def with_derivative(self, t):
            gamma, slope = wide.with_derivative(t)
            return gamma[:, 0], slope[:, 0]

    x = SCALE * torch.randn(n, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    eps = lambda z, t: 0.3 * z  # noqa: E731  (any predictor will do)
    one, other = (continuous_bound(s, eps, x, torch.Generator().manual_seed(8)) for s in (wide, Scalar()))
    for name in one:
        assert torch.allclose(one[name], other[name], rtol=1e-12), name
    draws = [sample(s, eps, n, 5, torch.Generator().manual_seed(9), dtype=torch.float64) for s in (wide, Scalar())]
    assert torch.equal(draws[0], draws[1])


def test_for_independent_coordinates_each_has_its_own_invariant_diffusion_term():
    """With independent coordinates and the optimal denoiser, a per-coordinate schedule whose shape
    differs from point to point and coordinate to coordinate still gives sum_i of each coordinate's
    closed form, which depends on the shared ends only: a multivariate schedule cannot lower the
    continuous-time bound here; where it can is with dependent coordinates or other ends."""
    x = SCALES * torch.randn(POINTS, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    # the first coordinate's gamma linear in t, the second's rising late (p(t) = 5 t^5), and random shapes
    shapes = torch.tensor([[0.0, 0.0, 1.0], [5.0, 0.0, 0.0]], dtype=torch.float64).expand(POINTS, DIMS, 3)
    for schedule in (PolynomialSchedule(-6.0, 6.0).double().conditioned(shapes), polynomial(POINTS, seed=11)):
        check_coordinate_invariance(schedule, x)


def check_coordinate_invariance(schedule, x):
    terms = continuous_bound(schedule, coordinate_optimal(schedule), x, torch.Generator().manual_seed(12))
    expected = sum(gaussian_diffusion_term(-6.0, 6.0, float(s), 1) for s in SCALES)
    found = terms["diffusion"]
    assert abs(found.mean().item() - expected) < 4 * found.std().item() / math.sqrt(POINTS)


def test_the_ode_of_a_per_coordinate_schedule_gives_the_exact_marginal_density():
    """Independent Gaussian coordinates, a polynomial schedule with its own shape per point and
    coordinate, the optimal denoiser: the ODE (per-coordinate rates) maps q(z_1) onto q(z_0) =
    N(0, diag(alpha_0^2 s_i^2 + sigma_0^2)) exactly."""
    from gridnoise.likelihood import ode_log_likelihood

    n = 40
    schedule = polynomial(n, seed=13)
    eps = coordinate_optimal(schedule)
    x = SCALES * torch.randn(n, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(14))

    def log_normal(z: torch.Tensor, gamma: float) -> torch.Tensor:  # under q at log-SNR -gamma
        var = SCALES ** 2 / (1 + math.exp(gamma)) + 1 / (1 + math.exp(-gamma))
        return (-0.5 * z ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(1)

    found = ode_log_likelihood(lambda z, u, step: eps(z, u), schedule, x, tolerance=1e-9,
                               prior=lambda z: log_normal(z.double(), 6.0))
    assert np.allclose(found.nll, -log_normal(x, -6.0).numpy(), atol=1e-5)


def vdm_bound_ignoring(schedule, seed: int):
    """L(x | z) of a model whose schedule and denoiser ignore z: VDM's bound, with the same draws each call."""
    eps = optimal_noise(SCALE, schedule)
    return lambda x, z: continuous_bound(schedule, eps, x, torch.Generator().manual_seed(seed))


def test_with_the_latent_ignored_and_its_encoder_the_prior_the_bound_is_vdms():
    """MuLAN reduces to VDM exactly when nothing uses z and q(z | x) = p(z): for a Gaussian latent
    (KL 0) and a categorical one (every category's bound the same, q = p)."""
    schedule = schedules(-6.0, 6.0)["learned"]
    x = SCALE * torch.randn(500, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(15))
    vdm = vdm_bound_ignoring(schedule, 16)(x, None)
    zeros = torch.zeros(500, 3, dtype=torch.float64)
    gaussian = gaussian_latent_bound(x, zeros, zeros, vdm_bound_ignoring(schedule, 16),
                                     torch.Generator().manual_seed(17))
    categorical = categorical_latent_bound(x, zeros + 0.7, torch.zeros(3, dtype=torch.float64),
                                           vdm_bound_ignoring(schedule, 16))
    for found in (gaussian, categorical):
        assert torch.equal(found["latent_kl"], torch.zeros(500, dtype=torch.float64))
        for name in vdm:
            assert torch.allclose(found[name], vdm[name], rtol=1e-12, atol=1e-12), name


def test_the_latent_terms_are_their_closed_forms():
    """The Gaussian latent's KL is torch's KL(N(mean, std) || N(0, 1)) summed over z; the categorical
    bound is sum_c q(c | x) L(x | c) + KL(q || p) for bounds that differ by category."""
    mean = torch.tensor([[0.3, -1.2], [2.0, 0.0]], dtype=torch.float64)
    log_std = torch.tensor([[-0.5, 0.2], [0.0, -1.0]], dtype=torch.float64)
    x = torch.zeros(2, DIMS, dtype=torch.float64)
    found = gaussian_latent_bound(x, mean, log_std, lambda x, z: {"nll": torch.zeros(len(x), dtype=x.dtype)})
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(mean, log_std.exp()), normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(found["latent_kl"], expected) and torch.allclose(found["nll"], expected)

    logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]], dtype=torch.float64)
    prior = torch.tensor([0.2, 0.0, -0.3], dtype=torch.float64)
    per_category = torch.tensor([1.0, 5.0, 2.0], dtype=torch.float64)
    found = categorical_latent_bound(x, logits, prior, lambda x, c: {"nll": per_category[c]})
    q, p = logits.softmax(-1), prior.softmax(-1)
    kl = (q * (q.log() - p.log())).sum(-1)
    assert torch.allclose(found["latent_kl"], kl) and torch.allclose(found["nll"], (q * per_category).sum(-1) + kl)
