"""`report.md` of a study, computed from its saved results (never from memory or by training).

Per metric and data set: mean and 95% CI per run; each run's paired difference from the
baseline with a t-test and Holm's correction; the seed's original numbers beside ours;
convergence speed; computational overhead; the figures.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gridnoise.files import write_text
from gridnoise.stats import confidence_interval, convergence_step, holm, paired_comparison

ALPHA = 0.05
LOWER_IS_BETTER = ("kl_divergence", "eval_loss", "training_time", "inference_time")
COMPARED = ("kl_divergence", "eval_loss", "training_time", "inference_time")
METRIC_TITLES = {
    "kl_divergence": "KL divergence (bits)", "eval_loss": "Eval loss", "training_time": "Training time (s)",
    "inference_time": "Inference time (s)", "grid_variance": "Grid variance",
    "coarse_grid_variance": "Coarse grid variance", "fine_grid_variance": "Fine grid variance",
}

# SYSTEM.md section 7: the seed's single-seed GPU numbers, by variant.
SEED_NUMBERS = {
    "baseline": {"kl_divergence": (0.359, 1.060, 0.157, 0.095), "eval_loss": (0.439, 0.664, 0.802, 0.620)},
    "grid10": {"kl_divergence": (0.334, 1.130, 0.188, 0.111), "eval_loss": (0.396, 0.646, 0.771, 0.590)},
    "grid20": {"kl_divergence": (0.349, 1.107, 0.194, 0.096), "eval_loss": (0.397, 0.645, 0.780, 0.598)},
    "multiscale": {"kl_divergence": (0.304, 1.194, 0.311, 0.136), "eval_loss": (0.356, 0.624, 0.629, 0.560)},
    "multiscale_l1": {"kl_divergence": (0.323, 1.167, 0.197, 0.105), "eval_loss": (0.388, 0.641, 0.765, 0.585)},
}
SEED_DATASETS = ("circle", "dino", "line", "moons")

EVAL_LOSS_NOTE = (
    "**Eval loss is not comparable across variants whose forward noise differs.** The seed's grids scale "
    "the forward noise by g, and a larger g makes the noise easier to predict, so a grid run can lower its "
    "eval loss without generating better samples. It is also measured on the training points with the "
    "trained (not EMA) weights. Compare variants on KL divergence, a property of the samples."
)


def fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 10**5):
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def fmt_ci(values: list[float]) -> str:
    mean, lo, hi = confidence_interval(values)
    return fmt(mean) if math.isnan(lo) else f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def comparisons(results, metric: str) -> dict[tuple[str, str], tuple]:
    """(run, dataset) -> (PairedResult, Holm-adjusted p) for every non-baseline run."""
    keys, tests = [], []
    for run in results.runs:
        if run["name"] == results.baseline:
            continue
        for dataset in results.datasets:
            base = results.values(results.baseline, dataset, metric)
            other = results.values(run["name"], dataset, metric)
            if base and other:
                keys.append((run["name"], dataset))
                tests.append(paired_comparison(base, other))
    adjusted = holm([t.p_value for t in tests])
    return {k: (t, p) for k, t, p in zip(keys, tests, adjusted)}


def verdict(test, adjusted_p: float, lower_is_better: bool = True) -> str:
    """`better*` / `worse*` when significant after Holm at ALPHA, else `n.s.`."""
    if test.n < 2 or math.isnan(adjusted_p):
        return "n/a (1 seed)" if test.n < 2 else "n/a"
    if adjusted_p >= ALPHA:
        return "n.s."
    improved = (test.mean_diff < 0) == lower_is_better
    return "better*" if improved else "worse*"


def headline(results) -> str:
    found = []
    for (run, dataset), (test, p) in comparisons(results, "kl_divergence").items():
        v = verdict(test, p)
        if v in ("better*", "worse*"):
            found.append(f"{results.label(run)} is {v.rstrip('*')} than the baseline on {dataset} "
                         f"(KL {fmt(test.mean_diff, 3)} bits, {fmt(100 * test.relative_change, 1)}%, "
                         f"Holm p = {fmt(p, 3)})")
    seeds = max((len(results.seeds(r["name"], d)) for r in results.runs for d in results.datasets), default=0)
    if seeds < 2:
        return ("One seed per task: no difference can be called significant. Run more seeds "
                "(`--seeds 0,1,2,3,4`) to tell effects from seed noise.")
    if not found:
        return ("No grid run differs significantly from the baseline on KL divergence on any data set "
                f"(paired t-test over {seeds} seeds, Holm-corrected at {ALPHA}).")
    return "Significant KL differences from the baseline (Holm-corrected, paired over seeds):\n\n" + "\n".join(
        f"- {line}" for line in found)


def metric_tables(results) -> str:
    parts = []
    metrics = [m for m in METRIC_TITLES if m in results.metric_names()]
    for metric in metrics:
        rows = []
        for run in results.runs:
            cells = []
            for dataset in results.datasets:
                vals = list(results.values(run["name"], dataset, metric).values())
                cells.append(f"{fmt_ci(vals)} (n={len(vals)})" if vals else "-")
            if any(c != "-" for c in cells):
                rows.append([f"{run['name']} {run['label']}"] + cells)
        parts.append(f"### {METRIC_TITLES[metric]}\n\n" + _table(["run"] + list(results.datasets), rows))
    return "\n\n".join(parts)


def difference_tables(results) -> str:
    parts = []
    for metric in COMPARED:
        comps = comparisons(results, metric)
        if not comps:
            continue
        rows = []
        for (run, dataset), (test, p) in comps.items():
            ci = "-" if math.isnan(test.ci_lo) else f"[{fmt(test.ci_lo)}, {fmt(test.ci_hi)}]"
            rows.append([f"{run} {results.label(run)}", dataset, str(test.n), fmt(test.mean_diff), ci,
                         f"{fmt(100 * test.relative_change, 1)}%", fmt(test.p_value), fmt(p),
                         verdict(test, p, metric in LOWER_IS_BETTER)])
        parts.append(f"### {METRIC_TITLES[metric]}\n\n" + _table(
            ["run", "data set", "seeds", "mean diff", "95% CI", "change", "p", "Holm p", "verdict"], rows))
    return "\n\n".join(parts)


def seed_table(results) -> str:
    rows = []
    for run in results.runs:
        numbers = SEED_NUMBERS.get(run["variant"])
        if numbers is None:
            continue
        for metric in ("kl_divergence", "eval_loss"):
            cells = []
            for dataset in results.datasets:
                if dataset not in SEED_DATASETS:
                    continue
                ours = list(results.values(run["name"], dataset, metric).values())
                seed_value = numbers[metric][SEED_DATASETS.index(dataset)]
                cells.append(f"{seed_value:.3f} / {fmt(float(np.mean(ours))) if ours else '-'}")
            rows.append([f"{run['name']} {run['label']}", METRIC_TITLES[metric]] + cells)
    header = ["run", "metric"] + [d for d in results.datasets if d in SEED_DATASETS]
    return ("Seed's value (one seed, GPU) / ours (mean over seeds).\n\n" + _table(header, rows)) if rows else ""


def convergence_section(results) -> str:
    from gridnoise.run import KL_HISTORY_FILE, LOSSES_FILE
    from gridnoise.results import read_json

    rows = []
    for run in results.runs:
        cells = []
        for dataset in results.datasets:
            steps = []
            for seed in results.seeds(run["name"], dataset):
                with np.load(results.run_dir(run["name"], dataset, seed) / LOSSES_FILE) as f:
                    steps.append(convergence_step(f["loss"]))
            cells.append(fmt_ci(steps).replace(".000", "") if steps else "-")
        rows.append([f"{run['name']} {run['label']}"] + cells)
    text = ("Training step at which the loss, smoothed over 100 steps, first comes within 5% of its final "
            "smoothed value (mean [95% CI] over seeds).\n\n" + _table(["run"] + list(results.datasets), rows))
    history_rows = []
    for run in results.runs:
        for dataset in results.datasets:
            by_step: dict[int, list[float]] = {}
            for seed in results.seeds(run["name"], dataset):
                path = results.run_dir(run["name"], dataset, seed) / KL_HISTORY_FILE
                if path.is_file():
                    h = read_json(path, KL_HISTORY_FILE)
                    for step, kl in zip(h["step"], h["kl_divergence"]):
                        by_step.setdefault(step, []).append(kl)
            if by_step:
                history_rows.append((run, dataset, by_step))
    if history_rows:
        steps = sorted({s for _, _, b in history_rows for s in b})
        rows = [[f"{run['name']} {run['label']}", dataset] + [fmt(float(np.mean(b[s]))) if s in b else "-"
                                                               for s in steps]
                for run, dataset, b in history_rows]
        text += ("\n\nKL divergence of the EMA model during training (mean over seeds; intermediate estimates "
                 "use fewer samples than the final one, so compare them across runs, not with the final KL).\n\n"
                 + _table(["run", "data set"] + [str(s) for s in steps], rows))
    return text


def parameter_counts(results) -> dict[str, int]:
    """Trainable parameters (network + grids) of each run, from its saved config."""
    import torch

    from gridnoise.run import read_config
    from gridnoise.train import build_components

    counts = {}
    for run in results.runs:
        for (r, d, s) in results.metrics:
            if r == run["name"]:
                _, adaptation, model = build_components(read_config(results.run_dir(r, d, s)), torch.device("cpu"))
                counts[r] = sum(p.numel() for m in (model, adaptation) for p in m.parameters())
                break
    return counts


def overhead_table(results) -> str:
    counts = parameter_counts(results)
    base_count = counts.get(results.baseline)
    rows = []
    for run in results.runs:
        ratios = {}
        for metric in ("training_time", "inference_time"):
            per_seed = []
            for dataset in results.datasets:
                base = results.values(results.baseline, dataset, metric)
                other = results.values(run["name"], dataset, metric)
                per_seed += [other[s] / base[s] for s in set(base) & set(other) if base[s] > 0]
            ratios[metric] = fmt_ci(per_seed) if per_seed else "-"
        peaks = [t["peak_rss_mb"] for (r, _, _), t in results.tasks.items() if r == run["name"] and "peak_rss_mb" in t]
        added = "-" if run["name"] not in counts or base_count is None else f"{counts[run['name']] - base_count:+,}"
        rows.append([f"{run['name']} {run['label']}", f"{counts.get(run['name'], 0):,}", added,
                     ratios["training_time"], ratios["inference_time"], f"{max(peaks):.0f}" if peaks else "-"])
    return ("Time ratios are per (data set, seed) pairs against the baseline, mean [95% CI]. Peak memory is the "
            "largest resident set of a worker process while it ran this run's tasks (an upper bound per task).\n\n"
            + _table(["run", "parameters", "added vs baseline", "training-time ratio", "sampling-time ratio",
                      "peak memory (MiB)"], rows))


def write_report(results, dest: str | Path, figures: list[Path]) -> Path:
    """Write `dest/report.md` from saved results, linking `figures` relative to `dest`."""
    from gridnoise.run import read_config

    dest = Path(dest)
    exp = results.experiment
    any_task = next(iter(results.metrics), None)
    steps = read_config(results.run_dir(*any_task)).train.steps if any_task else "-"
    seeds = sorted({s for (_, _, s) in results.metrics})
    runs_table = _table(["run", "label", "variant"], [[r["name"], r["label"], r["variant"]] for r in results.runs])
    images = "\n\n".join(f"![{p.stem}]({p.resolve().relative_to(dest.resolve()).as_posix()})"
                         for p in figures if p.suffix == ".png")
    text = f"""# Study report: {exp['name']}

{exp.get('description', '')}

Data sets: {', '.join(results.datasets)}. Seeds: {', '.join(map(str, seeds)) or '-'}. Training steps: {steps}.
Baseline: {results.baseline}. Tasks finished: {len(results.metrics)}.

{runs_table}

## Headline

{headline(results)}

## Metrics: mean [95% confidence interval] over seeds

{metric_tables(results)}

## Differences from the baseline

Paired over the seeds both runs have: mean difference (run - baseline), its 95% t-interval, a two-sided
paired t-test, and Holm's correction over all (run, data set) pairs of that metric. `better*`/`worse*`:
significant after correction at {ALPHA} (lower is better for all four metrics); `n.s.`: not significant.

{EVAL_LOSS_NOTE}

{difference_tables(results)}

## The seed's original numbers

{seed_table(results)}

## Convergence speed

{convergence_section(results)}

## Computational overhead

{overhead_table(results)}

## Figures

{images}
"""
    return write_text(dest / "report.md", text)
