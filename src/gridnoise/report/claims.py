"""What a report may claim from a study's numbers, decided in one place.

- **The primary metric** (`primary_metric`): the one the experiment file declares
  (`[experiment] primary`), else the exact KL where every data set has a known density and every
  run an ODE likelihood, else the variational bound where every run has one, else W2. The
  headline, the verdict and the first figure use it; its tests are Holm-corrected over the runs x
  data sets. Every other metric is *secondary*: Holm-corrected together over every secondary
  metric x run x data set tested (`study_tests`).
- **Estimator floors** (`gridnoise.study.floors`): a difference smaller than the floor's spread is
  called a tie, whatever its p-value, and a k-NN KL below 0 is below the estimator's resolution.
- **Percentages** only where the baseline is clearly above zero (`percent_meaningful`).
- **Timings** are tested only between tasks that ran on one CPU model without sharing its cores
  (`timing_comparable`); otherwise they are described, with the reason.
- **Words**: "bound" for `nll_elbo`, "likelihood" only for `nll_ode` (`measure_word`); a tighter bound
  is not a better likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gridnoise.data.densities import has_density
from gridnoise.registry import LOWER_IS_BETTER, METRICS
from gridnoise.report.blocks import ALPHA, paired_tests
from gridnoise.report.stats import PairedResult, confidence_interval, paired_comparison
from gridnoise.rundir import EVALUATION_FILE, TIMINGS_FILE, read_config, read_json, read_provenance
from gridnoise.study.floors import Floor, read_floors
from gridnoise.study.results import StudyResults

TIMES = ("training_time", "inference_time")
LOAD_MARGIN = 0.5  # a task's load average may exceed its cores by this (the Dask scheduler, the OS)
PERCENT_MARGIN = 0.5  # a percentage needs the baseline's 95% interval within this share of its mean


def primary_metric(results: StudyResults) -> tuple[str, str]:
    """(the study's primary metric, why it is the one)."""
    declared = results.experiment.get("primary")
    if declared and "primary_declared" in results.experiment:  # `gridnoise report --primary` (`judged_by`)
        return declared, f"chosen for this report with --primary; the experiment file declares " \
                         f"{results.experiment['primary_declared']}"
    if declared:
        return declared, "declared by the experiment file"
    everywhere = [(r["name"], d) for r in results.runs for d in results.datasets]
    if all(has_density(d) for d in results.datasets) and \
            all(results.values(r, d, "kl_exact") for r, d in everywhere):
        return "kl_exact", "every data set has a known density and every run an ODE likelihood"
    if all(results.values(r, d, "nll_elbo") for r, d in everywhere):
        why = "not every run has an ODE likelihood" if any(has_density(d) for d in results.datasets) \
            else "no data set has a known density"
        return "nll_elbo", f"{why}, and every run has the variational bound"
    if any("w2" in m for m in results.metrics.values()):
        return "w2", "the study has no likelihood for every run (`gridnoise evaluate` adds them)"
    return "kl_divergence", "the study predates W2"


# Metrics that are one test: each is an affine function of the other on the same seeds (the exact KL is
# 2 nll_ode - H, the bound's KL 2 nll_elbo - H, with H the data set's entropy), so their paired t-tests
# have the same statistic. Only the first present of each pair (the primary, if one is) is tested; the
# other takes its p-value and verdict, so one comparison never gets two verdicts.
TWINS = (("kl_exact", "nll_ode"), ("nll_elbo", "kl_bound"))


def twin(metric: str) -> str | None:
    """The metric whose paired test is `metric`'s own (`TWINS`), or None."""
    return next((b if metric == a else a for a, b in TWINS if metric in (a, b)), None)


def family(results: StudyResults, metric: str) -> str:
    """"primary" or "secondary": how a figure or table labels `metric`'s comparisons (the primary's
    twin, the same test in other units, is primary too)."""
    primary = primary_metric(results)[0]
    return "primary" if metric in (primary, twin(primary)) else "secondary"


def measure_word(metric: str) -> str:
    """How a sentence names what `metric` measures: a bound is never called a likelihood."""
    if metric.endswith("nll_elbo"):
        return "the variational bound"
    if metric.endswith("nll_ode"):
        return "the ODE likelihood"
    return METRICS[metric].title if metric in METRICS else metric


# -- tests ------------------------------------------------------------------------------------


@dataclass
class Claim:
    """One (metric, run, data set) comparison with the baseline and what may be said of it."""

    test: PairedResult
    p_holm: float
    family: str  # "primary", "secondary", or "descriptive" (no test: `reason`)
    verdict: str  # "better", "worse", "tied", or "n/a"
    reason: str = ""  # why "tied" or "n/a", when not plain noise


def floor_of(floors: dict, metric: str, dataset: str) -> Floor | None:
    """The floor of `metric` (or of the sample metric a sampler-prefixed name measures) on `dataset`."""
    entry = floors.get(dataset)
    if not isinstance(entry, dict):
        return None
    if metric in entry:
        return entry[metric]
    # a sampler's metric (`ddim20_sliced_w2`): the longest registered name it ends with (sliced_w2, not w2)
    base = max((m for m in entry if metric.endswith(f"_{m}")), key=len, default=None)
    return entry[base] if base else None


def decide(test: PairedResult, p_holm: float, metric: str, floor: Floor | None) -> tuple[str, str]:
    """(verdict, reason) of a tested comparison: better/worse when Holm-significant at ALPHA and at
    least the floor's spread; tied otherwise; n/a without a test."""
    if test.n < 2 or math.isnan(p_holm):
        return "n/a", "one seed: no test" if test.n == 1 else "no common seed"
    if p_holm >= ALPHA:
        return "tied", ""
    if floor is not None and not math.isnan(floor.spread) and abs(test.mean_diff) < floor.spread:
        return "tied", f"within the estimator's floor spread ({floor.spread:.3g})"
    better = (test.mean_diff < 0) == (metric in LOWER_IS_BETTER)
    return ("better" if better else "worse"), ""


def secondary_metrics(results: StudyResults, primary: str) -> list[str]:
    """The other metrics every report compares with the baseline: comparable ones with a direction
    that the study has, times included (tested only where comparable)."""
    names = results.metric_names()
    return [m.name for m in METRICS.values() if m.name != primary and m.name in names and m.direction
            and m.comparable and m.kind in ("sample", "likelihood", "time")]


def study_tests(results: StudyResults) -> dict[str, dict[tuple[str, str], Claim]]:
    """metric -> (run, data set) -> Claim for the primary and every secondary metric: the primary's
    family Holm-corrected over runs x data sets, the secondaries' over all of them together; timings
    of tasks that are not comparable (`timing_comparable`) are described, not tested."""
    primary, _ = primary_metric(results)
    floors = read_floors(results)
    others = secondary_metrics(results, primary)
    order = [primary, *others]
    led: dict[str, str] = {}  # a twin (`TWINS`) after its metric in `order` -> that metric, whose claims it takes
    for i, metric in enumerate(order):
        follower = twin(metric)
        if metric not in led and follower in order[i + 1:]:
            led[follower] = metric
    claims: dict[str, dict[tuple[str, str], Claim]] = {}
    for family, metrics in (("primary", [primary]), ("secondary", others)):
        pairs, untested = {}, {}
        for metric in metrics:
            for run in results.runs:
                if run["name"] == results.baseline:
                    continue
                for dataset in results.datasets:
                    if metric in led and all(results.values(name, dataset, led[metric])
                                             for name in (results.baseline, run["name"])):
                        continue  # its twin's test, below
                    key = (metric, run["name"], dataset)
                    reference = results.values(results.baseline, dataset, metric)
                    other = results.values(run["name"], dataset, metric)
                    why = timing_comparable(results, run["name"], dataset) if metric in TIMES else ""
                    if why and reference and other:
                        untested[key] = why
                    else:
                        pairs[key] = (reference, other)
        for (metric, run, dataset), (test, p) in paired_tests(pairs).items():
            verdict, reason = decide(test, p, metric, floor_of(floors, metric, dataset))
            claims.setdefault(metric, {})[(run, dataset)] = Claim(test, p, family, verdict, reason)
        for (metric, run, dataset), why in untested.items():
            test = _described(results, metric, run, dataset)
            claims.setdefault(metric, {})[(run, dataset)] = Claim(test, math.nan, "descriptive", "n/a", why)
    for follower, leader in led.items():  # the same test in the follower's own units
        for (name, dataset), claim in claims.get(leader, {}).items():
            if (name, dataset) in claims.get(follower, {}):
                continue  # tested on its own: its twin has no values there
            test = paired_comparison(results.values(results.baseline, dataset, follower),
                                     results.values(name, dataset, follower))
            verdict, reason = decide(test, claim.p_holm, follower, None)
            claims.setdefault(follower, {})[(name, dataset)] = Claim(test, claim.p_holm, claim.family, verdict, reason)
    return claims


def _described(results: StudyResults, metric: str, run: str, dataset: str) -> PairedResult:
    """The paired difference of a comparison that is not tested: its mean and interval, no p-value."""
    test = paired_comparison(results.values(results.baseline, dataset, metric), results.values(run, dataset, metric))
    test.p_value = math.nan
    return test


# -- percentages and floors ---------------------------------------------------------------------


def percent_meaningful(metric: str, baseline: list[float], floor: Floor | None = None,
                       run: list[float] | None = None) -> bool:
    """Whether a change relative to the baseline's mean means something: its 95% interval lies above 0
    with its near end at least (1 - PERCENT_MARGIN) of the mean away from 0 (a negative mean, such as
    a bound below 0 bits/dim, is no base: a worse run's change would read as a fall), the mean is not
    below the estimator's resolution (`below_resolution`: a negative k-NN KL never is a base), and (for a
    sample metric) it lies more than two floor spreads from the floor a perfect model gets. Nor is
    a change to a `run` mean below that resolution a percentage: a k-NN KL that ends below 0 did not
    fall by more than 100%."""
    if len(baseline) < 2 or (run and below_resolution(metric, sum(run) / len(run), floor)):
        return False
    mean, lo, _ = confidence_interval(baseline)
    if math.isnan(lo) or lo <= 0 or lo < (1 - PERCENT_MARGIN) * mean:
        return False
    if below_resolution(metric, mean, floor):
        return False
    return floor is None or math.isnan(floor.spread) or abs(mean - floor.mean) > 2 * floor.spread


def below_resolution(metric: str, mean: float, floor: Floor | None) -> bool:
    """Whether a value cannot be told from a perfect model's: a k-NN KL below 0, or any sample
    metric within the floor's spread of the floor (on its worse side)."""
    if metric.endswith("kl_divergence") and mean < 0:
        return True
    if floor is None or math.isnan(floor.spread) or metric not in LOWER_IS_BETTER and \
            not any(metric.endswith(f"_{m}") for m in LOWER_IS_BETTER):
        return False
    return mean < floor.mean + floor.spread


# -- timings -------------------------------------------------------------------------------------


def timing_comparable(results: StudyResults, run: str, dataset: str) -> str:
    """Why the times of `run` and the baseline on `dataset` cannot be tested against each other
    ("" when they can): their tasks ran on different CPU models, shared cores with other work (load
    average above their cores + LOAD_MARGIN), or did not record their load."""
    return _timing_problem([results.run_dir(name, dataset, seed) for name in (results.baseline, run)
                            for seed in results.seeds(name, dataset)])


def study_timing_problem(results: StudyResults) -> str:
    """`timing_comparable`'s reason over every finished task of the study ("" when there is none)."""
    return _timing_problem([results.run_dir(*key) for key in sorted(results.metrics)])


def _timing_problem(directories: list[Path]) -> str:
    cpus, shared, unknown = set(), 0, 0
    for directory in directories:
        record = read_provenance(directory)
        cpus.add((record or {}).get("gpu") or (record or {}).get("cpu"))
        path = directory / TIMINGS_FILE
        timings = read_json(path, TIMINGS_FILE) if path.is_file() else {}
        if "load_average_max" not in timings:
            unknown += 1
        elif timings["load_average_max"] > timings["cores"] + LOAD_MARGIN:
            shared += 1
    tasks = len(directories)
    if None in cpus or len(cpus) > 1:
        return "the tasks ran on different or unrecorded processors"
    if unknown:
        return f"{unknown} of {tasks} tasks did not record the machine's load (trained before it was recorded)"
    if shared:
        return f"{shared} of {tasks} tasks shared their cores with other work (load average above their cores)"
    return ""


# -- what the intervals cover ------------------------------------------------------------------------


def variation_sources(results: StudyResults) -> str:
    """A sentence on which sources of variation the study's intervals over seeds cover."""
    data_seeds, follows = set(), False
    for key in sorted(results.metrics):
        cfg = read_config(results.run_dir(*key))
        data_seeds.add(cfg.training_data_seed)
        follows |= cfg.data.follow_seed
    covered = ["the network's initialisation, the training noise and batches, and the samples (the run seed)"]
    if follows and len(data_seeds) > 1:
        covered.append("the training data's draw (`data.follow_seed`: each seed trains on its own draw)")
        data = ""
    else:
        data = (" They do not cover the training data's sampling: every seed trains on the same draw of "
                "each data set (set `data.follow_seed = true` to draw it per seed).")
    evaluated = [e for k in sorted(results.metrics) if (e := _evaluation(results, k))]
    if evaluated and all("heldout_seed" in e for e in evaluated):
        covered.append("the held-out points of the likelihoods (each seed has its own draw)")
    elif evaluated:
        data += (" The likelihoods' intervals leave out the held-out points' sampling: they were measured on one "
                 "draw shared by every seed (`gridnoise evaluate` again measures each seed on its own).")
    n = results.max_seeds()
    return (f"Intervals are 95% t-intervals over up to {n} seeds; they cover " + "; ".join(covered) + "." + data)


def _evaluation(results: StudyResults, key) -> dict:
    path = results.run_dir(*key) / EVALUATION_FILE
    return read_json(path, EVALUATION_FILE) if path.is_file() else {}
