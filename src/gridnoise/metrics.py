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


def kl_divergence(data: np.ndarray, samples: np.ndarray, k: int = 5) -> float:
    """k-NN estimate of KL(data || samples) in bits with max-norm distances.

    KL = log2(m / (n - 1)) + d * mean_i[log2 nu_k(i) - log2 rho_k(i)], with rho_k(i) the
    distance from data point i to its k-th nearest other data point and nu_k(i) to its k-th
    nearest sample (Wang, Kulkarni & Verdu 2009; SYSTEM.md section 5).
    """
    x, y = _points(data, "data"), _points(samples, "samples")
    n, m = len(x), len(y)
    if x.shape[1] != y.shape[1]:
        raise MetricError(f"data and samples differ in dimension ({x.shape[1]} vs {y.shape[1]})")
    if k < 1 or n <= k or m < k:
        raise MetricError(f"the KL estimate needs k >= 1, more than k data points and at least k samples "
                          f"(k={k}, n={n}, m={m})")
    # Query k + 1 neighbours among the data: the nearest is the point itself.
    rho = cKDTree(x).query(x, k=[k + 1], p=np.inf, workers=-1)[0][:, 0]
    nu = cKDTree(y).query(x, k=[k], p=np.inf, workers=-1)[0][:, 0]
    if (rho == 0).any() or (nu == 0).any():
        raise MetricError("duplicate points give zero neighbour distances: the KL estimate is undefined")
    d = x.shape[1]
    return float(np.log2(m / (n - 1)) + d * np.mean(np.log2(nu) - np.log2(rho)))


def grid_variance(grid: torch.Tensor | np.ndarray) -> float:
    """Unbiased variance over all entries of a grid tensor (the seed's "noise adaptation
    effectiveness")."""
    values = grid.detach().cpu().double().numpy() if isinstance(grid, torch.Tensor) else np.asarray(grid, float)
    return float(values.var(ddof=1))
