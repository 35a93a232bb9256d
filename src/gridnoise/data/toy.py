"""The field's standard 2-D density benchmarks, plus `scales`.

The definitions follow the toy data of FFJORD (Grathwohl et al. 2019) and WGAN-GP
(Gulrajani et al. 2017), which most 2-D generative-model code copies; this is our own code, drawn
from a numpy `Generator`, so a seed fixes every point. Each generator maps (n, rng) to a float64
`(n, 2)` array in roughly [-4, 4]^2; the constants below are their parameters.

    8gaussians    8 Gaussians, std 0.5/1.414, centres on a circle of radius 4/1.414, equal weights
    25gaussians   25 Gaussians, std 0.05/2.828, centres on the 5x5 lattice {-2..2}^2 * 2/2.828
    checkerboard  uniform on 8 squares of side 2 in [-4, 4]^2, alternating like a checkerboard
    2spirals      two interleaved spiral arms (angle up to 540 degrees), uniform jitter + N(0, 0.1^2)
    pinwheel      5 arms: radial N(1, 0.3^2), tangential N(0, 0.1^2), rotated by 0.25 exp(radial), x2
    swissroll     scikit-learn's swiss roll (noise 1), its (x, z) plane divided by 5
    rings         4 concentric circles of radii 3, 2.25, 1.5 and 0.75, plus N(0, 0.08^2)
    scales        4 Gaussian blobs with standard deviations 0.025, 0.1, 0.3 and 0.75 (30x apart)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# 8gaussians: centres at angles k * 45 degrees on a circle of radius 4, then everything / 1.414
EIGHT_RADIUS, EIGHT_STD, EIGHT_SHRINK = 4.0, 0.5, 1.414
# 25gaussians: centres 2 * (i, j) for i, j in -2..2, std 0.05, then everything / 2.828
LATTICE_SPACING, LATTICE_STD, LATTICE_SHRINK = 2.0, 0.05, 2.828
SPIRAL_TURN = 540.0  # degrees an arm turns
SPIRAL_JITTER, SPIRAL_NOISE, SPIRAL_SHRINK = 0.5, 0.1, 3.0
PINWHEEL_ARMS, PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD, PINWHEEL_RATE = 5, 0.3, 0.1, 0.25
SWISSROLL_NOISE, SWISSROLL_SHRINK = 1.0, 5.0
RING_RADII, RING_NOISE = (3.0, 2.25, 1.5, 0.75), 0.08
# scales: (centre x, centre y, standard deviation); equal weights. The tight blob sits next to the
# broad one, so a per-region noise scale has something to adapt to.
SCALES_BLOBS = ((-2.2, 2.2, 0.025), (-2.2, -2.2, 0.1), (2.2, -2.2, 0.3), (1.2, 1.2, 0.75))


def gaussian_mixture(n: int, rng: np.random.Generator, centres: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """n points of an equal-weight mixture of isotropic Gaussians: centres `(k, 2)`, stds `(k,)`."""
    component = rng.integers(0, len(centres), n)
    return centres[component] + rng.standard_normal((n, 2)) * stds[component, None]


def eight_gaussians_centres() -> np.ndarray:
    angles = np.arange(8) * np.pi / 4
    return EIGHT_RADIUS * np.stack([np.cos(angles), np.sin(angles)], 1) / EIGHT_SHRINK


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    return gaussian_mixture(n, rng, eight_gaussians_centres(), np.full(8, EIGHT_STD / EIGHT_SHRINK))


def lattice_centres() -> np.ndarray:
    grid = np.arange(-2, 3) * LATTICE_SPACING
    return np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2) / LATTICE_SHRINK


def twenty_five_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    return gaussian_mixture(n, rng, lattice_centres(), np.full(25, LATTICE_STD / LATTICE_SHRINK))


def checkerboard_squares() -> np.ndarray:
    """Lower-left corners `(8, 2)` of the checkerboard's side-2 squares."""
    return np.array([(x, y) for x in (-4, -2, 0, 2) for y in (-4, -2, 0, 2) if (x // 2 + y // 2) % 2 == 0],
                    dtype=float)


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    corners = checkerboard_squares()
    return corners[rng.integers(0, len(corners), n)] + rng.uniform(0, 2, (n, 2))


def two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    turn = np.sqrt(rng.uniform(size=n)) * np.deg2rad(SPIRAL_TURN)  # uniform along the arm's area
    arm = np.stack([-np.cos(turn) * turn, np.sin(turn) * turn], 1) + rng.uniform(0, SPIRAL_JITTER, (n, 2))
    sign = np.where(rng.integers(0, 2, n) == 0, 1.0, -1.0)[:, None]  # the second arm is the first, point-mirrored
    return sign * arm / SPIRAL_SHRINK + rng.standard_normal((n, 2)) * SPIRAL_NOISE


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    arm = rng.integers(0, PINWHEEL_ARMS, n)
    radial = 1.0 + rng.standard_normal(n) * PINWHEEL_RADIAL_STD
    tangential = rng.standard_normal(n) * PINWHEEL_TANGENTIAL_STD
    angle = 2 * np.pi * arm / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(radial)
    # (radial, tangential) rotated by -angle: arms that wind clockwise as they leave the centre
    x = radial * np.cos(angle) + tangential * np.sin(angle)
    y = -radial * np.sin(angle) + tangential * np.cos(angle)
    return 2 * np.stack([x, y], 1)


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    points, _ = make_swiss_roll(n_samples=n, noise=SWISSROLL_NOISE, random_state=int(rng.integers(2**31)))
    return points[:, [0, 2]] / SWISSROLL_SHRINK


def rings(n: int, rng: np.random.Generator) -> np.ndarray:
    radius = np.asarray(RING_RADII)[rng.integers(0, len(RING_RADII), n)]
    angle = rng.uniform(0, 2 * np.pi, n)
    return radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1) + rng.standard_normal((n, 2)) * RING_NOISE


def scales(n: int, rng: np.random.Generator) -> np.ndarray:
    blobs = np.asarray(SCALES_BLOBS)
    return gaussian_mixture(n, rng, blobs[:, :2], blobs[:, 2])


# name -> generator(n, rng) returning float64 (n, 2)
GENERATORS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "8gaussians": eight_gaussians,
    "25gaussians": twenty_five_gaussians,
    "checkerboard": checkerboard,
    "2spirals": two_spirals,
    "pinwheel": pinwheel,
    "swissroll": swissroll,
    "rings": rings,
    "scales": scales,
}
