import math

import numpy as np
import pytest
from scipy import stats as sps

from gridnoise.stats import confidence_interval, convergence_step, holm, paired_comparison, smooth


def test_confidence_interval_by_hand():
    mean, lo, hi = confidence_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    assert math.isnan(confidence_interval([5.0])[1])


def test_paired_comparison_known_difference():
    base = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 9: 100.0}  # seed 9 has no partner and is ignored
    other = {0: 0.9, 1: 1.7, 2: 2.8, 3: 3.6}
    r = paired_comparison(base, other)
    diff = np.array([-0.1, -0.3, -0.2, -0.4])
    assert r.n == 4 and r.mean_diff == pytest.approx(diff.mean())
    assert r.p_value == pytest.approx(sps.ttest_1samp(diff, 0).pvalue)
    assert r.ci_hi < 0 and r.relative_change == pytest.approx(diff.mean() / 2.5)
    single = paired_comparison({0: 1.0}, {0: 2.0})
    assert single.n == 1 and math.isnan(single.p_value)


def test_holm_by_hand():
    # sorted: 0.01*4 = 0.04, 0.02*3 = 0.06, 0.03*2 = 0.06, 0.5*1 -> 0.5
    assert holm([0.03, 0.01, float("nan"), 0.5, 0.02]) == pytest.approx([0.06, 0.04, float("nan"), 0.5, 0.06],
                                                                         nan_ok=True)


def test_smoothing_and_convergence_on_exponential_decay():
    assert smooth(np.array([2.0, 4.0, 6.0, 8.0]), window=2).tolist() == [2.0, 3.0, 5.0, 7.0]
    steps = np.arange(1, 5001)
    losses = 1.0 + np.exp(-steps / 500)
    # final f = 1 + e^-10; within 5% once e^(-s/500) - e^-10 <= 0.05 f, i.e. s >= -500 ln(0.05 f + e^-10)
    final = 1 + math.exp(-10)
    expected = math.ceil(-500 * math.log(0.05 * final + math.exp(-10)))
    got = convergence_step(losses, window=1)
    assert abs(got - expected) <= 1
    assert convergence_step(losses, window=100) > got  # smoothing lags the raw curve
