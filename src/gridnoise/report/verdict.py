"""A report's first screen: the study's question, its primary metric, a verdict table and one figure.

For a study with several seeds: every run against the baseline on each data set, on the primary
metric (`claims.primary_metric`): better, worse, tied, or not measurable and why, with what the
intervals cover and any run that is not what its name says (`degeneracy`). For a one-seed study of
the original study's variants (`gridnoise reproduce`, the README's main job) the question is whether
the original log is reproduced: its numbers beside ours, and the seed-to-seed spread a five-seed
study of the same runs gives (`experiments/original_five_seeds.toml`), since one seed cannot tell a
variant from the baseline.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from gridnoise.registry import LOWER_IS_BETTER, metric_title
from gridnoise.report.blocks import ALPHA, Block, Figure, Section, Table, fmt
from gridnoise.report.claims import (
    Claim,
    below_resolution,
    floor_of,
    measure_word,
    primary_metric,
    variation_sources,
)
from gridnoise.report.stats import confidence_interval
from gridnoise.rundir import read_config
from gridnoise.study.floors import read_floors
from gridnoise.study.results import StudyResults

FOREST_PREFIX = "forest_"  # figures named forest_<metric>.png
FIRST_SCREEN = "Verdict"  # the title of a study's first screen
REPRODUCTION = "Is the original study reproduced?"  # ... of a one-seed study of the original runs
REFERENCE_FILE = "original_five_seeds.toml"  # a five-seed study of the original runs: mean and 95% CI


def question(results: StudyResults, primary: str) -> str:
    """The study's question: the experiment file's `question`, else whether any run beats the baseline."""
    asked = results.experiment.get("question")
    if asked:
        return asked
    return (f"Does any run differ from the baseline ({results.label(results.baseline)}) on "
            f"{measure_word(primary)}, on {', '.join(results.datasets)}?")


def cell(claim: Claim | None, why_absent: str = "not measured") -> str:
    """A verdict table cell: the verdict and the mean difference, or why there is none."""
    if claim is None:
        return f"not measurable: {why_absent}"
    if claim.verdict == "n/a":
        return f"not measurable: {claim.reason}"
    text = f"{claim.verdict} ({claim.test.mean_diff:+.3g})"
    return f"{text}, {claim.reason}" if claim.reason else text


def verdict_section(results: StudyResults, claims: dict, notes: dict, figures: list[Path],
                    absent: dict[tuple[str, str], str]) -> Section:
    """The first screen of a study with several seeds; see the module docstring. `claims`:
    `claims.study_tests`; `notes`: `degeneracy.degeneracy_notes`; `absent`: (run, data set) -> why it
    has no primary value."""
    primary, why = primary_metric(results)
    tests = claims.get(primary, {})
    lower = "lower" if primary in LOWER_IS_BETTER else "higher"
    blocks: list[Block] = [
        f"**Question.** {question(results, primary)}",
        f"**Primary metric: {metric_title(primary)}** ({why}; {lower} is better). Each run is compared with the "
        f"baseline on the seeds both have: mean difference (run - baseline), paired t-test, Holm-corrected at "
        f"{ALPHA} over the {len(tests)} (run, data set) pairs. `tied`: not significant, or smaller than the "
        "estimator's floor spread. Every other metric below is secondary, Holm-corrected over all secondary "
        "metrics x runs x data sets together.",
        variation_sources(results)]
    if primary == "nll_elbo":
        blocks.append("The variational bound is an upper bound on -log p: a run with a tighter bound does not "
                      "have a better likelihood unless its ODE likelihood says so.")
    rows = []
    for run in results.runs:
        if run["name"] == results.baseline:
            continue
        cells = [cell(tests.get((run["name"], d)), absent.get((run["name"], d), "not measured"))
                 for d in results.datasets]
        remarks = [f"{d}: {'; '.join(notes[(run['name'], d)])}" for d in results.datasets if (run["name"], d) in notes]
        rows.append([f"{run['name']} {run['label']}", *cells, " / ".join(remarks) or ""])
    blocks.append(Table(["run", *results.datasets, "notes"], rows, f"Verdict on {metric_title(primary)}"))
    forest = next((p for p in figures if Path(p).stem == f"{FOREST_PREFIX}{primary}"), None)
    if forest is not None:
        blocks.append(Figure(Path(forest), Path(forest).stem))
    return Section(FIRST_SCREEN, blocks)


def five_seed_reference() -> dict:
    """The bundled five-seed study of the original runs: {variant: {metric: {dataset: [mean, lo, hi]}}}
    and its `source`; empty where it is not installed."""
    path = resources.files("gridnoise") / "experiments" / REFERENCE_FILE
    return tomllib.loads(path.read_text()) if path.is_file() else {}


ORIGINAL_METRICS = ("kl_divergence", "eval_loss")  # what the original log published per run and data set


def published_rows(results: StudyResults, published: dict, datasets: list[str],
                   cell: Callable[[dict, str, str, float, list[float]], str]) -> tuple[list[str], list[list[str]]]:
    """(the study's data sets the original ran, one row per run of an original variant and published
    metric): the run, the metric's title and `cell(run, metric, dataset, original value, our values
    over seeds)` per data set. `published`, `datasets`: `sections.original_numbers()`'s."""
    here = [d for d in results.datasets if d in datasets]
    rows = []
    for run in results.runs:
        numbers = published.get(run["variant"])
        if numbers is None or not here:
            continue
        for metric in ORIGINAL_METRICS:
            cells = [cell(run, metric, d, numbers[metric][datasets.index(d)],
                          list(results.values(run["name"], d, metric).values())) for d in here]
            rows.append([f"{run['name']} {run['label']}", metric_title(metric), *cells])
    return here, rows


def reproduction_section(results: StudyResults, published: dict, datasets: list[str]) -> Section:
    """The first screen of a one-seed study of the original variants: the original log's numbers beside
    ours, and the interval a five-seed study of the same runs gives (where this study trained as many
    steps). `published`: `original_numbers()`'s variant -> metric -> values over `datasets`."""
    reference = five_seed_reference()
    steps = {read_config(results.run_dir(*key)).train.steps for key in results.metrics}
    if reference and steps != {reference.get("steps")}:
        reference = {"source": f"{reference.get('source')}; not shown: it trained {reference.get('steps')} steps, "
                               f"this study {', '.join(map(str, sorted(steps)))}"}
    floors = read_floors(results)

    def cell(run: dict, metric: str, dataset: str, original: float, ours: list[float]) -> str:
        mine = float(np.mean(ours)) if ours else math.nan
        text = f"{fmt(original)} / {fmt(mine)}"
        if ours and below_resolution(metric, mine, floor_of(floors, metric, dataset)):
            text += " (below resolution)"
        interval = reference.get(run["variant"], {}).get(metric, {}).get(dataset)
        if interval is not None:
            _, lo, hi = interval
            inside = [who for who, value in (("original", original), ("ours", mine)) if lo <= value <= hi]
            where = " and ".join(inside) + " inside" if inside else "neither inside"
            text += f" / [{fmt(lo)}, {fmt(hi)}]: {where}"
        return text

    here, rows = published_rows(results, published, datasets, cell)
    seeds = results.max_seeds()
    return Section(REPRODUCTION, [
        f"**Question.** Does this run of the original study ({seeds} seed{'s' if seeds > 1 else ''}) reproduce the "
        "numbers of its log?",
        "Each cell: the original log's value (one seed, on a GPU) / ours / the 95% interval over seeds of a five-seed "
        f"study of the same runs ({reference.get('source', 'none bundled')}), and which of the two values lie inside "
        "it: a value inside is what seed-to-seed variation alone gives.",
        Table(["run", "metric", *here], rows),
        "**What one seed cannot tell.** Whether a variant beats the baseline: two runs of one seed differ by their "
        "seeds as much as by their variants (compare the five-seed intervals' widths with the differences "
        "between rows). Run `gridnoise reproduce --seeds 0,1,2,3,4` for tested differences; the eval loss is not "
        "comparable across variants whose forward noise differs."])


def reference_text(results: StudyResults, source: str) -> str:
    """`original_five_seeds.toml` from a study of the original runs with several seeds: for the k-NN KL
    and the eval loss, [mean, lo, hi] (95% t-interval over seeds) per variant and data set; `source`
    says which study. `scripts/five_seed_reference.py` writes it."""
    steps = {read_config(results.run_dir(*key)).train.steps for key in results.metrics}
    lines = ["# The five-seed study of the original runs: per variant, metric and data set, [mean, lo, hi]",
             "# (mean and 95% t-interval over seeds). A one-seed report (`gridnoise reproduce`) that trained",
             "# as many steps sets its numbers beside these. Written by scripts/five_seed_reference.py.", "",
             f"source = {json.dumps(source)}", f"steps = {max(steps)}", ""]
    for run in results.runs:
        for metric in ORIGINAL_METRICS:
            cells = []
            for dataset in results.datasets:
                values = list(results.values(run["name"], dataset, metric).values())
                mean, lo, hi = confidence_interval(values) if len(values) >= 2 else (math.nan,) * 3
                if not math.isnan(lo):
                    cells.append(f"{dataset} = [{mean:.6g}, {lo:.6g}, {hi:.6g}]")
            if cells:
                lines += [f"[{run['variant']}.{metric}]", *cells, ""]
    return "\n".join(lines)
