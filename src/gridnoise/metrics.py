"""Sample metrics under the seed's names: the k-NN KL estimate and the grid variance."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


class MetricError(ValueError):
    """A metric cannot be computed on the given inputs."""


def _points(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise MetricError(f"{name} must be a 2-D array (points x dimensions), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise MetricError(f"{name} contains NaN or infinite values: the KL estimate is undefined")
    return a


class KLEstimator:
    """k-NN estimate of KL(data || samples) in bits with max-norm distances, for fixed data.

    KL = log2(m / (n - 1)) + d * mean_i[log2 nu_k(i) - log2 rho_k(i)], with rho_k(i) the
    distance from data point i to its k-th nearest other data point and nu_k(i) to its k-th
    nearest sample (Wang, Kulkarni & Verdu 2009; SYSTEM.md section 5). The data's own
    distances rho are computed once, so estimating many sample sets costs one query each.
    """

    def __init__(self, data: np.ndarray, k: int = 5):
        self.data, self.k = _points(data, "data"), k
        if k < 1 or len(self.data) <= k:
            raise MetricError(f"the KL estimate needs k >= 1 and more than k data points (k={k}, n={len(self.data)})")
        # Query k + 1 neighbours among the data: the nearest is the point itself.
        self.rho = cKDTree(self.data).query(self.data, k=[k + 1], p=np.inf, workers=-1)[0][:, 0]
        if (self.rho == 0).any():
            raise MetricError("duplicate data points give zero neighbour distances: the KL estimate is undefined")

    def __call__(self, samples: np.ndarray) -> float:
        y = _points(samples, "samples")
        n, m, d = len(self.data), len(y), self.data.shape[1]
        if y.shape[1] != d:
            raise MetricError(f"data and samples differ in dimension ({d} vs {y.shape[1]})")
        if m < self.k:
            raise MetricError(f"the KL estimate needs at least k={self.k} samples (got {m})")
        nu = cKDTree(y).query(self.data, k=[self.k], p=np.inf, workers=-1)[0][:, 0]
        if (nu == 0).any():
            raise MetricError("a sample coincides with a data point: the KL estimate is undefined")
        return float(np.log2(m / (n - 1)) + d * np.mean(np.log2(nu) - np.log2(self.rho)))


def kl_divergence(data: np.ndarray, samples: np.ndarray, k: int = 5) -> float:
    """k-NN estimate of KL(data || samples) in bits (see `KLEstimator`)."""
    return KLEstimator(data, k)(samples)


def grid_variance(grid: torch.Tensor | np.ndarray) -> float:
    """Unbiased variance over all entries of a grid tensor (the seed's "noise adaptation
    effectiveness")."""
    values = grid.detach().cpu().double().numpy() if isinstance(grid, torch.Tensor) else np.asarray(grid, float)
    return float(values.var(ddof=1))
