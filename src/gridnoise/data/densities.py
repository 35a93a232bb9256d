"""The exact densities of the registered data sets that have one, and their differential entropies.

With a data set's true log-density log p(x) and its differential entropy H = -E_p[log p(x)], the
KL divergence of a model q from the data is exact up to Monte Carlo error:

    KL(p || q) = E_p[-log q(x)] - H          (cross-entropy minus entropy)

where E_p[-log q(x)] is a model's negative log-likelihood on held-out data (`gridnoise.likelihood`).
This checks the k-nearest-neighbour KL estimate the original study reports (`metrics.KLEstimator`).
All values are in nats, in the data's own units, for the data set's generator at any seed.

    line           uniform on [-2, 2] x [-4, 4]: H = log 32
    checkerboard   uniform on 8 squares of side 2: H = log 32
    circle         17 clusters with weights from the generator's rounding; within a cluster of radius
                   R = 0.09 the radius is uniform, p(v) = 1 / (2 pi R |v - c|): H = H(weights) + log(2 pi R^2) - 1
    rings          4 rings, N(0, 0.08^2) across: a radial density with Bessel's I0, H by 1-D quadrature
    moons          two half-circles, uniform in angle, N(0, 0.03^2) across, then stretched by (2, 3):
                   p by the von Mises integral over the angle, H by Monte Carlo over the generator's points
    dino, 8gaussians, 25gaussians, scales   Gaussian mixtures: p in closed form, H by Monte Carlo

`ENTROPY_POINTS` generator points (seed `ENTROPY_SEED`) give the Monte Carlo entropies a standard
error of about 2e-3 nats; closed forms have none.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import i0e, logsumexp

from gridnoise.data import datasaurus_dino, load, toy
from gridnoise.errors import DataError

ENTROPY_POINTS = 200_000
ENTROPY_SEED = 12345  # not the data's 42: the entropy is the distribution's, not the training set's
LINE_AREA = 4.0 * 8.0
CHECKERBOARD_AREA = 8 * 2.0 * 2.0
CIRCLE_SCALE, CIRCLE_RADIUS = 3.0, 0.03  # the generator's factor and its cluster radius before it
MOONS_NOISE, MOONS_STRETCH, MOONS_SHIFT = 0.03, (2.0, 3.0), (0.3 * 2 - 1, 0.3 * 3 - 1)  # x' = stretch x + shift
DINO_NOISE, DINO_SCALE = 0.15, (4 / 54, 4 / 48)  # per-axis factors of the table's units into [-4, 4]
RING_NODES = 200_001  # radial quadrature points for the rings' entropy
BLOCK_ELEMENTS = 1 << 20  # points x components per block when a density sums over a mixture


@dataclass(frozen=True)
class Entropy:
    nats: float  # differential entropy H, nats, in the data's units
    stderr: float  # Monte Carlo standard error (0 for a closed form or quadrature)
    method: str  # "closed form", "quadrature" or "Monte Carlo (N points)"

    @property
    def bits(self) -> float:
        return self.nats / math.log(2)


# -- densities ----------------------------------------------------------------------------------

def _uniform_on(inside: np.ndarray, area: float) -> np.ndarray:
    return np.where(inside, -math.log(area), -np.inf)


def line_log_density(points: np.ndarray) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return _uniform_on((np.abs(x) <= 2) & (np.abs(y) <= 4), LINE_AREA)


def checkerboard_log_density(points: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(points), dtype=bool)
    for corner in toy.checkerboard_squares():
        inside |= ((points >= corner) & (points <= corner + 2)).all(axis=1)
    return _uniform_on(inside, CHECKERBOARD_AREA)


@functools.cache
def circle_clusters() -> tuple[np.ndarray, np.ndarray]:
    """(centres `(17, 2)`, weights `(17,)`) of `circle`, from its generator's arithmetic: each
    coordinate is U(-0.5, 0.5) halved, rounded to one decimal and doubled, so it takes the 5 values
    -0.4..0.4 with probability 1/5 each; the 25 pairs normalise to 16 directions and the origin."""
    values = np.round(np.array([-0.2, -0.1, 0.0, 0.1, 0.2]), 1) * 2  # each the rounding of a width-0.1 interval
    centres: dict[tuple[float, float], float] = {}
    for x in values:
        for y in values:
            norm = math.sqrt(x * x + y * y) + 1e-10
            key = (round(x / norm * CIRCLE_SCALE, 6), round(y / norm * CIRCLE_SCALE, 6))  # the 1e-10 splits none
            centres[key] = centres.get(key, 0.0) + 1 / 25
    return np.array(list(centres)), np.array(list(centres.values()))


def circle_log_density(points: np.ndarray) -> np.ndarray:
    """Within radius R of a centre c with weight w: log(w / (2 pi R |v - c|)) (the radius is uniform)."""
    centres, weights = circle_clusters()
    radius = CIRCLE_SCALE * CIRCLE_RADIUS
    distance = np.linalg.norm(points[:, None, :] - centres[None], axis=-1)  # (N, 17)
    nearest = distance.argmin(axis=1)
    r = distance[np.arange(len(points)), nearest]
    with np.errstate(divide="ignore"):
        value = np.log(weights[nearest]) - np.log(2 * np.pi * radius * r)
    return np.where(r <= radius * (1 + 1e-6), value, -np.inf)  # float32 points may round onto the rim


def gaussian_mixture_log_density(points: np.ndarray, centres: np.ndarray, stds: np.ndarray,
                                 log_weights: np.ndarray | None = None) -> np.ndarray:
    """log of a mixture of axis-aligned Gaussians `(N,)`: centres `(K, 2)`, per-axis stds `(K, 2)`,
    log weights `(K,)` (default equal), evaluated a block of points at a time."""
    k = len(centres)
    log_weights = np.full(k, -math.log(k)) if log_weights is None else log_weights
    log_norm = log_weights - np.log(2 * np.pi * stds.prod(axis=1))  # (K,)
    out = np.empty(len(points))
    block = max(1, BLOCK_ELEMENTS // k)
    for i in range(0, len(points), block):
        z = (points[i:i + block, None, :] - centres[None]) / stds[None]  # (B, K, 2)
        out[i:i + block] = logsumexp(log_norm[None] - 0.5 * (z**2).sum(-1), axis=1)
    return out


def _isotropic(centres: np.ndarray, std) -> tuple[np.ndarray, np.ndarray]:
    stds = np.broadcast_to(np.asarray(std, dtype=float).reshape(-1, 1), (len(centres), 2))
    return centres, np.array(stds)


def dino_components() -> tuple[np.ndarray, np.ndarray]:
    """(centres, per-axis stds) `(142, 2)` each of `dino`: every table row, N(0, 0.15^2) per axis,
    then x <- (x / 54 - 1) * 4, y <- (y / 48 - 1) * 4."""
    table = datasaurus_dino()
    scale = np.array(DINO_SCALE)
    return table * scale - 4, np.tile(DINO_NOISE * scale, (len(table), 1))


MOONS_ARCS = (((0.0, 0.0), 0.0, math.pi), ((1.0, 0.5), math.pi, 2 * math.pi))  # (centre, first, last angle)


def _arc_log_density(u: np.ndarray, centre, first: float, last: float) -> np.ndarray:
    """log of the mean over angles a in [first, last] of N(u; centre + (cos a, sin a), s^2 I).

    With u - centre = rho (cos phi, sin phi), the Gaussian is exp(-(rho - 1)^2 / 2s^2) exp(-k (1 -
    cos(a - phi))) / (2 pi s^2), k = rho / s^2, and the integral of exp(k cos(a - phi)) over the
    arc is 2 pi I0(k) times the von Mises probability of [first, last]."""
    from scipy.stats import vonmises  # a quarter of a second to import: only the moons density needs it

    s2 = MOONS_NOISE**2
    v = u - np.asarray(centre)
    rho = np.linalg.norm(v, axis=1)
    phi = np.arctan2(v[:, 1], v[:, 0])
    kappa = np.maximum(rho, 1e-12) / s2
    mass = vonmises.cdf(last, kappa, loc=phi) - vonmises.cdf(first, kappa, loc=phi)
    with np.errstate(divide="ignore"):  # far beyond an arc's ends its share underflows to 0
        log_integral = np.log(2 * np.pi * np.maximum(mass, 0)) + np.log(i0e(kappa))
    return log_integral - (rho - 1) ** 2 / (2 * s2) - math.log(last - first) - math.log(2 * np.pi * s2)


def moons_log_density(points: np.ndarray) -> np.ndarray:
    """Half of the points on each moon, its angle uniform over a half circle, N(0, 0.03^2 I) around
    it (scikit-learn's make_moons); then the stretch (2, 3), whose Jacobian divides the density by 6."""
    stretch, shift = np.array(MOONS_STRETCH), np.array(MOONS_SHIFT)
    u = (points - shift) / stretch
    arcs = [_arc_log_density(u, *arc) for arc in MOONS_ARCS]
    return np.logaddexp(*arcs) - math.log(2) - math.log(stretch.prod())


def rings_radial_log_density(rho: np.ndarray) -> np.ndarray:
    """log p at distance `rho` from the centre: each ring of radius r, weight 1/4, is the angle-average
    of N(r (cos a, sin a), s^2 I) = exp(-(rho^2 + r^2) / 2s^2) I0(rho r / s^2) / (2 pi s^2)."""
    s2 = toy.RING_NOISE**2
    terms = [np.log(i0e(rho * r / s2)) - (rho - r) ** 2 / (2 * s2) for r in toy.RING_RADII]
    return logsumexp(np.stack(terms), axis=0) - math.log(len(toy.RING_RADII) * 2 * np.pi * s2)


def rings_log_density(points: np.ndarray) -> np.ndarray:
    return rings_radial_log_density(np.linalg.norm(points, axis=1))


def _mixture(components: Callable[[], tuple[np.ndarray, np.ndarray]]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda points: gaussian_mixture_log_density(points, *components())


SCALES = np.asarray(toy.SCALES_BLOBS)
LOG_DENSITIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "line": line_log_density,
    "checkerboard": checkerboard_log_density,
    "circle": circle_log_density,
    "moons": moons_log_density,
    "rings": rings_log_density,
    "dino": _mixture(dino_components),
    "8gaussians": _mixture(lambda: _isotropic(toy.eight_gaussians_centres(),
                                              toy.EIGHT_STD / toy.EIGHT_SHRINK)),
    "25gaussians": _mixture(lambda: _isotropic(toy.lattice_centres(),
                                               toy.LATTICE_STD / toy.LATTICE_SHRINK)),
    "scales": _mixture(lambda: _isotropic(SCALES[:, :2], SCALES[:, 2])),
}


def has_density(name: str) -> bool:
    return name in LOG_DENSITIES


def log_density(name: str, points: np.ndarray) -> np.ndarray:
    """The true log-density `(N,)` (nats, data units) of data set `name` at `points` `(N, 2)`; -inf
    outside its support. DataError for a data set without a known density."""
    if name not in LOG_DENSITIES:
        raise DataError(f"no exact density is known for '{name}': exact KL needs one of "
                        f"{', '.join(LOG_DENSITIES)}")
    return LOG_DENSITIES[name](np.asarray(points, dtype=np.float64))


# -- entropies ----------------------------------------------------------------------------------

def _rings_entropy() -> float:
    """-integral of 2 pi rho p(rho) log p(rho) over rho, by the trapezoid rule on a fine grid."""
    top = max(toy.RING_RADII) + 12 * toy.RING_NOISE
    rho = np.linspace(0.0, top, RING_NODES)
    log_p = rings_radial_log_density(rho)
    return float(-np.trapezoid(2 * np.pi * rho * np.exp(log_p) * log_p, rho))


def _circle_entropy() -> float:
    _, weights = circle_clusters()
    radius = CIRCLE_SCALE * CIRCLE_RADIUS
    # H(cluster) + H(point | cluster); E[log r] = log R - 1 for r ~ U(0, R)
    return float(-(weights * np.log(weights)).sum() + math.log(2 * np.pi * radius**2) - 1)


CLOSED_FORM = {"line": lambda: math.log(LINE_AREA), "checkerboard": lambda: math.log(CHECKERBOARD_AREA),
               "circle": _circle_entropy}


def monte_carlo_entropy(name: str, n: int = ENTROPY_POINTS, seed: int = ENTROPY_SEED) -> Entropy:
    """-mean log p over `n` points of the data set's own generator, with its standard error."""
    log_p = log_density(name, load(name, n, seed=seed).astype(np.float64))
    return Entropy(float(-log_p.mean()), float(log_p.std(ddof=1) / math.sqrt(n)), f"Monte Carlo ({n} points)")


@functools.cache
def entropy(name: str) -> Entropy:
    """The differential entropy of data set `name` (computed once per process)."""
    if name in CLOSED_FORM:
        return Entropy(CLOSED_FORM[name](), 0.0, "closed form")
    if name == "rings":
        return Entropy(_rings_entropy(), 0.0, "quadrature")
    return monte_carlo_entropy(name)
