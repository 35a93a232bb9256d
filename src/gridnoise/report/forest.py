"""What a forest plot shows for each non-baseline run and data set, for both renderers (the PNG
`study_figures.forest_figure` and report.html's): the paired comparison with the baseline, its Holm
verdict and its two intervals, or in a few words why there is none.

Two intervals, so the bar a reader sees agrees with the marker: the thick bar is the
Holm-compatible interval (`stats.holm_interval`), which excludes 0 exactly when the marker is filled
(Holm p < ALPHA); the thin line is the unadjusted 95% t-interval, as the tables print it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridnoise.registry import METRICS
from gridnoise.report.blocks import ALPHA
from gridnoise.report.claims import study_tests
from gridnoise.report.likelihood import ode_absent
from gridnoise.report.stats import PairedResult, holm_interval
from gridnoise.study.results import StudyResults

HOLM_BAR = "thick: Holm-compatible interval (excludes 0 iff filled)"  # the legends' words for the two intervals
PLAIN_LINE = "thin: unadjusted 95% interval"


@dataclass
class ForestRow:
    """One run on one data set of a forest plot."""

    test: PairedResult | None  # None: no comparison at all
    holm_p: float  # Holm-adjusted p (nan without a test)
    holm_lo: float  # the Holm-compatible interval (nan without one)
    holm_hi: float
    reason: str  # why the row has no marker or no interval, for the reader; "" when it has both

    @property
    def significant(self) -> bool:
        return self.test is not None and self.test.n > 1 and not math.isnan(self.holm_p) and self.holm_p < ALPHA

    @property
    def has_value(self) -> bool:
        return self.test is not None and not math.isnan(self.test.mean_diff)


def missing_reason(results: StudyResults, run: str, dataset: str, metric: str) -> str:
    """Why (run, data set) has no paired difference in `metric`, in a few words."""
    if not results.seeds(run, dataset):
        return "no finished seed"
    from_ode = metric in METRICS and METRICS[metric].from_ode
    for who, name in (("", run), ("baseline: ", results.baseline)):
        if results.values(name, dataset, metric):
            continue
        if from_ode and (why := ode_absent(results, name, dataset)) != "-":
            return who + why.removeprefix("none: ")
        evaluated = metric in METRICS and METRICS[metric].source == "evaluate"
        return who + ("not evaluated" if evaluated else "not recorded") + f" on {dataset}"
    return "no seed in common with the baseline"


def forest_rows(results: StudyResults, metric: str, claims: dict | None = None) -> dict[tuple[str, str], ForestRow]:
    """(run, data set) -> ForestRow for every non-baseline run and data set of the study, in order, with the
    Holm correction of the metric's family (primary or secondary) as the tables have it (`claims`:
    `claims.study_tests`, computed when not given)."""
    tests = (claims if claims is not None else study_tests(results)).get(metric, {})
    found = {key: (claim.test, claim.p_holm) for key, claim in tests.items()}
    rows = {}
    for run in (r["name"] for r in results.runs if r["name"] != results.baseline):
        for dataset in results.datasets:
            if (run, dataset) not in found or found[(run, dataset)][0].n == 0:
                rows[(run, dataset)] = ForestRow(None, math.nan, math.nan, math.nan,
                                                 missing_reason(results, run, dataset, metric))
                continue
            test, p = found[(run, dataset)]
            lo, hi = holm_interval(test, p, ALPHA)
            reason = ""
            if test.n == 1:
                reason = "one seed: no interval, no test"
            elif math.isnan(test.mean_diff):
                reason = "not a number on some seed"
            rows[(run, dataset)] = ForestRow(test, p, lo, hi, reason)
    return rows
