"""Sample metrics: the original study's k-NN KL estimate and grid variance, and sample-quality
metrics between generated samples and data (W2, sliced W2, MMD, precision and recall)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist, pdist

from gridnoise.errors import MetricError


def _points(a: np.ndarray, name: str, metric: str = "the KL estimate") -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 1:
        raise MetricError(f"{name} must be a 2-D array (points x dimensions), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise MetricError(f"{name} contains NaN or infinite values: {metric} is undefined; drop or fix those points")
    return a


class KLEstimator:
    """k-NN estimate of KL(data || samples) in bits with max-norm distances, for fixed data.

    KL = log2(m / (n - 1)) + d * mean_i[log2 nu_k(i) - log2 rho_k(i)], with rho_k(i) the
    distance from data point i to its k-th nearest other data point and nu_k(i) to its k-th
    nearest sample (Wang, Kulkarni & Verdu, IEEE Trans. Inf. Theory 55(5), 2009, in base 2).
    The data's distances rho are computed once, so each sample set costs
    one tree query.

    Ties (repeated rows, e.g. rounded coordinates) would make a distance 0 and the estimate
    infinite, though the copies are one location measured more than once, not a density without
    bound. So a distance is taken to the k-th nearest point *apart* from x_i (at a positive
    distance): copies of x_i's own location do not count, each copy of another location does.
    This changes rho_k(i) only where x_i has a copy, and nu_k(i) only where a sample lies exactly
    on x_i; data without ties get the plain estimate, bit for bit. On coarsely rounded
    data no distance falls below the rounding step, so the estimate compares data and samples at
    that resolution: compare such runs with one another, not with runs on unrounded data.
    """

    def __init__(self, data: np.ndarray, k: int = 5):
        data = _points(data, "data")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MetricError(f"k must be an integer >= 1 (got {k!r})")
        if len(data) <= k:
            raise MetricError(f"the KL estimate needs more than k data points (k={k}, n={len(data)})")
        self.k, self.n, self.d = int(k), len(data), data.shape[1]
        self.data = data
        # k + 1 neighbours among the data: one of them is the point itself, at distance 0; the
        # nearest other one tells whether any point has a copy.
        nearest, self.rho = _nearest_and_kth(cKDTree(data), data, self.k + 1, 2, p=np.inf)
        if (nearest == 0).any():  # ties: the k-th point apart (see the class docstring)
            self.rho = kth_apart(data, data, self.k, p=np.inf)
            if np.isinf(self.rho).any():
                raise MetricError(f"the KL estimate needs k={self.k} data points apart from every data point, but "
                                  f"{int(np.isinf(self.rho).sum())} have fewer: the data hold too few distinct points")

    def __call__(self, samples: np.ndarray) -> float:
        """The estimate of KL(data || samples) in bits (inf where fewer than k samples lie apart
        from some data point: nearly every sample sits exactly on it, a point mass)."""
        y = _points(samples, "samples")
        if y.shape[1] != self.d:
            raise MetricError(f"data and samples differ in dimension ({self.d} vs {y.shape[1]})")
        m = len(y)
        if m < self.k:
            raise MetricError(f"the KL estimate needs at least k samples (k={self.k}, m={m})")
        nearest, nu = _nearest_and_kth(cKDTree(y), self.data, self.k, 1, p=np.inf)
        tied = nearest == 0
        if tied.any():  # samples exactly on a data point: the k-th sample apart from it
            nu[tied] = kth_apart(y, self.data[tied], self.k, p=np.inf)
        return float(np.log2(m / (self.n - 1)) + self.d * np.mean(np.log2(nu) - np.log2(self.rho)))


def _nearest_and_kth(tree: cKDTree, queries: np.ndarray, k: int, first: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Each query's distance to its `first`-th and its k-th nearest point of `tree`, from one query."""
    ks = sorted({first, k})
    dist = tree.query(queries, k=ks, p=p, workers=-1)[0]
    return dist[:, 0], dist[:, -1]


def kth_apart(points: np.ndarray, queries: np.ndarray, k: int, p: float) -> np.ndarray:
    """Distance (Minkowski `p`-norm) from each query `(Q, d)` to its k-th nearest point of `points`
    `(N, d)` apart from it, at a positive distance: copies of the query's own location are not
    neighbours, each copy of another location is one. inf where fewer than k points lie apart.

    Every location holds at least one point, so the k nearest distinct locations apart (plus the
    query's own, at distance 0) always reach the k-th point: one tree query of k + 1 neighbours
    over the distinct locations, their copies counted."""
    locations, copies = np.unique(points, axis=0, return_counts=True)
    dist, index = cKDTree(locations).query(queries, k=k + 1, p=p, workers=-1)
    # a missing neighbour (fewer than k + 1 locations) has index len(locations) and distance inf
    counted = np.append(copies, 0)[index] * (dist > 0)
    reached = np.cumsum(counted, axis=1) >= k
    kth = dist[np.arange(len(queries)), reached.argmax(axis=1)]
    return np.where(reached.any(axis=1), kth, np.inf)


def kl_divergence(data: np.ndarray, samples: np.ndarray, k: int = 5) -> float:
    """k-NN estimate of KL(data || samples) in bits, the data as reference (see `KLEstimator`)."""
    return KLEstimator(data, k)(samples)


def grid_variance(grid: torch.Tensor | np.ndarray) -> float:
    """Unbiased variance over all entries of a grid tensor: the original study's "noise adaptation
    effectiveness"."""
    if isinstance(grid, torch.Tensor):
        values = grid.detach().cpu().double().numpy()
    else:
        values = np.asarray(grid, dtype=np.float64)
    if values.size < 2:
        raise MetricError(f"the variance of a grid needs at least 2 entries (got {values.size})")
    return float(values.var(ddof=1))


# ---- sample quality: generated samples against data, on seeded subsamples ------------------------


def _count(value: int, name: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise MetricError(f"{name} must be an integer >= {least} (got {value!r})")
    return int(value)


def _subsample_pair(samples: np.ndarray, data: np.ndarray, n: int, seed: int, metric: str,
                    least: int = 1) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Validated samples and data, each cut to n points drawn without replacement (a set of at most
    n points is kept whole, in shuffled order), and the generator for any further randomness."""
    x, y = _points(samples, "samples", metric), _points(data, "data", metric)
    n = _count(n, "n", least)
    if x.shape[1] != y.shape[1]:
        raise MetricError(f"samples and data differ in dimension ({x.shape[1]} vs {y.shape[1]})")
    for name, a in (("samples", x), ("data", y)):
        if len(a) < least:
            raise MetricError(f"{metric} needs at least {least} points in {name} (got {len(a)})")
    rng = np.random.default_rng(seed)
    x = x[rng.choice(len(x), min(n, len(x)), replace=False)]
    y = y[rng.choice(len(y), min(n, len(y)), replace=False)]
    return x, y, rng


def wasserstein2(samples: np.ndarray, data: np.ndarray, n: int = 2000, seed: int = 0) -> float:
    """Exact Wasserstein-2 distance (not squared) between uniform weights on seeded subsamples of
    n samples and n data points: sqrt of the optimal transport cost under squared Euclidean cost,
    solved by POT's network simplex. It sees both the shape and the placement of the samples."""
    import ot  # here, not at the top: importing POT takes about 1 s, and every training run imports this module

    x, y, _ = _subsample_pair(samples, data, n, seed, "the W2 distance")
    cost, log = ot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)),
                        cdist(x, y, "sqeuclidean"), numItermax=100_000_000, log=True)
    if log["warning"] is not None:
        raise MetricError(f"the W2 transport problem did not solve ({log['warning']}); use a smaller n")
    return float(np.sqrt(max(cost, 0.0)))


def sliced_wasserstein(samples: np.ndarray, data: np.ndarray, n: int = 4000, projections: int = 100,
                       seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance sqrt(mean over directions theta of W2^2 of the 1-D projections
    onto theta), directions uniform on the unit sphere: a cheap W2 proxy that scales to large n."""
    import ot  # about 1 s to import: see wasserstein2

    x, y, rng = _subsample_pair(samples, data, n, seed, "the sliced W2 distance")
    theta = rng.normal(size=(x.shape[1], _count(projections, "projections")))
    theta /= np.linalg.norm(theta, axis=0)  # drawn here, not by POT, so `seed` alone fixes them
    return float(ot.sliced_wasserstein_distance(x, y, projections=theta, p=2))


def mmd_rbf(samples: np.ndarray, data: np.ndarray, n: int = 1000, seed: int = 0,
            bandwidth: float | None = None) -> float:
    """Squared maximum mean discrepancy with an RBF kernel, on seeded subsamples of n points each.

    k(x, y) = exp(-||x - y||^2 / (2 sigma^2)); sigma is `bandwidth`, by default the median
    heuristic: the median Euclidean distance over all distinct pairs of the pooled subsamples.
    The estimator is the unbiased MMD_u^2 (Gretton et al., JMLR 13, 2012, eq. 3), which leaves out
    the k(x, x) = 1 diagonal: its mean is the true MMD^2 at any n, so it is near 0 (and can be
    slightly negative) for equal distributions rather than a positive bias that shrinks with n.
    """
    x, y, _ = _subsample_pair(samples, data, n, seed, "the unbiased MMD", least=2)
    if bandwidth is None:
        bandwidth = float(np.median(pdist(np.vstack([x, y]))))
    if not np.isfinite(bandwidth) or bandwidth <= 0:
        raise MetricError(f"the MMD bandwidth must be finite and > 0 (got {bandwidth}); "
                          "the median distance is 0 when most points coincide")

    def mean_kernel(a: np.ndarray, b: np.ndarray, diagonal: bool) -> float:
        k = np.exp(cdist(a, b, "sqeuclidean") / (-2 * bandwidth**2))
        if diagonal:  # the within-set terms: mean over the i != j pairs only
            return float((k.sum() - np.trace(k)) / (len(a) * (len(a) - 1)))
        return float(k.mean())

    return mean_kernel(x, x, True) + mean_kernel(y, y, True) - 2 * mean_kernel(x, y, False)


def _kth_neighbour_radii(points: np.ndarray, k: int, apart: bool = False) -> np.ndarray:
    """Each point's distance to its k-th nearest other point (the point itself is the 0-th); with
    `apart`, to its k-th nearest point at another location, copies of its own not counted
    (`kth_apart`: the data's ties, see `precision_recall`)."""
    nearest, radii = _nearest_and_kth(cKDTree(points), points, k + 1, 2, p=2)
    if apart and (nearest == 0).any():
        radii = kth_apart(points, points, k, p=2)
        if np.isinf(radii).any():
            raise MetricError(f"precision and recall need k={k} data points apart from every data point, but "
                              f"{int(np.isinf(radii).sum())} have fewer: the data hold too few distinct points")
    return radii


def _in_any_ball(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Whether each point lies in at least one closed ball ||p - centres[j]|| <= radii[j], exactly.

    Balls are grouped by radius into octaves [2^(e-1), 2^e) and each group is searched to 2^e, so
    every pair within a ball's radius is found. Far fewer pairs come back than n^2: in 2-D, a
    radius-R disc holds O(k) centres whose k-th neighbour is at least R/2 away (cover it with
    radius-R/4 discs: the points of one are all within R/2 of each other, so, ties aside, it holds
    at most k such centres), so about n k pairs per octave, even when a few outliers have huge radii.
    """
    inside = np.zeros(len(points), dtype=bool)
    tree = cKDTree(points)
    # tiny stands in for a zero radius (k + 1 coincident centres): its octave still finds coincident points
    octave = np.frexp(np.maximum(radii, np.finfo(np.float64).tiny))[1]
    for e in np.unique(octave):
        group = np.flatnonzero(octave == e)
        pairs = tree.sparse_distance_matrix(cKDTree(centres[group]), np.ldexp(1.0, e), output_type="ndarray")
        inside[pairs["i"][pairs["v"] <= radii[group][pairs["j"]]]] = True
    return inside


def precision_recall(samples: np.ndarray, data: np.ndarray, k: int = 3, n: int = 10_000,
                     seed: int = 0) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., NeurIPS 2019) on seeded subsamples of n.

    The data manifold is the union of closed balls around the data points, each with radius the
    distance to its k-th nearest other data point; likewise for the samples. Precision is the share
    of samples inside the data manifold (are the samples realistic?), recall the share of data
    points inside the sample manifold (is all of the data covered?). Both depend on n: compare
    values at equal n, and on equal-size sets as in the paper.

    Ties: a data point with k or more copies (rounded coordinates) would get a zero radius, a
    ball that holds only its own location, and continuous samples could never land in it. So a
    data point's radius is the distance to its k-th nearest data point at another location (its
    own copies not counted), as in `KLEstimator`. The samples' copies count as neighbours and keep
    their radii, zero included: exact copies are mass the model put on one point, which recall is
    meant to see. Data without ties get the plain radii.
    """
    k = _count(k, "k")
    x, y, _ = _subsample_pair(samples, data, n, seed, "precision and recall", least=k + 1)
    precision = _in_any_ball(x, y, _kth_neighbour_radii(y, k, apart=True)).mean()
    recall = _in_any_ball(y, x, _kth_neighbour_radii(x, k)).mean()
    return float(precision), float(recall)


def sample_quality(samples: np.ndarray, data: np.ndarray, seed: int = 0) -> dict[str, float]:
    """All sample-quality metrics at their default subsample sizes per set: W2 on n = 2000 (exact
    transport dominates the time), sliced W2 on n = 4000 with 100 directions, the unbiased MMD^2 on
    n = 1000, and precision/recall with k = 3 on n = 10000. About 0.8 s for 10000 samples against
    100000 data points on one core (the first call in a process also imports POT, about 1 s more);
    the same seed gives the same numbers."""
    precision, recall = precision_recall(samples, data, seed=seed)
    return {"w2": wasserstein2(samples, data, seed=seed),
            "sliced_w2": sliced_wasserstein(samples, data, seed=seed),
            "mmd": mmd_rbf(samples, data, seed=seed),
            "precision": precision, "recall": recall}
