"""What a report may claim: verdicts against floors, percentages, the primary metric's choice."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from gridnoise.report.claims import below_resolution, decide, measure_word, percent_meaningful
from gridnoise.report.stats import paired_comparison
from gridnoise.study.floors import Floor


def test_a_significant_difference_smaller_than_the_floor_spread_is_a_tie():
    base = {s: 1.0 + 0.01 * s for s in range(5)}
    test = paired_comparison(base, {s: v - 0.02 + 0.0001 * s for s, v in base.items()})
    assert test.p_value < 1e-4
    assert decide(test, test.p_value, "w2", None) == ("better", "")
    tie = ("tied", "within the estimator's floor spread (0.05)")
    assert decide(test, test.p_value, "w2", Floor(0.3, 0.05, 5)) == tie
    assert decide(test, test.p_value, "w2", Floor(0.3, 0.01, 5)) == ("better", "")
    assert decide(test, test.p_value, "precision", None)[0] == "worse"  # higher is better
    assert decide(test, 0.2, "w2", None) == ("tied", "")
    one = paired_comparison({0: 1.0}, {0: 0.5})
    assert decide(one, math.nan, "w2", None) == ("n/a", "one seed: no test")


@pytest.mark.parametrize("values, expected", [
    ([0.35, 0.36, 0.34, 0.355, 0.35], True),  # clearly above zero
    ([-0.031, 0.01, -0.05, 0.002, -0.03], False),  # the schedules report's baseline KL on moons
    ([0.02, 0.001, 0.04, 0.005, 0.03], False),  # positive, but its interval is wide against its mean
    ([0.4], False),  # one seed: no interval
])
def test_percentages_only_of_a_baseline_clearly_above_zero(values, expected):
    assert percent_meaningful("w2", values) is expected
    mean, sem = np.mean(values), sps.sem(values) if len(values) > 1 else math.nan
    if expected:  # the rule, recomputed: the interval's near end at least half the mean from 0
        lo = mean - sps.t.ppf(0.975, len(values) - 1) * sem
        assert lo >= 0.5 * mean


def test_a_baseline_below_zero_gets_no_percentage_so_a_worse_run_never_reads_as_a_fall():
    """The tuned study's circle: the baseline's bound is -0.345 bits/dim, clearly away from 0, and a
    grid's +0.009 bits/dim (worse) was written as a change of -2.5%."""
    base = [-0.36, -0.35, -0.34, -0.335, -0.34]
    worse = [b + 0.009 for b in base]
    assert not percent_meaningful("nll_elbo", base, None, worse)
    assert percent_meaningful("nll_elbo", [-b for b in base], None, [-w for w in worse])  # the same spread above 0


def test_a_baseline_near_its_floor_gets_no_percentage_and_a_negative_knn_kl_is_below_resolution():
    values = [0.05, 0.052, 0.049, 0.051, 0.05]
    assert percent_meaningful("w2", values)
    assert not percent_meaningful("w2", values, Floor(0.045, 0.004, 5))  # within a few spreads of a perfect model
    negative = [-0.031, -0.030, -0.027, -0.022, -0.015]  # clearly away from 0, but below it
    assert not percent_meaningful("w2", negative) and not percent_meaningful("kl_divergence", negative)
    # the schedules report's moons: a baseline KL well above 0, a run's KL below 0 - no "-131.6%"
    base = [0.097, 0.08, 0.11, 0.09, 0.105]
    assert percent_meaningful("kl_divergence", base, None, [0.12, 0.13, 0.11, 0.12, 0.125])
    assert not percent_meaningful("kl_divergence", base, None, [-0.031, -0.03, -0.027, -0.035, -0.032])
    assert below_resolution("kl_divergence", -0.031, None)
    assert below_resolution("ddim20_kl_divergence", -0.01, None)
    assert not below_resolution("kl_divergence", 0.3, Floor(0.02, 0.002, 5))
    assert below_resolution("w2", 0.11, Floor(0.1, 0.02, 5)) and not below_resolution("w2", 0.2, Floor(0.1, 0.02, 5))
    assert not below_resolution("precision", 0.5, Floor(0.99, 0.01, 5))  # higher is better: no such floor


def test_a_metric_finds_its_own_floor_and_a_samplers_metric_its_base_metrics():
    from gridnoise.report.claims import floor_of

    floors = {"moons": {"w2": Floor(0.1, 0.01, 5), "sliced_w2": Floor(0.05, 0.005, 5)}, "dino": "a data file"}
    assert floor_of(floors, "sliced_w2", "moons").mean == 0.05 and floor_of(floors, "w2", "moons").mean == 0.1
    assert floor_of(floors, "ddim20_sliced_w2", "moons").mean == 0.05
    assert floor_of(floors, "ddim20_clip5_w2", "moons").mean == 0.1
    assert floor_of(floors, "w2", "dino") is None and floor_of(floors, "mmd", "moons") is None


def test_words_match_the_measure():
    assert measure_word("nll_elbo") == measure_word("cell_nll_elbo") == "the variational bound"
    assert measure_word("nll_ode") == "the ODE likelihood" and measure_word("w2") == "Wasserstein-2"
