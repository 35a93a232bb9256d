import math

import numpy as np
import pytest
from scipy import stats as sps

from gridnoise.report.stats import (
    SMOOTHING_WINDOW,
    confidence_interval,
    convergence_step,
    holm,
    holm_interval,
    paired_comparison,
    smooth,
)

ALPHA = 0.05


def test_confidence_interval_by_hand():
    mean, lo, hi = confidence_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert (mean, lo, hi) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    single = confidence_interval([5.0])
    assert single[0] == 5.0 and math.isnan(single[1]) and math.isnan(single[2])


def test_confidence_interval_level_matches_scipy():
    values = [0.31, 0.35, 0.29, 0.40, 0.33]
    lo, hi = sps.t.interval(0.9, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert confidence_interval(values, level=0.9)[1:] == pytest.approx((lo, hi))


def test_paired_comparison_known_difference():
    base = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 9: 100.0}  # seed 9 has no partner and is ignored
    other = {0: 0.9, 1: 1.7, 2: 2.8, 3: 3.6}
    r = paired_comparison(base, other)
    diff = np.array([-0.1, -0.3, -0.2, -0.4])
    assert r.n == 4 and r.mean_diff == pytest.approx(diff.mean())
    assert r.p_value == pytest.approx(sps.ttest_rel([0.9, 1.7, 2.8, 3.6], [1.0, 2.0, 3.0, 4.0]).pvalue)
    lo, hi = sps.t.interval(0.95, 3, loc=diff.mean(), scale=sps.sem(diff))
    assert (r.ci_lo, r.ci_hi) == pytest.approx((lo, hi)) and r.ci_hi < 0
    assert r.relative_change == pytest.approx(diff.mean() / 2.5)


def test_paired_comparison_degenerate_cases():
    single = paired_comparison({0: 1.0}, {0: 2.0})
    assert single.n == 1 and single.mean_diff == 1.0 and math.isnan(single.p_value) and math.isnan(single.ci_lo)
    disjoint = paired_comparison({0: 1.0}, {1: 2.0})
    assert disjoint.n == 0 and math.isnan(disjoint.mean_diff)
    same = paired_comparison({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert same.p_value == 1.0 and same.mean_diff == 0.0
    assert math.isnan(paired_comparison({0: 0.0, 1: 0.0}, {0: 1.0, 1: 1.5}).relative_change)


def test_paired_comparison_records_the_standard_error():
    diff = np.array([-0.1, -0.3, -0.2, -0.4])
    r = paired_comparison({s: 1.0 for s in range(4)}, {s: 1.0 + d for s, d in enumerate(diff)})
    assert r.stderr == pytest.approx(sps.sem(diff))
    assert math.isnan(paired_comparison({0: 1.0}, {0: 2.0}).stderr)


# Differences (other - baseline) per seed of four comparisons Holm-corrects together; raw p-values
# about 3e-5, 0.013, 0.031 and 0.83, Holm-adjusted 1.4e-4, 0.040, 0.062 and 0.83.
DIFFERENCES = {
    "strong": [-0.1, -0.09, -0.11, -0.1, -0.12],
    "adjusted but significant": [-0.05, -0.02, -0.04, -0.03, -0.01],
    "raw 95% CI excludes 0, Holm does not": [0.05, 0.02, 0.04, 0.0, 0.03],
    "null": [0.02, -0.03, 0.01, 0.0, -0.01],
}


def test_holm_interval_excludes_zero_exactly_when_holm_finds_a_difference():
    base = {s: 1.0 + 0.1 * s for s in range(5)}
    tests = {k: paired_comparison(base, {s: base[s] + d for s, d in enumerate(diff)})
             for k, diff in DIFFERENCES.items()}
    adjusted = dict(zip(tests, holm([t.p_value for t in tests.values()])))
    for key, test in tests.items():
        diff = np.array(DIFFERENCES[key])
        p, p_holm = sps.ttest_1samp(diff, 0.0).pvalue, adjusted[key]
        level = 1 - ALPHA * p / p_holm  # closed form: the t-interval at this level
        expected = sps.t.interval(level, len(diff) - 1, loc=diff.mean(), scale=sps.sem(diff))
        lo, hi = holm_interval(test, p_holm, ALPHA)
        assert (lo, hi) == pytest.approx(expected, rel=1e-9), key
        assert (lo > 0 or hi < 0) == (p_holm < ALPHA), key
        assert lo <= test.ci_lo and hi >= test.ci_hi  # never narrower than the unadjusted 95% interval
    # the case the forest plots drew misleadingly: its 95% interval excludes 0, yet Holm finds nothing
    disagreeing = tests["raw 95% CI excludes 0, Holm does not"]
    assert disagreeing.ci_lo > 0 and adjusted["raw 95% CI excludes 0, Holm does not"] >= ALPHA
    lo, hi = holm_interval(disagreeing, adjusted["raw 95% CI excludes 0, Holm does not"], ALPHA)
    assert lo < 0 < hi
    assert adjusted["adjusted but significant"] > tests["adjusted but significant"].p_value  # wider, still off 0
    assert [adjusted[k] < ALPHA for k in DIFFERENCES] == [True, True, False, False]


def test_holm_interval_degenerate_cases():
    single = paired_comparison({0: 1.0}, {0: 2.0})
    assert all(math.isnan(v) for v in holm_interval(single, math.nan, ALPHA))
    shifted = paired_comparison({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.5})  # the same difference on both seeds: p = 0
    assert holm_interval(shifted, 0.0, ALPHA) == (0.5, 0.5)
    same = paired_comparison({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    assert holm_interval(same, 1.0, ALPHA) == (0.0, 0.0)  # contains 0, as Holm p = 1 says


def test_holm_by_hand():
    # sorted: 0.01*4 = 0.04, 0.02*3 = 0.06, 0.03*2 = 0.06, 0.5*1 -> 0.5
    assert holm([0.03, 0.01, float("nan"), 0.5, 0.02]) == pytest.approx([0.06, 0.04, float("nan"), 0.5, 0.06],
                                                                         nan_ok=True)
    # step-down stays monotone and is capped at 1: 0.04*2 = 0.08, then max(0.08, 0.6) = 0.6
    assert holm([0.6, 0.04]) == pytest.approx([0.6, 0.08])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []


def test_smoothing_and_convergence_on_exponential_decay():
    assert smooth(np.array([2.0, 4.0, 6.0, 8.0]), window=2).tolist() == [2.0, 3.0, 5.0, 7.0]
    steps = np.arange(1, 5001)
    losses = 1.0 + np.exp(-steps / 500)
    # final f = 1 + e^-10; within 5% once e^(-s/500) - e^-10 <= 0.05 f, i.e. s >= -500 ln(0.05 f + e^-10)
    final = 1 + math.exp(-10)
    expected = math.ceil(-500 * math.log(0.05 * final + math.exp(-10)))
    assert convergence_step(losses, window=1) == expected


def test_convergence_with_the_default_window():
    # Trailing mean of e^(-k/tau) over k = s-w+1..s is A e^(-s/tau), A = (e^(w/tau) - 1) / (w (e^(1/tau) - 1)).
    tau, n, w = 300.0, 4000, SMOOTHING_WINDOW
    losses = 1.0 + np.exp(-np.arange(1, n + 1) / tau)
    a = (math.exp(w / tau) - 1) / (w * (math.exp(1 / tau) - 1))
    final = 1 + a * math.exp(-n / tau)
    expected = math.ceil(-tau * math.log(0.05 * final / a + math.exp(-n / tau)))
    assert expected > w and convergence_step(losses) == expected
    assert convergence_step(losses) > convergence_step(losses, window=1)  # smoothing lags the raw curve
    assert convergence_step(np.ones(10)) == 1  # flat: converged from the start
