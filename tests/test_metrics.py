"""The k-NN KL estimator and the sample-quality metrics (W2, sliced W2, MMD, precision/recall)
against closed forms and hand computations, and the grid variance."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist

from gridnoise.metrics import (
    KLEstimator,
    MetricError,
    grid_variance,
    kl_divergence,
    mmd_rbf,
    precision_recall,
    sample_quality,
    sliced_wasserstein,
    wasserstein2,
)


def gaussian_kl_bits(mu, s):
    """KL(N(0, I_2) || N(mu, s^2 I_2)) in bits, closed form:
    (1/2) [tr(S1^-1 S0) + mu^T S1^-1 mu - d + ln(det S1 / det S0)] / ln 2."""
    d = 2
    nats = 0.5 * (d / s**2 + np.dot(mu, mu) / s**2 - d + 2 * d * math.log(s))
    return nats / math.log(2)


def gaussian_pair(seed, n, m, mu, s):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.normal(size=(m, 2)) * s + np.asarray(mu)


# Tolerances measured over 30 seeds at n = m = 20000 (error = estimate - truth, bits):
#   mu=(0,0) s=1: bias +0.002 sd 0.009 max|err| 0.018     mu=(1,0) s=1: bias -0.012 sd 0.019 max 0.045
#   mu=(.5,-.5) s=1.5: bias +0.007 sd 0.012 max 0.028     mu=(0,0) s=2: bias +0.009 sd 0.015 max 0.046
# So each seed is within 0.06 bits (>= 2.5 sd past the bias) and the 3-seed mean within 0.04. Wrong
# variants miss by far more (seed 0): nats instead of bits are off by 0.17-0.29 bits on the three
# nonzero cases, a dropped factor d by 0.27-0.47, the (k+1)-th data neighbour for rho by 0.29-0.31.
@pytest.mark.parametrize("mu, s", [((0.0, 0.0), 1.0), ((1.0, 0.0), 1.0), ((0.5, -0.5), 1.5), ((0.0, 0.0), 2.0)])
def test_matches_closed_form_between_gaussians(mu, s):
    truth = gaussian_kl_bits(np.array(mu), s)
    estimates = np.array([kl_divergence(*gaussian_pair(seed, 20_000, 20_000, mu, s)) for seed in range(3)])
    assert np.abs(estimates - truth).max() < 0.06
    assert abs(estimates.mean() - truth) < 0.04
    assert len(set(estimates)) == 3  # three independent draws, not one lucky number


def test_same_distribution_at_unequal_sizes_is_near_zero():
    # KL(P || P) = 0; with n = 20000 data and m = 5000 samples, the log2(m / (n - 1)) term (-2 bits)
    # must cancel the larger sample distances. 30 seeds: bias -0.006, sd 0.009, max |err| 0.021.
    for seed in range(3):
        assert abs(kl_divergence(*gaussian_pair(seed, 20_000, 5_000, (0, 0), 1.0))) < 0.04


def test_hand_computed_k1():
    # Data on the x axis at 0, 1, 3; samples at 0.5, 10, 20, 30 (y = 0 throughout); n = 3, m = 4, d = 2.
    # rho_1 (nearest other data point): 0 -> 1, 1 -> 1, 3 -> 2.
    # nu_1 (nearest sample):            0 -> 0.5, 1 -> 0.5, 3 -> 2.5.
    # KL = log2(4 / 2) + 2 * mean(log2 0.5, log2 0.5, log2 1.25) = 1 + 2/3 (log2 5 - 4) = -0.11871...
    data = np.array([[0, 0], [1, 0], [3, 0]], float)
    samples = np.array([[0.5, 0], [10, 0], [20, 0], [30, 0]], float)
    expected = 1 + 2 / 3 * (math.log2(5) - 4)
    assert expected == pytest.approx(-0.118714, abs=1e-6)
    assert kl_divergence(data, samples, k=1) == pytest.approx(expected, rel=1e-12)


def test_hand_computed_k2_uses_max_norm():
    # Data (0,0), (1,2), (3,0), (0,3); samples (1,1), (2,2), (5,5); n = 4, m = 3, so log2(3 / 3) = 0.
    # Chebyshev distances. rho_2 (2nd nearest other data point):
    #   (0,0): others at 2, 3, 3 -> 3;  (1,2): 2, 2, 1 -> 2;  (3,0): 3, 2, 3 -> 3;  (0,3): 3, 1, 3 -> 3
    # nu_2 (2nd nearest sample):
    #   (0,0): 1, 2, 5 -> 2;  (1,2): 1, 1, 4 -> 1;  (3,0): 2, 2, 5 -> 2;  (0,3): 2, 2, 5 -> 2
    # KL = 2 * mean(log2 2/3, log2 1/2, log2 2/3, log2 2/3) = 1 - 1.5 log2 3 = -1.37744...
    # (Euclidean radii would give rho = 2.236 for (1,2) and a different value.)
    data = np.array([[0, 0], [1, 2], [3, 0], [0, 3]], float)
    samples = np.array([[1, 1], [2, 2], [5, 5]], float)
    expected = 1 - 1.5 * math.log2(3)
    assert expected == pytest.approx(-1.377444, abs=1e-6)
    assert kl_divergence(data, samples, k=2) == pytest.approx(expected, rel=1e-12)


def test_data_is_the_reference():
    # a ~ N(0, I) (4000 points), b ~ N(0, 4I) (16000 points). KL(a || b) = 0.918 bits and the estimate
    # finds it; KL(b || a) = 2.328 bits is larger (underestimated at this n: ~1.2 over 10 seeds).
    a, b = gaussian_pair(1, 4_000, 16_000, (0, 0), 2.0)
    forward, backward = kl_divergence(a, b), kl_divergence(b, a)
    assert forward == pytest.approx(gaussian_kl_bits(np.zeros(2), 2.0), abs=0.08)
    assert backward > forward + 0.15


def brute_force_kl(data, samples, k):
    """The estimator's formula from all pairwise max-norm distances, no trees and nothing cached."""
    from scipy.spatial.distance import cdist

    within = cdist(data, data, "chebyshev")
    np.fill_diagonal(within, np.inf)
    rho = np.sort(within, axis=1)[:, k - 1]
    nu = np.sort(cdist(data, samples, "chebyshev"), axis=1)[:, k - 1]
    n, m, d = len(data), len(samples), data.shape[1]
    return np.log2(m / (n - 1)) + d * np.mean(np.log2(nu) - np.log2(rho))


def test_estimator_reuses_the_data_distances():
    # one estimator, its data distances computed once, scores several sample sets correctly
    data, samples = gaussian_pair(4, 2_000, 1_000, (0.5, 0), 1.0)
    estimator = KLEstimator(data, k=5)
    for part in (samples, samples[:500], samples[::3] + 0.2):
        assert estimator(part) == pytest.approx(brute_force_kl(data, part, 5), rel=1e-12)


def brute_force_kl_with_ties(data, samples, k):
    """The estimator with ties as its docstring states them, from all pairwise max-norm distances:
    the k-th nearest point at a positive distance, each copy of another location counted."""
    def kth_apart(distances):
        distances = np.where(distances > 0, distances, np.inf)
        return np.sort(distances, axis=1)[:, k - 1]

    rho = kth_apart(cdist(data, data, "chebyshev"))
    nu = kth_apart(cdist(data, samples, "chebyshev"))
    n, m, d = len(data), len(samples), data.shape[1]
    return np.log2(m / (n - 1)) + d * np.mean(np.log2(nu) - np.log2(rho))


def test_hand_computed_with_repeated_data_points():
    # Data on the x axis at 0, 0, 1, 3 (a repeated row); samples at 0.5, 10, 20, 30; k = 1, n = m = 4.
    # rho_1, the nearest data point apart (at a positive distance): 0 -> 1 (its copy does not count),
    # 0 -> 1, 1 -> 1 (either copy of 0), 3 -> 2. nu_1: 0.5, 0.5, 0.5, 2.5.
    # KL = log2(4 / 3) + 2 * mean(log2 0.5, log2 0.5, log2 0.5, log2 1.25) = log2(4/3) + (log2 5 - 5) / 2
    data = np.array([[0, 0], [0, 0], [1, 0], [3, 0]], float)
    samples = np.array([[0.5, 0], [10, 0], [20, 0], [30, 0]], float)
    expected = math.log2(4 / 3) + (math.log2(5) - 5) / 2
    assert kl_divergence(data, samples, k=1) == pytest.approx(expected, rel=1e-12)


def test_a_sample_on_a_data_point_is_not_its_neighbour():
    # test_hand_computed_k1's data and samples, with one more sample exactly on the data point 0:
    # for that point nu_1 is the nearest sample apart, 0.5, as before; m = 5 now.
    data = np.array([[0, 0], [1, 0], [3, 0]], float)
    samples = np.array([[0, 0], [0.5, 0], [10, 0], [20, 0], [30, 0]], float)
    expected = math.log2(5 / 2) + 2 / 3 * (math.log2(5) - 4)
    assert kl_divergence(data, samples, k=1) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("k", [1, 5])
def test_rounded_data_match_the_brute_force_rule(k):
    # Coordinates rounded to 0.1: about 10 copies per location in the centre, and samples on the same
    # lattice, so both rho and nu meet ties.
    rng = np.random.default_rng(5)
    data, samples = np.round(rng.normal(size=(1500, 2)), 1), np.round(rng.normal(size=(800, 2)) * 1.1, 1)
    assert len(np.unique(data, axis=0)) < 0.7 * len(data)
    estimate = kl_divergence(data, samples, k=k)
    assert np.isfinite(estimate) and estimate == pytest.approx(brute_force_kl_with_ties(data, samples, k), rel=1e-12)
    # the rule is the plain estimate where nothing ties: continuous samples leave nu alone
    continuous = rng.normal(size=(800, 2))
    assert kl_divergence(data, continuous, k=k) == pytest.approx(brute_force_kl_with_ties(data, continuous, k),
                                                                 rel=1e-12)


def test_samples_collapsed_onto_one_data_point_are_infinitely_far_from_the_data():
    # Every sample on the data point (0, 0): no sample lies apart from it, so its nu is inf, and so is KL.
    data = np.random.default_rng(6).normal(size=(50, 2))
    data[0] = 0.0
    assert kl_divergence(data, np.zeros((20, 2)), k=5) == math.inf


_rng = np.random.default_rng(0)


@pytest.mark.parametrize("data, samples, k, message", [
    (np.arange(10.0).reshape(5, 2), np.ones((3, 2)), 5, "more than k data points"),
    (_rng.random((10, 2)), _rng.random((3, 2)), 5, "at least k samples"),
    (_rng.random((10, 2)), _rng.random((10, 3)), 1, "differ in dimension"),
    (np.array([[0, 0], [np.nan, 1], [2, 2]]), _rng.random((4, 2)), 1, "data contains NaN"),
    (_rng.random((10, 2)), np.array([[0, 0], [np.inf, 1]]), 1, "samples contains NaN or infinite"),
    (np.array([[0, 0]] * 8 + [[1, 1]] * 2, float), _rng.random((6, 2)), 5, "too few distinct points"),
    (np.arange(6.0), np.arange(6.0), 1, "2-D array"),
    (_rng.random((10, 2)), _rng.random((10, 2)), 0, "k must be an integer >= 1"),
    (_rng.random((10, 2)), _rng.random((10, 2)), 2.5, "k must be an integer >= 1"),
])
def test_bad_inputs(data, samples, k, message):
    with pytest.raises(MetricError, match=message) as info:
        kl_divergence(data, samples, k=k)
    assert "\n" not in str(info.value)


def test_grid_variance():
    g = torch.rand(4, 5, 5, generator=torch.Generator().manual_seed(0))
    values = g.double().numpy().ravel()
    by_hand = ((values - values.mean()) ** 2).sum() / (values.size - 1)
    assert grid_variance(g) == pytest.approx(by_hand, rel=1e-12)
    assert grid_variance(g) == pytest.approx(torch.var(g.double()).item(), rel=1e-12)
    assert grid_variance(g.numpy()) == pytest.approx(np.var(g.numpy().astype(float), ddof=1), rel=1e-12)
    assert grid_variance(torch.nn.Parameter(g.clone())) == pytest.approx(by_hand, rel=1e-12)  # needs grad
    assert grid_variance(torch.ones(3, 2, 2)) == 0.0
    with pytest.raises(MetricError, match="at least 2 entries"):
        grid_variance(np.ones(1))


# ---- sample-quality metrics ----------------------------------------------------------------------

def shifted_pair(seed, n, shift, s=1.0):
    """n points of N(0, s^2 I_2) and n independent points of N(shift, s^2 I_2)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) * s, rng.normal(size=(n, 2)) * s + np.asarray(shift)


# W2(N(m1, s^2 I), N(m2, s^2 I)) = ||m1 - m2|| (= 2.5 here). Measured over 30 seeds at n = 1000, s = 0.5:
# bias +0.008, sd 0.023, max |err| 0.062; so 0.08 per seed and 0.05 for the 3-seed mean are > 3 sd past
# the bias. The squared distance (about 4 instead of 6.25) or a missing sqrt (6.25) miss by far more.
def test_w2_between_gaussians_is_the_distance_of_the_means():
    estimates = np.array([wasserstein2(*shifted_pair(seed, 1000, (1.5, 2.0), s=0.5), n=1000) for seed in range(3)])
    assert np.abs(estimates - 2.5).max() < 0.08
    assert abs(estimates.mean() - 2.5) < 0.05


def test_w2_exact_cases():
    x = np.random.default_rng(0).normal(size=(300, 2))
    assert wasserstein2(x, x) < 1e-7  # sqrt of a round-off-sized cost
    # A shift by v moves every point by ||v|| and no coupling does better: W2 = ||v|| = 5 exactly.
    assert wasserstein2(x + [3.0, -4.0], x) == pytest.approx(5.0, rel=1e-9)
    # On the x axis, {0, 2} vs {1, 5}: 0->1, 2->5 costs (1 + 9) / 2 = 5 (crossing would cost 13).
    def line(*xs):
        return np.array([[v, 0.0] for v in xs])

    assert wasserstein2(line(0, 2), line(1, 5)) == pytest.approx(math.sqrt(5), rel=1e-12)
    # Unequal sizes, uniform weights: {0} vs {1, 5} moves half a unit of mass each: (1 + 25) / 2 = 13.
    assert wasserstein2(line(0), line(1, 5)) == pytest.approx(math.sqrt(13), rel=1e-12)


def test_sliced_w2_of_a_shift():
    # Each direction theta sees a pure 1-D shift by theta.v, so SW2^2 = E[(theta.v)^2] = ||v||^2 / 2 in 2-D
    # and SW2 = 5 / sqrt(2). With P directions the relative sd is sqrt(1 / (8 P)): 0.005 at P = 5000
    # (at P = 10000, 30 seeds measured 0.0034 against 0.0035), so 0.02 is 4 sd.
    v = np.array([3.0, -4.0])
    for seed in range(2):
        x = np.random.default_rng(seed).normal(size=(100, 2))
        assert sliced_wasserstein(x + v, x, projections=5000, seed=seed) == pytest.approx(5 / math.sqrt(2), rel=0.02)
    # In 1-D every direction is +-1, so SW2 is W2 exactly: {0, 2} vs {1, 5} gives sqrt(5) as above.
    one_d = sliced_wasserstein(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]]))
    assert one_d == pytest.approx(math.sqrt(5), rel=1e-12)


def test_sliced_w2_is_at_most_w2():
    # Projecting cannot lengthen a transport plan, so SW2 <= W2 on the same subsamples (same n and seed).
    x, y = shifted_pair(5, 3000, (0.3, 0.0), s=1.5)
    assert 0 < sliced_wasserstein(x, y, n=500, seed=2) <= wasserstein2(x, y, n=500, seed=2)


def test_mmd_hand_computed():
    # x = (0,0), (1,0); y = (0,1), (1,1); sigma = 1, k = exp(-d^2 / 2). Within each set one pair at d^2 = 1;
    # across, d^2 = 1, 2, 2, 1. Unbiased: k(x1,x2) + k(y1,y2) - 2/4 (2 e^-1/2 + 2 e^-1) = e^-1/2 - e^-1.
    # The six pooled distances are 1, 1, 1, 1, sqrt 2, sqrt 2, so the median heuristic also gives sigma = 1.
    # (The biased estimator, with the k(x, x) = 1 diagonal, would give 1 + e^-1/2 - 2 (e^-1/2 + e^-1) / 2.)
    x, y = np.array([[0, 0], [1, 0]], float), np.array([[0, 1], [1, 1]], float)
    expected = math.exp(-0.5) - math.exp(-1)
    assert mmd_rbf(x, y, bandwidth=1.0) == pytest.approx(expected, rel=1e-12)
    assert mmd_rbf(x, y) == pytest.approx(expected, rel=1e-12)
    # bandwidth 2: exp(-1/8) within, exp(-1/8), exp(-2/8) across
    assert mmd_rbf(x, y, bandwidth=2.0) == pytest.approx(math.exp(-1 / 8) - math.exp(-1 / 4), rel=1e-12)


def test_mmd_bandwidth_is_the_median_distance():
    # An even number of pairs (a 12-point pool has 66) with distinct middle values: the median of the
    # distances, not the root of the median squared distance or the mean.
    rng = np.random.default_rng(3)
    x, y = rng.random((5, 2)), rng.random((7, 2)) * 2
    sigma = float(np.median(pdist(np.vstack([x, y]))))
    assert mmd_rbf(x, y) == pytest.approx(mmd_rbf(x, y, bandwidth=sigma), rel=1e-12)
    def k(a, b):
        return np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))

    by_definition = ((k(x, x).sum() - 5) / 20 + (k(y, y).sum() - 7) / 42 - 2 * k(x, y).mean())
    assert mmd_rbf(x, y) == pytest.approx(by_definition, rel=1e-12)
    # the root of the median squared distance differs here, and so would the value
    other = float(np.sqrt(np.median(pdist(np.vstack([x, y])) ** 2)))
    assert mmd_rbf(x, y, bandwidth=other) != pytest.approx(mmd_rbf(x, y), rel=1e-6)


# For N(0, s^2 I_d) vs N(mu, s^2 I_d) and a fixed sigma, with c = sigma^2 / (sigma^2 + 2 s^2):
# MMD^2 = 2 c^(d/2) (1 - exp(-||mu||^2 / (2 (sigma^2 + 2 s^2)))) (Gaussian integrals of the kernel).
# d = 2, s = sigma = 1, ||mu|| = 1: 2/3 (1 - e^-1/6) = 0.10235. Measured over 30 seeds at n = 1000:
# bias -0.0003, sd 0.0093, max |err| 0.019: 0.03 per seed, 0.018 for the 3-seed mean (> 3 sd).
def test_mmd_matches_closed_form_between_gaussians():
    truth = 2 / 3 * (1 - math.exp(-1 / 6))
    estimates = np.array([mmd_rbf(*shifted_pair(seed, 1000, (1.0, 0.0)), bandwidth=1.0) for seed in range(3)])
    assert np.abs(estimates - truth).max() < 0.03
    assert abs(estimates.mean() - truth) < 0.018


def test_mmd_near_zero_for_one_distribution_and_grows_with_separation():
    # Same distribution, median bandwidth, n = 1000, 30 seeds: mean -0.0001, sd 0.0004, max |value| 0.0007.
    for seed in range(3):
        assert abs(mmd_rbf(*shifted_pair(seed, 1000, (0.0, 0.0)))) < 0.0015
    values = [mmd_rbf(*shifted_pair(0, 1000, (shift, 0.0))) for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[1] > 0.0015


def test_precision_recall_hand_computed():
    # Real points on the x axis at 0, 1, 3, 7; fake at (1.5, 0), (11, 0), (12, 0), (0, 1.5).
    # k = 1: real radii (nearest other real point) 1, 1, 2, 4. Fake (1.5, 0) is 0.5 from 1: in;
    # (11, 0) is exactly 4 from 7: in (closed balls); (12, 0) is 5 from 7: out; (0, 1.5) is 1.5 from 0,
    # 1.80 from 1, 3.35 from 3, 7.16 from 7: out. Precision 2/4.
    # Fake radii: (1.5, 0) and (0, 1.5) are 2.12 apart, (11, 0) and (12, 0) are 1 apart. Real 0, 1 and 3
    # lie within 2.12 of (1.5, 0); 7 is 4 from (11, 0), 5 from (12, 0), 5.5 and 7.16 from the others:
    # out. Recall 3/4.
    # k = 2: real radii 3, 2, 3, 6 take in (12, 0) (5 from 7) and (0, 1.5) (1.5 from 0); fake radii
    # 9.5, 9.5, 10.5, 11.1 take in 7 (5.5 from (1.5, 0)): both 1.
    real = np.array([[0, 0], [1, 0], [3, 0], [7, 0]], float)
    fake = np.array([[1.5, 0], [11, 0], [12, 0], [0, 1.5]])
    assert precision_recall(fake, real, k=1) == (0.5, 0.75)
    assert precision_recall(fake, real, k=2) == (1.0, 1.0)


def test_precision_recall_with_repeated_points():
    # k = 1. Real: two copies of (0, 0) take the radius of their nearest real point apart, (10, 0) at
    # 10 (a rounding step, not a point mass); (10, 0) and (11, 0) have radius 1. Fake (0, 0), (0, 1e-9)
    # and (10.5, 0) are in, (20, 0) is 9 from (11, 0) and 20 from (0, 0): out. Precision 3/4.
    real = np.array([[0, 0], [0, 0], [10, 0], [11, 0]], float)
    fake = np.array([[0, 0], [0, 1e-9], [10.5, 0], [20, 0]])
    assert precision_recall(fake, real, k=1)[0] == 0.75
    # Fake copies keep their zero radius, a ball that holds its centre and nothing else (the model put
    # its mass on one point): real (0, 0) is in, (0, 1e-9) out; (5.5, 0) lies in the radius-1 balls
    # of (5, 0) and (6, 0), (20, 0) in none. Recall 2/4.
    fake = np.array([[0, 0], [0, 0], [5, 0], [6, 0]], float)
    real = np.array([[0, 0], [0, 1e-9], [5.5, 0], [20, 0]])
    assert precision_recall(fake, real, k=1)[1] == 0.5


def test_every_metric_measures_rounded_data():
    # Moons rounded to 0.1 (up to ~50 copies of a location) against continuous samples of the same
    # moons: every metric is finite, and precision is near 1, as it is before rounding (with the
    # zero radii of the copies it was 0.15).
    from gridnoise.data import load

    exact = load("moons", 10_000, seed=1).astype(np.float64)
    rounded, samples = np.round(exact, 1), load("moons", 2000, seed=2).astype(np.float64)
    assert np.unique(rounded, axis=0, return_counts=True)[1].max() > 20
    metrics = sample_quality(samples, rounded)
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["precision"] > 0.95 and metrics["recall"] > 0.9
    unrounded = sample_quality(samples, exact)
    assert metrics["w2"] == pytest.approx(unrounded["w2"], abs=0.02)  # rounding moves points by <= 0.07
    assert abs(metrics["mmd"]) < 1e-3
    assert np.isfinite(kl_divergence(rounded, samples))
    # a set and the same set with every row repeated are the same distribution to W2 and MMD
    twice = np.vstack([rounded[:500], rounded[:500]])
    assert wasserstein2(twice, rounded[:500], n=1000) == pytest.approx(0, abs=1e-12)
    assert abs(mmd_rbf(twice, rounded[:500], n=1000)) < 1e-2


def test_precision_recall_match_brute_force():
    # The octave grouping against all n^2 distances, with heavy-tailed points so radii span many octaves.
    rng = np.random.default_rng(7)
    fake, real = rng.standard_cauchy((400, 2)), rng.standard_cauchy((300, 2)) + 0.5

    def share_inside(points, centres, k):
        radii = np.sort(cdist(centres, centres), axis=1)[:, k]  # column 0 is the centre itself
        return (cdist(points, centres) <= radii).any(axis=1).mean()

    for k in (1, 3):
        assert precision_recall(fake, real, k=k) == (share_inside(fake, real, k), share_inside(real, fake, k))


def test_precision_recall_on_equal_and_half_support():
    rng = np.random.default_rng(0)
    real = rng.random((2000, 2))
    assert precision_recall(real[::-1].copy(), real) == (1.0, 1.0)  # every point is its own ball's centre
    # Fake uniform on the left half of the real square. 30 seeds: precision mean 0.979, min 0.966 (the
    # same as for fake = a fresh draw of the whole square: edge effects); recall mean 0.500, sd 0.011,
    # max |recall - 0.5| 0.024.
    for seed in range(3):
        rng = np.random.default_rng(seed)
        real, fake = rng.random((2000, 2)), rng.random((2000, 2)) * [0.5, 1.0]
        precision, recall = precision_recall(fake, real)
        assert precision > 0.95
        assert recall == pytest.approx(0.5, abs=0.04)


def test_sample_metrics_reproducible():
    rng = np.random.default_rng(1)
    samples, data = rng.normal(size=(500, 2)) * 1.2, rng.normal(size=(3000, 2))
    first = sample_quality(samples, data, seed=3)
    assert list(first) == ["w2", "sliced_w2", "mmd", "precision", "recall"]
    assert sample_quality(samples, data, seed=3) == first
    # Another seed draws other subsamples of the data for W2 (n = 2000) and MMD (n = 1000) and other
    # directions; precision and recall (n = 10000) see both sets whole, so they do not change.
    other = sample_quality(samples, data, seed=4)
    assert all(other[key] != first[key] for key in ("w2", "sliced_w2", "mmd"))
    assert (other["precision"], other["recall"]) == (first["precision"], first["recall"])
    assert first["w2"] == wasserstein2(samples, data, seed=3)
    assert first["mmd"] == mmd_rbf(samples, data, seed=3)


_ok = _rng.random((20, 2))


@pytest.mark.parametrize("metric", [wasserstein2, sliced_wasserstein, mmd_rbf, precision_recall, sample_quality])
@pytest.mark.parametrize("samples, data, message", [
    (np.array([[0, 0], [np.nan, 1], [2, 2]]), _ok, "samples contains NaN or infinite values"),
    (_ok, np.array([[0, 0], [1, -np.inf], [2, 2]]), "data contains NaN or infinite values"),
    (np.arange(6.0), _ok, "samples must be a 2-D array"),
    (_ok, _rng.random((10, 3)), "differ in dimension"),
    (np.empty((0, 2)), _ok, "needs at least . points in samples"),
])
def test_sample_metrics_bad_inputs(metric, samples, data, message):
    with pytest.raises(MetricError, match=message) as info:
        metric(samples, data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("call, message", [
    (lambda: mmd_rbf(_ok[:1], _ok), "unbiased MMD needs at least 2 points in samples"),
    (lambda: precision_recall(_ok, _ok[:3], k=3), "precision and recall needs at least 4 points in data"),
    (lambda: precision_recall(_ok, _ok, k=0), "k must be an integer >= 1"),
    (lambda: wasserstein2(_ok, _ok, n=0), "n must be an integer >= 1"),
    (lambda: mmd_rbf(_ok, _ok, n=1), "n must be an integer >= 2"),
    (lambda: sliced_wasserstein(_ok, _ok, projections=2.0), "projections must be an integer >= 1"),
    (lambda: mmd_rbf(_ok, _ok, bandwidth=0.0), "bandwidth must be finite and > 0"),
    (lambda: mmd_rbf(np.zeros((5, 2)), np.zeros((6, 2))), "median distance is 0"),
])
def test_sample_metrics_bad_arguments(call, message):
    with pytest.raises(MetricError, match=message):
        call()
