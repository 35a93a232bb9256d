import math

import numpy as np
import pytest
import torch

from gridnoise.metrics import MetricError, grid_variance, kl_divergence


def gaussian_kl_bits(mu, s):
    """KL(N(0, I_2) || N(mu, s^2 I_2)) in bits, closed form."""
    d = 2
    nats = 0.5 * (d / s**2 + np.dot(mu, mu) / s**2 - d + 2 * d * math.log(s))
    return nats / math.log(2)


@pytest.mark.parametrize("mu, s", [((0.0, 0.0), 1.0), ((1.0, 0.0), 1.0), ((0.5, -0.5), 1.5)])
def test_matches_closed_form_between_gaussians(mu, s):
    rng = np.random.default_rng(0)
    truth = gaussian_kl_bits(np.array(mu), s)
    estimates = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        data = rng.normal(size=(20_000, 2))
        samples = rng.normal(size=(20_000, 2)) * s + np.array(mu)
        estimates.append(kl_divergence(data, samples))
    # k-NN estimates at n = m = 20000 in 2-D are within a few hundredths of a bit.
    assert abs(np.mean(estimates) - truth) < 0.04
    assert np.std(estimates) < 0.03


def test_hand_computed_k1():
    # data on the x axis at 0, 1, 3; samples at 0.5 and 10 (y = 0 throughout).
    # rho_1: 0 -> 1, 1 -> 1, 3 -> 2.   nu_1: 0 -> 0.5, 1 -> 0.5, 3 -> 2.5.
    # KL = log2(2 / 2) + 2 * mean(log2(nu / rho)) = 2/3 * (log2 0.5 + log2 0.5 + log2 1.25)
    data = np.array([[0, 0], [1, 0], [3, 0]], float)
    samples = np.array([[0.5, 0], [10, 0]], float)
    expected = 2 / 3 * (2 * math.log2(0.5) + math.log2(1.25))
    assert kl_divergence(data, samples, k=1) == pytest.approx(expected)


def test_hand_computed_k2_uses_max_norm():
    # data (0,0), (1,2), (3,0), (0,3); samples (1,1), (2,2), (5,5).
    # Chebyshev distances. rho_2 (2nd nearest other data point):
    #   (0,0): others at 2, 3, 3 -> 3;  (1,2): 2, 2, 1 -> 2;  (3,0): 3, 2, 3 -> 3;  (0,3): 3, 1, 3 -> 3
    # nu_2 (2nd nearest sample):
    #   (0,0): 1, 2, 5 -> 2;  (1,2): 1, 1, 4 -> 1;  (3,0): 2, 2, 5 -> 2;  (0,3): 2, 2, 5 -> 2
    data = np.array([[0, 0], [1, 2], [3, 0], [0, 3]], float)
    samples = np.array([[1, 1], [2, 2], [5, 5]], float)
    expected = math.log2(3 / 3) + 2 * np.mean(np.log2([2 / 3, 1 / 2, 2 / 3, 2 / 3]))
    assert kl_divergence(data, samples, k=2) == pytest.approx(expected)


def test_direction_matters():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3000, 2)), rng.normal(size=(3000, 2)) * 2
    # KL(N(0, I) || N(0, 4I)) = 0.92 bits; the reverse is 2.33 bits (underestimated at this n).
    assert kl_divergence(a, b) == pytest.approx(gaussian_kl_bits(np.zeros(2), 2.0), abs=0.08)
    assert kl_divergence(b, a) > kl_divergence(a, b) + 0.1


@pytest.mark.parametrize("data, samples, k, message", [
    (np.zeros((5, 2)) + np.arange(5)[:, None], np.ones((3, 2)), 5, "more than k"),
    (np.random.rand(10, 2), np.random.rand(10, 3), 1, "dimension"),
    (np.array([[0, 0], [np.nan, 1], [2, 2]]), np.random.rand(4, 2), 1, "NaN"),
    (np.array([[0, 0], [0, 0], [2, 2]], float), np.random.rand(4, 2), 1, "duplicate"),
    (np.arange(6.0), np.arange(6.0), 1, "2-D"),
])
def test_bad_inputs(data, samples, k, message):
    with pytest.raises(MetricError, match=message):
        kl_divergence(data, samples, k=k)


def test_grid_variance():
    g = torch.rand(4, 5, 5)
    assert grid_variance(g) == pytest.approx(torch.var(g.double()).item())
    assert grid_variance(g.numpy()) == pytest.approx(np.var(g.numpy().astype(float), ddof=1))
    assert grid_variance(torch.ones(3, 2, 2)) == 0.0
