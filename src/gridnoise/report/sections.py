"""A study's report, computed from its saved results (never from memory or by training).

First the answer (`verdict`): the study's question, its primary metric and a verdict table with
one forest plot, or, for a one-seed study of the original runs, whether the original log is
reproduced. Then per metric and data set: the estimator's floor and each run's mean and 95% CI;
each run's paired difference from the baseline with a t-test and Holm's correction (what may be
claimed is `claims`'); the likelihoods; the original study's numbers beside ours; convergence
speed; computational overhead; provenance; the figures.

Each section is a function that returns a `Section`: a title and blocks, each a short text
(Markdown inline), a `Table` of formatted cells or a `Figure`. `report_sections` gathers them;
`gridnoise.report.markdown` renders them and writes `report.md`, and any other renderer can walk the
same `Report`.
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridnoise.adaptation import data_extent, edge_cell_share
from gridnoise.components import build_components
from gridnoise.data import load, model_points
from gridnoise.provenance import VERSION_KEYS, hardware, software
from gridnoise.registry import METRICS, metric_title
from gridnoise.report.blocks import (
    ALPHA,
    Block,
    Figure,
    Report,
    Section,
    Table,
    fmt,
    fmt_ci,
    fmt_percent,
    fmt_setting,
    paired_tests,
    verdict,
)
from gridnoise.report.claims import (
    below_resolution,
    family,
    floor_of,
    percent_meaningful,
    primary_metric,
    study_tests,
    study_timing_problem,
    timing_comparable,
)
from gridnoise.report.degeneracy import degeneracy_notes
from gridnoise.report.likelihood import knn_vs_exact_section, likelihood_section, ode_absent
from gridnoise.report.stats import (
    CONVERGENCE_TOL,
    SMOOTHING_WINDOW,
    confidence_interval,
    convergence_step,
    paired_comparison,
)
from gridnoise.report.verdict import (
    FIRST_SCREEN,
    FOREST_PREFIX,
    published_rows,
    reproduction_section,
    verdict_section,
)
from gridnoise.rundir import KL_HISTORY_FILE, read_config, read_json, read_losses, read_provenance
from gridnoise.study.floors import FLOOR_DRAWS, read_floors
from gridnoise.study.results import StudyResults
from gridnoise.study.search import settings_of

TEST_SENTENCE = (
    "Each run is compared with the baseline on the seeds both have: mean difference (run - baseline), its 95% "
    "t-interval, and a two-sided paired t-test with Holm's correction (`report.claims`)."
)


def original_numbers() -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """The original study's published numbers (`experiments/original_numbers.toml`): its data sets,
    and variant -> metric -> one value per data set."""
    text = (resources.files("gridnoise") / "experiments" / "original_numbers.toml").read_text()
    numbers = tomllib.loads(text)
    return numbers.pop("datasets"), numbers


EVAL_LOSS_NOTE = (
    "**Eval loss is not comparable across variants whose forward noise differs.** The original grids scale "
    "the forward noise by g, and a larger g makes the noise easier to predict, so a grid run can lower its "
    "eval loss without generating better samples. It is also measured on the training points with the "
    "trained (not EMA) weights. Compare variants on the primary metric."
)


def _run_name(run: dict) -> str:
    """How a run is named in table rows: its name and label."""
    return f"{run['name']} {run['label']}"


def metric_tables(results: StudyResults) -> Section:
    """Per metric: one row per run, one cell per data set holding `mean [95% CI] (n=seeds)`; for a
    sample metric, a first row with the estimator's floor (`gridnoise.study.floors`), and means a
    perfect model could not be told from marked below the estimator's resolution."""
    floors = read_floors(results)
    parts: list[Block] = []
    for metric in (m for m in METRICS if m in results.metric_names()):
        rows = []
        if METRICS[metric].kind == "sample" and floors:
            rows.append(["floor: the data against a fresh draw of itself"] + [_floor_cell(floors, d, metric)
                                                                              for d in results.datasets])
        for run in results.runs:
            cells = []
            for dataset in results.datasets:
                vals = list(results.values(run["name"], dataset, metric).values())
                cell = f"{fmt_ci(vals)} (n={len(vals)})" if vals else "-"
                if vals and below_resolution(metric, float(np.mean(vals)), floor_of(floors, metric, dataset)):
                    cell += " below resolution"
                cells.append(cell)
            if any(c != "-" for c in cells):
                rows.append([_run_name(run)] + cells)
        parts.append(Table(["run"] + list(results.datasets), rows, metric_title(metric)))
    return Section("Metrics: mean [95% confidence interval] over seeds", [
        "Sample metrics open with their floor: the metric of a fresh draw of the data (as many points as a run "
        f"samples) against the training points, mean +- standard deviation over {FLOOR_DRAWS} draws: what a perfect "
        "model gets. A mean within one spread of it (or a k-NN KL below 0) is marked `below resolution`.", *parts])


def _floor_cell(floors: dict, dataset: str, metric: str) -> str:
    entry = floors.get(dataset)
    if isinstance(entry, str):
        return f"none: {entry}"
    floor = floor_of(floors, metric, dataset)
    return "-" if floor is None else f"{fmt(floor.mean)} +- {fmt(floor.spread)}"


def difference_tables(results: StudyResults, claims: dict) -> Section:
    """Per compared metric: each non-baseline run's paired difference from the baseline per data set,
    with its family (primary or secondary), Holm-adjusted p and verdict (`claims.study_tests`)."""
    floors = read_floors(results)
    primary, _ = primary_metric(results)
    parts: list[Block] = [
        f"{TEST_SENTENCE} The primary metric ({metric_title(primary)}) is corrected over its (run, data set) pairs, "
        "every secondary metric over all secondary metrics x runs x data sets together. `better`/`worse`: "
        f"significant after correction at {ALPHA} (lower is better, except for precision and recall) and at least "
        "the estimator's floor spread; `tied`: not significant, or within the floor spread. `change` is relative "
        "to the baseline's mean only where that mean is clearly above 0 (its 95% interval within half its "
        "value, and clear of the floor) and the run's mean is not below the estimator's resolution. Times are "
        "tested only between tasks on one processor that did not share their cores; otherwise they are "
        "described.", EVAL_LOSS_NOTE]
    for metric in [primary, *[m for m in claims if m != primary]]:
        if metric not in claims:
            continue
        rows = []
        for (run, dataset), claim in claims[metric].items():
            test = claim.test
            ci = "-" if math.isnan(test.ci_lo) else f"[{fmt(test.ci_lo)}, {fmt(test.ci_hi)}]"
            base = list(results.values(results.baseline, dataset, metric).values())
            ran = list(results.values(run, dataset, metric).values())
            meaningful = percent_meaningful(metric, base, floor_of(floors, metric, dataset), ran)
            change = fmt_percent(test.relative_change) if meaningful else "-"
            verdict = claim.verdict + (f" ({claim.reason})" if claim.reason else "")
            rows.append([f"{run} {results.label(run)}", dataset, str(test.n), fmt(test.mean_diff), ci, change,
                         fmt(test.p_value), fmt(claim.p_holm), verdict])
        parts.append(Table(["run", "data set", "seeds", "mean diff", "95% CI", "change", "p", "Holm p", "verdict"],
                           rows, f"{metric_title(metric)} ({family(results, metric)})"))
    return Section("Differences from the baseline", parts)


def study_data(results: StudyResults) -> dict:
    """Every data set of the study as its tasks trained on it, in the model's units (`{name: (N, 2)
    tensor}`): the report recomputes statistics from the data sets (regenerated, or read again)."""
    points = {}
    for dataset in results.datasets:
        task = next((key for key in sorted(results.metrics) if key[1] == dataset), None)
        if task is None:
            points[dataset] = torch.from_numpy(load(dataset))
            continue
        cfg = read_config(results.run_dir(*task))
        points[dataset] = torch.from_numpy(model_points(cfg))
    return points


def edge_cell_section(results: StudyResults) -> Section:
    """Share of each data set's points in border cells of 10x10 and 20x20 grids, under the original
    [-1, 1]^2 and under the data's own extent."""
    rows = []
    for dataset, points in study_data(results).items():
        own = data_extent(points)
        rows.append([dataset] + [f"{edge_cell_share(points, n, extent):.1%}" for n in (10, 20)
                                 for extent in ([-1.0, 1.0, -1.0, 1.0], own)])
    return Section("Grid extent: points in edge cells", [
        "Points in a grid's border cells, where every point outside the grid is clamped: the original study's extent "
        "[-1, 1]^2 against the data's bounding box + 5% (`*_data` variants).",
        Table(["data set", "10x10 original", "10x10 data", "20x20 original", "20x20 data"], rows)])


ABAR_T_WARNING = 0.01  # above this, pure-noise starting points are far from the forward process's x_T


def terminal_signal(results: StudyResults) -> dict[tuple[str, str], list[float]]:
    """abar_T of each run on each data set, one per finished seed, as its tasks recorded it
    (metrics.json): a tuned run's schedule can differ by data set, and a learned end by seed."""
    return {(run["name"], dataset): list(found.values()) for run in results.runs for dataset in results.datasets
            if (found := results.values(run["name"], dataset, "abar_T"))}


def schedule_section(results: StudyResults) -> Section:
    """abar_T per run and data set (each value above ABAR_T_WARNING flagged) and, when runs were also
    sampled with other samplers, each sampler's time against its KL and W2."""
    abar = terminal_signal(results)

    def cell(values: list[float]) -> str:
        low, high = min(values), max(values)
        text = f"{high:.3g}" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g} to {high:.3g}"
        return f"**{text} (warning)**" if high > ABAR_T_WARNING else text

    rows = [[_run_name(run)] + [cell(abar[run["name"], d]) if (run["name"], d) in abar else "-"
                                for d in results.datasets]
            for run in results.runs if any((run["name"], d) in abar for d in results.datasets)]
    warned = sorted({run for (run, _), values in abar.items() if max(values) > ABAR_T_WARNING})
    section = Section("Schedules and samplers", [
        "abar_T is the share of the clean point's variance the forward process keeps at its last timestep (for "
        "a continuous-time model, at t = 1: sigmoid(-gamma(1)) of its own, possibly learned, end), over the "
        "seeds; sampling starts from pure noise, so above "
        f"{ABAR_T_WARNING} training and sampling disagree at the start.",
        Table(["run"] + list(results.datasets), rows),
        ("**Warning** (in bold above): sampling starts from N(0, I), which the forward process never reaches, "
         f"for {', '.join(f'`{r}`' for r in warned)} where marked. The bound counts the gap (its prior term), "
         "but the network learned its last steps on points that still hold that share of the data, and "
         "sampling gives it pure noise.") if warned else
        f"Every run's abar_T is at most {ABAR_T_WARNING}: sampling starts where the forward process ends."])
    names = results.metric_names()
    extra = sorted({m[: -len("_inference_time")] for m in names if m.endswith("_inference_time")
                    and m != "inference_time"})
    if not extra:
        return section
    rows = []
    for run in results.runs:
        for sampler in ["ddpm"] + extra:
            prefix = "" if sampler == "ddpm" else f"{sampler}_"
            times = [v for d in results.datasets
                     for v in results.values(run["name"], d, f"{prefix}inference_time").values()]
            if not times:
                continue
            cells = []
            for dataset in results.datasets:
                kl = list(results.values(run["name"], dataset, f"{prefix}kl_divergence").values())
                w2 = list(results.values(run["name"], dataset, f"{prefix}w2").values())
                cells.append(f"{fmt_ci(kl)} / {fmt_ci(w2)}" if kl and w2 else "-")
            rows.append([_run_name(run), sampler, fmt(float(np.mean(times)), 2)] + cells)
    section.blocks += ["Each sampler on the same trained networks: mean sampling time of "
                       "10000 points (s), and KL (bits) / W2 per data set, mean [95% CI] over seeds.",
                       Table(["run", "sampler", "time (s)"] + [f"{d} KL / W2" for d in results.datasets], rows),
                       *sampler_costs(results, extra)]
    return section


def sampler_costs(results: StudyResults, samplers: list[str]) -> list[Block]:
    """Each extra sampler against DDPM on the same networks: its time as a share of DDPM's, and
    the paired KL and W2 differences over seeds with Holm-corrected verdicts."""
    found = paired_tests({(run["name"], sampler, dataset, metric): (
                              results.values(run["name"], dataset, metric),
                              results.values(run["name"], dataset, f"{sampler}_{metric}"))
                          for run in results.runs for sampler in samplers for dataset in results.datasets
                          for metric in ("kl_divergence", "w2")})
    rows = []
    for run in results.runs:
        for sampler in samplers:
            ratios = []  # per task: this sampler's time over DDPM's
            for dataset in results.datasets:
                ddpm = results.values(run["name"], dataset, "inference_time")
                other = results.values(run["name"], dataset, f"{sampler}_inference_time")
                ratios += [other[seed] / ddpm[seed] for seed in ddpm.keys() & other.keys()]
            if not ratios:
                continue
            cells = []
            for dataset in results.datasets:
                parts = []
                for metric in ("kl_divergence", "w2"):
                    if (run["name"], sampler, dataset, metric) in found:
                        test, adjusted = found[(run["name"], sampler, dataset, metric)]
                        parts.append(f"{fmt(test.mean_diff)} {verdict(test, adjusted)}")
                cells.append(" / ".join(parts) or "-")
            rows.append([_run_name(run), sampler, f"{float(np.mean(ratios)):.2f}x"] + cells)
    return ["Cost or gain against DDPM on the same networks: sampling time as a multiple of DDPM's, and the "
            "paired difference (sampler - DDPM) in KL / W2 per data set, mean over seeds; lower is better, "
            f"`better*`/`worse*` significant after Holm at {ALPHA} over this table, `n.s.` noise.",
            Table(["run", "sampler", "time vs DDPM"] + [f"{d} dKL / dW2" for d in results.datasets], rows)]


def original_table(results: StudyResults) -> Section:
    """The original study's published numbers beside our means [95% CI], and whether each lies inside
    our interval, for runs whose variant it ran (a one-seed study shows them first: `verdict`)."""
    original_datasets, published = original_numbers()

    def cell(run: dict, metric: str, dataset: str, original: float, ours: list[float]) -> str:
        _, lo, hi = confidence_interval(ours) if ours else (math.nan,) * 3
        inside = "" if math.isnan(lo) else (" (inside)" if lo <= original <= hi else " (outside)")
        return f"{fmt(original)} / {fmt_ci(ours) if ours else '-'}{inside}"

    datasets, rows = published_rows(results, published, original_datasets, cell)
    title = "The original study's numbers"
    if not rows:
        return Section(title, ["No run of this study uses one of the original study's variants."])
    return Section(title, ["The original study's value (one seed, on a GPU) / ours (mean [95% CI] over seeds), "
                           "and whether the original value lies inside our interval.",
                           Table(["run", "metric"] + datasets, rows)])


def _convergence_steps(results: StudyResults, run: str, dataset: str) -> list[int]:
    """`convergence_step` of each finished seed's training losses."""
    steps = []
    for seed in results.seeds(run, dataset):
        steps.append(convergence_step(read_losses(results.run_dir(run, dataset, seed))))
    return steps


def _kl_history(results: StudyResults, run: str, dataset: str) -> dict[int, list[float]]:
    """step -> intermediate KL of each seed that recorded one (empty without kl_history.json)."""
    by_step: dict[int, list[float]] = {}
    for seed in results.seeds(run, dataset):
        path = results.run_dir(run, dataset, seed) / KL_HISTORY_FILE
        if path.is_file():
            history = read_json(path, KL_HISTORY_FILE)
            for step, kl in zip(history["step"], history["kl_divergence"]):
                by_step.setdefault(int(step), []).append(kl)
    return by_step


def convergence_section(results: StudyResults) -> Section:
    """Convergence step of the training loss per run and data set, and KL during training when recorded."""
    rows = []
    for run in results.runs:
        cells = []
        for dataset in results.datasets:
            steps = _convergence_steps(results, run["name"], dataset)
            cells.append(fmt_ci(steps, digits=0) if steps else "-")
        rows.append([_run_name(run)] + cells)
    section = Section("Convergence speed", [
        f"Training step at which the loss, smoothed over {SMOOTHING_WINDOW} steps, first comes within "
        f"{CONVERGENCE_TOL:.0%} of its final smoothed value (mean [95% CI] over seeds).",
        Table(["run"] + list(results.datasets), rows)])
    histories = [(run, dataset, h) for run in results.runs for dataset in results.datasets
                 if (h := _kl_history(results, run["name"], dataset))]
    if histories:
        steps = sorted({s for _, _, h in histories for s in h})
        rows = [[_run_name(run), dataset] + [fmt(float(np.mean(h[s]))) if s in h else "-" for s in steps]
                for run, dataset, h in histories]
        section.blocks += ["KL divergence of the EMA model during training (mean over seeds; intermediate estimates "
                           "use fewer samples than the final one, so compare them across runs, not with the final KL).",
                           Table(["run", "data set"] + [f"step {s}" for s in steps], rows)]
    return section


def parameter_counts(results: StudyResults) -> dict[str, int]:
    """Trainable parameters (network + grids) of each run, built from the config of its first finished task."""
    counts = {}
    for run in results.runs:
        task = next((key for key in sorted(results.metrics) if key[0] == run["name"]), None)
        if task is not None:
            _, adaptation, model = build_components(read_config(results.run_dir(*task)), torch.device("cpu"))
            counts[run["name"]] = sum(p.numel() for m in (model, adaptation) for p in m.parameters())
    return counts


def _time_ratios(results: StudyResults, run: str, metric: str) -> list[float]:
    """run / baseline of `metric`, one ratio per (data set, seed) both finished."""
    ratios = []
    for dataset in results.datasets:
        base = results.values(results.baseline, dataset, metric)
        other = results.values(run, dataset, metric)
        ratios += [other[s] / base[s] for s in sorted(set(base) & set(other)) if base[s] > 0]
    return ratios


def overhead_table(results: StudyResults) -> Section:
    """Per run: parameters (and those added over the baseline), time ratios to the baseline, peak memory."""
    counts = parameter_counts(results)
    base_count = counts.get(results.baseline)
    rows = []
    for run in results.runs:
        name = run["name"]
        ratios = [fmt_ci(r) if (r := _time_ratios(results, name, m)) else "-"
                  for m in ("training_time", "inference_time")]
        peaks = [t["peak_rss_mb"] for (r, _, _), t in results.tasks.items() if r == name and "peak_rss_mb" in t]
        added = "-" if name not in counts or base_count is None else f"{counts[name] - base_count:+,}"
        total = f"{counts[name]:,}" if name in counts else "-"
        rows.append([_run_name(run), total, added, *ratios, f"{max(peaks):.0f}" if peaks else "-"])
    comparable = all(not timing_comparable(results, run["name"], d) for run in results.runs
                     if run["name"] != results.baseline for d in results.datasets)
    caveat = ("Every task ran on one processor without sharing its cores, so the ratios compare like with like."
              if comparable else f"Descriptive only, not tested: {study_timing_problem(results)}.")
    return Section("Computational overhead", [
        "Time ratios are run / baseline per (data set, seed) pair, mean [95% CI]. Peak memory is the largest "
        "resident set of a worker process while it ran this run's tasks (an upper bound per task). " + caveat,
        Table(["run", "parameters", "added vs baseline", "training-time ratio", "sampling-time ratio",
               "peak memory (MiB)"], rows)])


def study_comparison(first: StudyResults, second: StudyResults, metric: str = "kl_divergence") -> Table:
    """Two studies of the same runs (e.g. fp32 and bf16): per run and data set, `metric`'s mean [95% CI]
    in each, and the paired difference (second - first) on their common seeds with its t-test."""
    rows = []
    for run in first.runs:
        for dataset in first.datasets:
            a, b = first.values(run["name"], dataset, metric), second.values(run["name"], dataset, metric)
            if not a or not b:
                continue
            test = paired_comparison(a, b)
            _, lo, hi = confidence_interval(list(a.values()))
            inside = "-" if math.isnan(lo) else ("yes" if lo <= float(np.mean(list(b.values()))) <= hi else "no")
            ci = "-" if math.isnan(test.ci_lo) else f"[{fmt(test.ci_lo)}, {fmt(test.ci_hi)}]"
            rows.append([_run_name(run), dataset, fmt_ci(list(a.values())), fmt_ci(list(b.values())),
                         f"{fmt(test.mean_diff)} {ci}", fmt(test.p_value), inside])
    title = metric_title(metric)
    return Table(["run", "data set", f"{title}: first", "second", "second - first [95% CI]", "p",
                  "second's mean inside first's CI"], rows)


def header(results: StudyResults) -> Section:
    """What the study is: its description, data sets, seeds, steps, baseline and runs."""
    exp = results.experiment
    any_task = next(iter(sorted(results.metrics)), None)
    steps = read_config(results.run_dir(*any_task)).train.steps if any_task else "-"
    seeds = ", ".join(map(str, sorted({s for (_, _, s) in results.metrics}))) or "-"
    blocks: list[Block] = [exp["description"]] if exp.get("description") else []
    blocks += [f"Data sets: {', '.join(results.datasets)}. Seeds: {seeds}. Training steps: {steps}.\n"
               f"Baseline: {results.baseline}. Tasks finished: {len(results.metrics)}.",
               Table(["run", "label", "variant"], [[r["name"], r["label"], r["variant"]] for r in results.runs])]
    if mixed := mixed_versions(provenances(results)):
        blocks.append(f"**Warning: this study's tasks were trained by {len(mixed)} different software versions** "
                      f"({'; '.join(mixed)}): see Provenance.")
    return Section(None, blocks)


def provenances(results: StudyResults) -> dict[tuple[str, str, int], dict | None]:
    """Each finished task's provenance record (None where it was trained before they were kept)."""
    return {key: read_provenance(results.run_dir(*key)) for key in sorted(results.metrics)}


def mixed_versions(records: dict[tuple[str, str, int], dict | None]) -> list[str]:
    """The distinct software lines of a study's tasks when there are several (else empty): a study
    whose tasks ran different code or libraries may not compare like with like."""
    seen: dict[tuple, str] = {}
    for record in records.values():
        if record is not None:
            seen.setdefault(tuple(record.get(k) for k in VERSION_KEYS), software(record))
    return sorted(seen.values()) if len(seen) > 1 else []


def provenance_section(results: StudyResults) -> Section:
    """What trained the study's tasks: software and hardware, with how many tasks each, and a warning
    when the study mixes versions."""
    records = provenances(results)
    counts: dict[tuple[str, str], int] = {}
    for record in records.values():
        key = (software(record), hardware(record)) if record is not None else ("not recorded", "-")
        counts[key] = counts.get(key, 0) + 1
    blocks: list[Block] = ["The software and hardware that trained each finished task (`provenance.json` in "
                           "its directory)."]
    if mixed := mixed_versions(records):
        blocks.append(f"**Warning: this study mixes {len(mixed)} software versions**; tasks of different versions "
                      "need not agree bit for bit.")
    blocks.append(Table(["software", "hardware", "tasks"], [[sw, hw, str(n)] for (sw, hw), n in counts.items()]))
    return Section("Provenance", blocks)


def forest_section(results: StudyResults, figures: list[Path]) -> Section:
    """The secondary metrics' forest plots (the primary one is on the first screen)."""
    primary, _ = primary_metric(results)
    forests = [Figure(Path(p), Path(p).stem) for p in figures
               if Path(p).stem.startswith(FOREST_PREFIX) and Path(p).stem != f"{FOREST_PREFIX}{primary}"]
    if not forests or results.max_seeds() < 2:
        return Section(None)
    return Section("Secondary metrics at a glance", [
        "Each run's mean paired difference from the baseline (run - baseline, same seeds): the thin line is its "
        "95% interval, the thick bar the interval matching the Holm-corrected test (it excludes 0 exactly when "
        f"the marker is filled and starred: significant at {ALPHA}).", *forests])


def figures_section(figures: list[Path]) -> Section:
    """The PNG figures (but the forest plots, shown first), captioned by their file names."""
    return Section("Figures", [Figure(Path(p), Path(p).stem) for p in figures
                               if Path(p).suffix == ".png" and not Path(p).stem.startswith(FOREST_PREFIX)])


def first_screen(results: StudyResults, claims: dict, figures: list[Path]) -> Section:
    """What the report opens with: the verdict on the primary metric, or, for a one-seed study of the
    original variants, whether the original log is reproduced."""
    datasets, published = original_numbers()
    if results.max_seeds() < 2:
        if any(run["variant"] in published for run in results.runs):
            return reproduction_section(results, published, datasets)
        return Section(FIRST_SCREEN, ["One seed per task: no difference can be called significant. Run more seeds "
                                   "(`--seeds 0,1,2,3,4`) to tell effects from seed noise."])
    primary, _ = primary_metric(results)
    absent = {(run["name"], d): why_absent(results, run["name"], d, primary) for run in results.runs
              for d in results.datasets if not results.values(run["name"], d, primary)}
    return verdict_section(results, claims, degeneracy_notes(results, study_data(results)), figures, absent)


def why_absent(results: StudyResults, run: str, dataset: str, metric: str) -> str:
    """Why a run has no value of `metric` on a data set, for the verdict table."""
    if METRICS.get(metric) is not None and METRICS[metric].from_ode:
        reason = ode_absent(results, run, dataset)
        if reason != "-":
            return f"no ODE likelihood ({reason.removeprefix('none: ')})"
    if not results.seeds(run, dataset):
        return "no finished task"
    if METRICS.get(metric) is not None and METRICS[metric].source == "evaluate":
        return f"not evaluated (`gridnoise evaluate --metrics {metric}`)"
    return "not recorded by its tasks"


def _dotted(settings: dict[str, Any]) -> dict[str, Any]:
    """Dotted settings with a table-valued one (`adaptation.grids`) spelled out by its keys
    (`adaptation.grids.cells`), as search spaces and the tuning's report name them."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        flat.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
    return flat


def tuned_section(results: StudyResults) -> Section:
    """For a study of a tuned experiment file: the settings each run won with on each data set, and
    the trials each had (empty otherwise)."""
    tuned = results.experiment.get("tuned")
    if not tuned:
        return Section(None)
    arms = tuned.get("arms", {})
    rows = []
    for run in results.runs:
        for dataset in results.datasets:
            arm = arms.get(f"{run['name']}/{dataset}", {})
            settings = _dotted(settings_of(run.get("per_dataset", {}).get(dataset, {})))
            rows.append([_run_name(run), dataset,
                         ", ".join(f"`{k}` = {fmt_setting(v)}" for k, v in settings.items()) or "-",
                         str(arm.get("trials", "-")), str(arm.get("pruned", "-")), str(arm.get("fail", "-")),
                         fmt(arm.get("best_value"))])
    return Section("Tuned settings", [
        f"Each run's settings on each data set are its best of {tuned.get('trials', '-')} trials by "
        f"`{tuned.get('objective', '-')}` on a validation draw (tuning seeds "
        f"{', '.join(map(str, tuned.get('seeds', [])))}), the same budget for every run; this study measures them "
        "on other seeds and a fresh held-out draw. The best validation value is the best of many tries, biased "
        "low: compare runs on this study's numbers, not on it.",
        Table(["run", "data set", "chosen settings", "trials", "pruned", "failed",
               f"best validation {tuned.get('objective', '')}"], rows)])


def report_sections(results: StudyResults, figures: list[Path]) -> Report:
    """Every section of a study's report, in order: the first screen answers the study's question."""
    claims = study_tests(results)
    return Report(f"Study report: {results.experiment['name']}", [
        header(results), first_screen(results, claims, figures), tuned_section(results),
        forest_section(results, figures),
        metric_tables(results), difference_tables(results, claims), schedule_section(results),
        edge_cell_section(results), likelihood_section(results, claims), knn_vs_exact_section(results),
        original_table(results), convergence_section(results), overhead_table(results), provenance_section(results),
        figures_section(figures)])
