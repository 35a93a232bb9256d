"""Statistics for comparing runs over seeds: confidence intervals, paired tests, convergence."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# scipy.stats (a quarter of a second to import) is imported where it is used: a training task and every
# command that draws a run's figures import this module, and only a report needs the t distribution.

SMOOTHING_WINDOW = 100  # steps in the moving average of training losses (1% of the reference 10000 steps)
CONVERGENCE_TOL = 0.05  # "converged" = smoothed loss within 5% of its final smoothed value


def confidence_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval of the mean; lo = hi = nan with a single value."""
    arr = np.asarray(list(values), dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, math.nan, math.nan
    from scipy import stats as sps

    half = sps.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr))
    return mean, mean - half, mean + half


@dataclass
class PairedResult:
    """Difference other - baseline over the seeds both have."""

    n: int
    mean_diff: float
    ci_lo: float
    ci_hi: float
    p_value: float  # two-sided paired t-test
    relative_change: float  # mean_diff / mean(baseline)
    stderr: float = math.nan  # standard error of mean_diff (sd of the differences / sqrt(n)); nan with n < 2


def paired_comparison(baseline: dict[int, float], other: dict[int, float], level: float = 0.95) -> PairedResult:
    """Paired t comparison of `other` against `baseline` ({seed: value}) on their common seeds.

    With fewer than two common seeds the p-value and interval are nan; identical differences on
    every seed (no spread) give p = 0, or 1 when they are all zero.
    """
    seeds = sorted(set(baseline) & set(other))
    if not seeds:
        return PairedResult(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    a = np.array([baseline[s] for s in seeds], dtype=float)
    b = np.array([other[s] for s in seeds], dtype=float)
    diff = b - a
    mean, lo, hi = confidence_interval(diff, level)
    if len(seeds) < 2:
        p = math.nan
    elif np.all(diff == diff[0]):  # zero spread: the t statistic is undefined
        p = 1.0 if diff[0] == 0 else 0.0
    else:
        from scipy import stats as sps

        p = float(sps.ttest_rel(b, a).pvalue)
    base = a.mean()
    stderr = float(diff.std(ddof=1) / math.sqrt(len(seeds))) if len(seeds) > 1 else math.nan
    return PairedResult(len(seeds), mean, lo, hi, p, mean / base if base else math.nan, stderr)


def holm_interval(test: PairedResult, holm_p: float, alpha: float) -> tuple[float, float]:
    """(lo, hi): the paired t-interval of `test.mean_diff` that agrees with its Holm-adjusted p-value
    `holm_p`: it excludes 0 exactly when holm_p < alpha, as the verdict and the forest plots' filled
    markers do, where the plain 95% interval can exclude 0 for a comparison Holm calls not significant.

    Its level is 1 - alpha * p / holm_p (p = test.p_value, the raw two-sided p): the interval excludes 0
    iff |t| exceeds the t quantile at that level iff p < alpha * p / holm_p iff holm_p < alpha. As
    holm_p >= p it is never narrower than the unadjusted 1 - alpha interval. Zero spread gives the
    point (mean, mean); a p-value so small it is 0 (but a spread) gives the 1 - alpha interval; fewer
    than two seeds, nan.
    """
    p, mean, se = test.p_value, test.mean_diff, test.stderr
    if test.n < 2 or math.isnan(p) or math.isnan(holm_p) or math.isnan(se):
        return math.nan, math.nan
    if se == 0:
        return mean, mean
    tail = alpha / 2 * (p / holm_p if holm_p > 0 else 1.0)  # each tail of 1 - level
    from scipy import stats as sps

    half = float(sps.t.isf(tail, test.n - 1)) * se
    return mean - half, mean + half


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order; nan stays nan and is not counted."""
    finite = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    finite.sort()
    adjusted = [math.nan] * len(p_values)
    running, m = 0.0, len(finite)
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def smooth(values: np.ndarray, window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Trailing moving average over `window` steps; the first window-1 entries average what is available."""
    values = np.asarray(values, dtype=float)
    csum = np.cumsum(values)
    out = csum.copy()
    out[window:] = csum[window:] - csum[:-window]
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return out / counts


def convergence_step(losses, window: int = SMOOTHING_WINDOW, tol: float = CONVERGENCE_TOL) -> int:
    """First training step (1-based) whose smoothed loss is within `tol` (relative) of the final smoothed loss.

    The loss is smoothed by a trailing moving average over `window` steps (the whole run if shorter).
    """
    smoothed = smooth(losses, min(window, len(losses)))
    final = smoothed[-1]
    inside = np.abs(smoothed - final) <= tol * abs(final)
    return int(np.argmax(inside)) + 1
