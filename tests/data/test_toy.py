"""The standard 2-D benchmarks against their definitions: modes, their positions and spreads,
supports and densities, each recomputed from the definition rather than from the code."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from gridnoise.data import load
from gridnoise.data import toy as toy_data

N = 40_000


def nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)


def check_mixture(points, centres, std, tol_std=0.05):
    """Each point belongs to its nearest centre; every mode holds 1/k of the points, centred on its
    centre with the given isotropic standard deviation."""
    k = len(centres)
    label = nearest(points, centres)
    counts = np.bincount(label, minlength=k)
    expected = len(points) / k
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts
    for j in range(k):
        mine = points[label == j]
        assert np.allclose(mine.mean(0), centres[j], atol=5 * std / np.sqrt(len(mine)) + 1e-9)
        assert np.allclose(mine.std(0), std, rtol=tol_std)


def test_8gaussians():
    angles = np.deg2rad(np.arange(0, 360, 45))
    centres = 4 / 1.414 * np.stack([np.cos(angles), np.sin(angles)], 1)
    check_mixture(load("8gaussians", N).astype(np.float64), centres, 0.5 / 1.414)


def test_25gaussians():
    centres = np.array([(2 * i, 2 * j) for i in range(-2, 3) for j in range(-2, 3)]) / 2.828
    check_mixture(load("25gaussians", N).astype(np.float64), centres, 0.05 / 2.828)


def test_scales_spans_30x_in_scale_and_has_the_mixtures_moments():
    blobs = np.array(toy_data.SCALES_BLOBS)
    assert blobs[:, 2].max() / blobs[:, 2].min() >= 30
    pts = load("scales", 200_000).astype(np.float64)
    # mixture moments in closed form: mean of the centres; covariance = mean(s^2) I + cov of the centres
    mean = blobs[:, :2].mean(0)
    cov = np.mean(blobs[:, 2] ** 2) * np.eye(2) + np.cov(blobs[:, :2].T, bias=True)
    assert np.allclose(pts.mean(0), mean, atol=0.01)
    assert np.allclose(np.cov(pts.T), cov, atol=0.02)
    # the tight blob: a quarter of the points within 4 of its standard deviations of its centre
    x, y, s = blobs[0]
    inside = np.hypot(pts[:, 0] - x, pts[:, 1] - y) < 4 * s
    assert abs(inside.mean() - 0.25) < 0.005


def test_checkerboard_is_uniform_on_eight_alternating_squares():
    pts = load("checkerboard", N).astype(np.float64)
    assert np.all(np.abs(pts) <= 4)
    cell = np.floor(pts / 2).astype(int)  # which of the 4 x 4 side-2 cells of [-4, 4]^2
    assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)  # only the squares of one colour
    counts = np.bincount((cell[:, 0] + 2) * 4 + (cell[:, 1] + 2), minlength=16)
    assert (counts > 0).sum() == 8 and np.all(np.abs(counts[counts > 0] - N / 8) < 5 * np.sqrt(N / 8))
    # uniform inside a square: each quarter of it holds a quarter of its points
    inner = np.floor((pts % 2) / 1).astype(int)
    quarters = np.bincount(inner[:, 0] * 2 + inner[:, 1], minlength=4)
    assert np.all(np.abs(quarters - N / 4) < 5 * np.sqrt(N / 4))


def test_rings_are_four_circles_of_the_stated_radii():
    pts = load("rings", N).astype(np.float64)
    radius = np.hypot(pts[:, 0], pts[:, 1])
    radii = np.array([3.0, 2.25, 1.5, 0.75])
    ring = np.argmin(np.abs(radius[:, None] - radii[None]), axis=1)
    assert np.all(np.abs(np.bincount(ring, minlength=4) - N / 4) < 5 * np.sqrt(N / 4))
    for j, r in enumerate(radii):
        mine = radius[ring == j]
        assert abs(mine.mean() - r) < 0.01 and abs(mine.std() - 0.08) < 0.01
        angles = np.arctan2(pts[ring == j, 1], pts[ring == j, 0])
        assert np.all(np.abs(np.histogram(angles, bins=8, range=(-np.pi, np.pi))[0] - len(mine) / 8)
                      < 6 * np.sqrt(len(mine) / 8))  # uniform around the circle


def spiral_curve(turn: np.ndarray) -> np.ndarray:
    """The noise-free first arm: (-t cos t, t sin t) / 3, t in [0, 3 pi]."""
    return np.stack([-np.cos(turn) * turn, np.sin(turn) * turn], 1) / 3


def test_2spirals_lie_on_two_point_mirrored_arms():
    pts = load("2spirals", 20_000).astype(np.float64)
    turn = np.linspace(0, 3 * np.pi, 4000)
    # the jitter shifts each point by up to (0.5, 0.5) / 3 before the arm is mirrored
    arm = spiral_curve(turn) + 0.25 / 3
    curves = np.concatenate([arm, -arm])
    distance, index = cKDTree(curves).query(pts)
    assert np.quantile(distance, 0.99) < 0.45  # N(0, 0.1^2) noise and the jitter's spread
    on_second = index >= len(arm)
    assert abs(on_second.mean() - 0.5) < 0.02
    # uniform in t^2 (the arm's area): the median of t is 3 pi / sqrt(2)
    radius = np.hypot(pts[:, 0], pts[:, 1]) * 3
    assert abs(np.median(radius) - 3 * np.pi / np.sqrt(2)) < 0.2


def test_pinwheel_has_five_arms_winding_with_their_radius():
    pts = load("pinwheel", N).astype(np.float64) / 2
    radial = np.hypot(pts[:, 0], pts[:, 1])
    # a point at radius r of arm k sits at angle -(2 pi k / 5 + 0.25 e^r), up to its tangential offset
    unwound = (-np.arctan2(pts[:, 1], pts[:, 0]) - 0.25 * np.exp(radial)) % (2 * np.pi)
    arm = np.round(unwound / (2 * np.pi / 5)) % 5
    residual = (unwound - arm * 2 * np.pi / 5 + np.pi) % (2 * np.pi) - np.pi
    assert np.quantile(np.abs(residual), 0.95) < 0.3
    assert np.all(np.abs(np.bincount(arm.astype(int), minlength=5) - N / 5) < 5 * np.sqrt(N / 5))
    assert abs(np.median(radial) - 1.0) < 0.02  # radial N(1, 0.3^2); the tangential part adds little


def test_swissroll_is_the_roll_of_radius_t_over_5():
    pts = load("swissroll", N).astype(np.float64) * 5
    # t ~ 1.5 pi (1 + 2 U); the point is (t cos t, t sin t) + N(0, 1) noise in each coordinate
    radius = np.hypot(pts[:, 0], pts[:, 1])
    assert np.quantile(radius, 0.001) > 1.5 * np.pi - 4 and np.quantile(radius, 0.999) < 4.5 * np.pi + 4
    assert abs(np.median(radius) - 3 * np.pi) < 0.3


@pytest.mark.parametrize("name", list(toy_data.GENERATORS))
def test_a_seed_fixes_every_point(name):
    assert np.array_equal(load(name, 1000, seed=3), load(name, 1000, seed=3))
    assert not np.array_equal(load(name, 1000, seed=3), load(name, 1000, seed=4))
    assert np.array_equal(load(name, 1000, seed=3)[:10], toy_data.GENERATORS[name](
        1000, np.random.default_rng(3))[:10].astype(np.float32))
