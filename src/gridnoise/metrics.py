"""Sample metrics under the seed's names: the k-NN KL estimate and the grid variance."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


class MetricError(ValueError):
    """A metric cannot be computed on the given inputs; the one-line message says why."""


def _points(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 1:
        raise MetricError(f"{name} must be a 2-D array (points x dimensions), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise MetricError(f"{name} contains NaN or infinite values: the KL estimate is undefined")
    return a


class KLEstimator:
    """k-NN estimate of KL(data || samples) in bits with max-norm distances, for fixed data.

    KL = log2(m / (n - 1)) + d * mean_i[log2 nu_k(i) - log2 rho_k(i)], with rho_k(i) the
    distance from data point i to its k-th nearest other data point and nu_k(i) to its k-th
    nearest sample (Wang, Kulkarni & Verdu, IEEE Trans. Inf. Theory 55(5), 2009, in base 2;
    SYSTEM.md section 5). The data's distances rho are computed once, so each sample set costs
    one tree query.
    """

    def __init__(self, data: np.ndarray, k: int = 5):
        data = _points(data, "data")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MetricError(f"k must be an integer >= 1 (got {k!r})")
        if len(data) <= k:
            raise MetricError(f"the KL estimate needs more than k data points (k={k}, n={len(data)})")
        self.k, self.n, self.d = int(k), len(data), data.shape[1]
        self.data = data
        # k + 1 neighbours among the data: one of them is the point itself, at distance 0.
        self.rho = cKDTree(data).query(data, k=[self.k + 1], p=np.inf, workers=-1)[0][:, 0]
        if (self.rho == 0).any():
            raise MetricError("duplicate data points give a zero neighbour distance: "
                              "the KL estimate is undefined for duplicate points")

    def __call__(self, samples: np.ndarray) -> float:
        """The estimate of KL(data || samples) in bits."""
        y = _points(samples, "samples")
        if y.shape[1] != self.d:
            raise MetricError(f"data and samples differ in dimension ({self.d} vs {y.shape[1]})")
        m = len(y)
        if m < self.k:
            raise MetricError(f"the KL estimate needs at least k samples (k={self.k}, m={m})")
        nu = cKDTree(y).query(self.data, k=[self.k], p=np.inf, workers=-1)[0][:, 0]
        if (nu == 0).any():
            raise MetricError("a sample coincides with a data point (zero distance): "
                              "the KL estimate is undefined for duplicate points")
        return float(np.log2(m / (self.n - 1)) + self.d * np.mean(np.log2(nu) - np.log2(self.rho)))


def kl_divergence(data: np.ndarray, samples: np.ndarray, k: int = 5) -> float:
    """k-NN estimate of KL(data || samples) in bits, the data as reference (see `KLEstimator`)."""
    return KLEstimator(data, k)(samples)


def grid_variance(grid: torch.Tensor | np.ndarray) -> float:
    """Unbiased variance over all entries of a grid tensor: the seed's "noise adaptation
    effectiveness" (SYSTEM.md section 4)."""
    if isinstance(grid, torch.Tensor):
        values = grid.detach().cpu().double().numpy()
    else:
        values = np.asarray(grid, dtype=np.float64)
    if values.size < 2:
        raise MetricError(f"the variance of a grid needs at least 2 entries (got {values.size})")
    return float(values.var(ddof=1))
