"""MuLAN's pieces against closed forms, in float64: the polynomial per-coordinate schedule, the
bound, sampler and ODE acting coordinate by coordinate, the per-coordinate invariance for
independent coordinates, and the auxiliary-latent bound reducing to VDM's."""

import math

import numpy as np
import pytest
import torch

from gridnoise.mulan import ConditionedSchedule, PolynomialSchedule, categorical_latent_bound, gaussian_latent_bound
from gridnoise.vdm import alpha_sigma, continuous_bound, gaussian_diffusion_term, per_coordinate, sample
from test_vdm import DIMS, POINTS, SCALE, optimal_noise, schedules

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
    continuous-time bound here (nor with dependent coordinates, next test); only other ends can."""
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
    """L(x | z) of a model whose schedule and denoiser ignore z: VDM's bound, with the same draws each
    call (for categories `(K B,)`, every point's under each of them, `continuous_bound`'s `copies`)."""
    eps = optimal_noise(SCALE, schedule)
    return lambda x, z: continuous_bound(schedule, eps, x, torch.Generator().manual_seed(seed),
                                         copies=1 if z is None else len(z) // len(x))


def test_with_the_latent_ignored_and_its_encoder_the_prior_the_bound_is_vdms():
    """MuLAN reduces to VDM exactly when nothing uses z and q(z | x) = p(z): for a Gaussian latent
    (KL 0) and a categorical one (every category's bound the same, q = p). An encoder that puts every
    point in one category gives that category's estimate, still VDM's draw for draw: each point's t
    and noise are shared by its categories, so every category's times cover [0, 1] as VDM's do.
    (Drawn over all K B rows at once, category k's times would lie in a 1/K slice of [0, 1] per call:
    a noisy estimate that picked the adaptive study's first tuned settings of mulan_cells by its luck.)"""
    schedule = schedules(-6.0, 6.0)["learned"]
    x = SCALE * torch.randn(500, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(15))
    vdm = vdm_bound_ignoring(schedule, 16)(x, None)
    zeros = torch.zeros(500, 3, dtype=torch.float64)
    gaussian = gaussian_latent_bound(x, zeros, zeros, vdm_bound_ignoring(schedule, 16),
                                     torch.Generator().manual_seed(17))
    categorical = categorical_latent_bound(x, zeros + 0.7, zeros[0], vdm_bound_ignoring(schedule, 16))
    for found in (gaussian, categorical):
        assert torch.equal(found["latent_kl"], torch.zeros(500, dtype=torch.float64))
        for name in vdm:
            assert torch.allclose(found[name], vdm[name], rtol=1e-12, atol=1e-12), name
    for category in (0, 2):
        logits = torch.full((500, 3), -60.0, dtype=torch.float64)
        logits[:, category] = 60.0
        found = categorical_latent_bound(x, logits, zeros[0], vdm_bound_ignoring(schedule, 16))
        for name in vdm:
            assert torch.allclose(found[name] - (found["latent_kl"] if name == "nll" else 0), vdm[name],
                                  rtol=1e-12, atol=1e-12), (category, name)


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


ROTATION = torch.tensor([[0.8, -0.6], [0.6, 0.8]], dtype=torch.float64)
COVARIANCE = ROTATION @ torch.diag(SCALES ** 2) @ ROTATION.T  # dependent coordinates


def joint_optimal(schedule, covariance):
    """E[eps | z_t] for data N(0, covariance) under a per-coordinate schedule: z = a x + s eps with
    a = diag(alpha), s = diag(sigma), so E[eps | z] = s (a C a + s^2)^-1 z."""
    def noise_model(z, t):
        alpha, sigma = alpha_sigma(per_coordinate(schedule(t), z))
        cov_z = alpha[:, :, None] * covariance * alpha[:, None, :] + torch.diag_embed(sigma ** 2)
        return sigma * torch.linalg.solve(cov_z, z)
    return noise_model


def test_with_dependent_coordinates_a_multivariate_schedule_still_cannot_lower_the_bound():
    """VDM's invariance holds for multivariate schedules too: with the optimal denoiser the bound is
    -log p(x) plus gaps at the ends, whatever path each coordinate's gamma takes between them. For a
    rotated anisotropic Gaussian (the optimal denoiser couples the coordinates) two per-coordinate
    schedules with very different shapes give the scalar linear schedule's bound, to Monte Carlo
    error; so an input-independent multivariate schedule can change only the ends."""
    n = 200_000
    x = torch.randn(n, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(20)) \
        @ torch.linalg.cholesky(COVARIANCE).T
    linear = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, DIMS, 3)
    apart = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64).expand(n, DIMS, 3)
    found = {}
    for name, coefficients in {"linear": linear, "apart": apart, "random": None}.items():
        schedule = polynomial(n, seed=21) if coefficients is None else \
            PolynomialSchedule(-6.0, 6.0).double().conditioned(coefficients)
        terms = continuous_bound(schedule, joint_optimal(schedule, COVARIANCE), x, torch.Generator().manual_seed(22))
        found[name] = (terms["nll"].mean().item(), terms["nll"].std().item() / math.sqrt(n))
    (reference, se), *others = found.values()
    for mean, other_se in others:
        assert abs(mean - reference) < 4 * math.hypot(se, other_se)


def gaussian_bound(gamma_0: float, gamma_1: float, scale: float) -> float:
    """The continuous-time bound of one coordinate N(0, scale^2) with the optimal denoiser, in nats:
    E[prior] + diffusion + E[reconstruction] in closed form."""
    alpha2, sigma2 = 1 / (1 + math.exp(gamma_1)), 1 / (1 + math.exp(-gamma_1))
    prior = 0.5 * (alpha2 * scale ** 2 + sigma2 - 1 - math.log(sigma2))
    reconstruction = 0.5 * (math.log(2 * math.pi) + gamma_0 + 1)  # decoder variance sigma_0^2 / alpha_0^2 = e^gamma_0
    return prior + gaussian_diffusion_term(gamma_0, gamma_1, scale, 1) + reconstruction


def test_per_coordinate_ends_lower_the_bound_by_their_closed_form():
    """Where a multivariate schedule must do better: ends of its own per coordinate. On coordinates of
    scales 0.5 and 3, the scalar schedule's low end gamma_0 = -6 leaves the small coordinate a
    reconstruction gap of 1/2 log(1 + e^gamma_0 / s^2) nats; per-coordinate ends that go to -9 for
    it lower the bound by exactly the closed form's difference, and the bound (Monte Carlo) meets the
    closed form for both."""
    x = SCALES * torch.randn(POINTS, DIMS, dtype=torch.float64, generator=torch.Generator().manual_seed(23))
    linear = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(POINTS, DIMS, 3)
    ends = {"scalar": torch.tensor([-6.0, 6.0], dtype=torch.float64),
            "per coordinate": torch.tensor([[-9.0, -6.0], [6.0, 6.0]], dtype=torch.float64)}
    closed = {name: sum(gaussian_bound(float(e[0].expand(DIMS)[i]), float(e[1].expand(DIMS)[i]), float(SCALES[i]))
                        for i in range(DIMS)) for name, e in ends.items()}
    for name, e in ends.items():
        schedule = ConditionedSchedule(e, linear)
        terms = continuous_bound(schedule, coordinate_optimal(schedule), x, torch.Generator().manual_seed(24))
        mean, se = terms["nll"].mean().item(), terms["nll"].std().item() / math.sqrt(POINTS)
        assert abs(mean - closed[name]) < 4 * se, name
    gap = 0.5 * (math.log1p(math.exp(-6.0) / 0.25) - math.log1p(math.exp(-9.0) / 0.25))
    assert closed["scalar"] - closed["per coordinate"] == pytest.approx(gap, rel=1e-12)
