"""Figures of a whole study, drawn from its saved results; nothing here trains.

`make_figures` writes them into the report's directory:

    forest_<metric>.png        every run's paired difference from the baseline per data set, with its
                               Holm-compatible interval (thick) and unadjusted 95% interval (thin);
                               Holm-significant ones filled and starred; a row without a value says why
                               (first in the report)
    evaluation_metrics.png     the sample metrics (KL, W2, ...) per run and data set, mean and 95% CI
    eval_loss_and_time.png     eval loss (not comparable across variants) and training/sampling time
    train_loss.png             the smoothed training loss per run (mean over seeds, band: min..max)
    generated_images.png       samples per run and data set, over the data's extent
    grid_variance_comparison.png   coarse and fine grid variance of the multi-scale runs
    final_grids/<run>_<dataset>.png   every grid of a run at t = 0, T/4, T/2, 3T/4, T-1
    schedules/<run>_<dataset>.png     a continuous-time run's learned gamma(t), and an adaptive one's
                                      gamma over the plane (its first seed)

Each run has one colour in all of them and in report.html (`report.colours`); a diverging run does
not set an axis (`report.views`): its values beyond it are drawn at the edge and counted.

and each finished task's own figures (`run_figures.draw_run_figures`) where they are missing. A
task's per-snapshot heatmaps are drawn on demand only (`gridnoise plot`, `make_figures` without
`only_missing_run_figures`): a report does not show them, so their absence is not "missing".
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from gridnoise import rundir
from gridnoise.registry import FOREST, LOWER_IS_BETTER, METRICS, metric_title, metrics_where
from gridnoise.report.blocks import ALPHA, fmt
from gridnoise.report.claims import family, primary_metric, study_tests
from gridnoise.report.colours import run_colours
from gridnoise.report.forest import HOLM_BAR, PLAIN_LINE, forest_rows
from gridnoise.report.run_figures import (
    CLIPPED_GID,
    REASON_COLOUR,
    SAMPLE_CLIP_MARK,
    SAMPLE_PANEL_SIZE,
    clipped_samples,
    draw_likelihood_figure,
    draw_run_figures,
    grids_figure,
    overlay_points,
    plt,
    run_grids,
    run_title,
    save_figure,
    schedule_figure,
)
from gridnoise.report.stats import SMOOTHING_WINDOW, confidence_interval, smooth
from gridnoise.report.verdict import FOREST_PREFIX
from gridnoise.report.views import SAMPLE_MARGIN, outlying, sample_view, typical_range
from gridnoise.study.results import StudyResults

# Sample metrics: properties of the samples, comparable across variants; drawn when a study recorded them.
VARIANCE_PANELS = ("coarse_grid_variance", "fine_grid_variance")  # the multi-scale grids' variance figure
CI_LEVEL = 0.95  # error bars: t-interval of the mean over seeds
PANEL_COLUMNS = 2  # data sets and metrics are laid out two panels per row
PANEL_SIZE = 4.5  # inches per panel (width; height is PANEL_ASPECT of it)
PANEL_ASPECT = 0.8
BAND_ALPHA = 0.2  # min..max band over seeds around the mean loss curve
SIGNIFICANT_MARK = "*"
HOLM_BAR_WIDTH = 6  # points: the forest plots' Holm-compatible interval, drawn as a thick translucent bar
HOLM_BAR_ALPHA = 0.35
HOLM_GID = "holm_interval"  # the thick bars' gid, so a reader of the figure object can find them
REASON_WIDTH = 38  # characters per line of that reason
CLIP_MARK = "\u25b2\u25bc"  # a metric's value beyond a panel's axis is drawn as one of these triangles at its edge
EDGE_INSET = 0.04  # where a clipped value's triangle sits: this fraction of the axis inside its edge


def _colours(results: StudyResults) -> dict[str, str]:
    """Each run's colour (`report.colours`: the same run has the same colour in every report)."""
    return run_colours(results.runs, results.baseline)


def _panels(n: int, ncols: int = PANEL_COLUMNS, size: float = PANEL_SIZE) -> tuple[Figure, list]:
    """A figure with `n` visible panels laid out `ncols` per row (spare panels hidden)."""
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * PANEL_ASPECT * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def train_loss_figure(results: StudyResults) -> Figure:
    """One panel per data set, one smoothed loss curve per run (mean over seeds, band = min..max)."""
    colours = _colours(results)
    fig, axes = _panels(len(results.datasets))
    for ax, dataset in zip(axes, results.datasets):
        for run in results.runs:
            curves = []
            for seed in results.seeds(run["name"], dataset):
                curves.append(smooth(rundir.read_losses(results.run_dir(run["name"], dataset, seed))))
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stack = np.stack([c[:length] for c in curves])
            steps = np.arange(1, length + 1)
            ax.plot(steps, stack.mean(0), color=colours[run["name"]], label=run["label"], lw=1.2)
            if len(curves) > 1:
                ax.fill_between(steps, stack.min(0), stack.max(0), color=colours[run["name"]], alpha=BAND_ALPHA,
                                lw=0)
        ax.set(title=dataset, xlabel="training step", ylabel=f"loss ({SMOOTHING_WINDOW}-step moving average)")
    if axes:
        axes[0].legend(fontsize=8)
    n = results.max_seeds()
    fig.suptitle(f"Training loss (mean over {n} seeds, band: min..max)" if n > 1 else "Training loss")
    return fig


def _dataset_points(results: StudyResults, dataset: str):
    """Points of a study's data set to draw behind samples (None when they cannot be had here)."""
    key = next((k for k in sorted(results.metrics) if k[1] == dataset), None)
    if key is None:
        return None
    cfg = rundir.read_config(results.run_dir(*key))
    return overlay_points(dataset, cfg.training_data_seed, cfg.data)


def generated_images_figure(results: StudyResults, seed: int | None = None) -> Figure:
    """Rows = runs, columns = data sets: scatter plots of samples (the first finished seed by default).

    Each data set's panels show the data's extent plus a margin (`views.sample_view`), not what a
    diverging sampler reaches: its samples beyond that are drawn as triangles at the edge and
    counted in the panel and the title."""
    colours = _colours(results)
    nrows, ncols = len(results.runs), len(results.datasets)
    data = {dataset: _dataset_points(results, dataset) for dataset in results.datasets}
    drawn: dict[tuple[str, str], np.ndarray] = {}
    for run in results.runs:
        for dataset in results.datasets:
            seeds = results.seeds(run["name"], dataset)
            chosen = seed if seed in seeds else (seeds[0] if seeds else None)
            if chosen is not None:
                drawn[(run["name"], dataset)] = rundir.read_samples(results.run_dir(run["name"], dataset, chosen))
    views = {dataset: sample_view(data[dataset], [s for (_, d), s in drawn.items() if d == dataset])
             for dataset in results.datasets}
    fig, axes = plt.subplots(nrows, ncols, figsize=(SAMPLE_PANEL_SIZE * ncols, SAMPLE_PANEL_SIZE * nrows),
                             squeeze=False, layout="constrained")
    beyond = 0
    for i, run in enumerate(results.runs):
        for j, dataset in enumerate(results.datasets):
            ax = axes[i, j]
            view = views[dataset]
            if (run["name"], dataset) in drawn:
                beyond += clipped_samples(ax, drawn[(run["name"], dataset)], data[dataset], view,
                                           colours[run["name"]])
            ax.set(xlim=view[:2], ylim=view[2:])
            ax.set_aspect("equal", adjustable="box")
            if i == 0:
                ax.set_title(dataset)
            if j == 0:
                ax.set_ylabel(f"{run['label']}\ny")
            if i == nrows - 1:
                ax.set_xlabel("x")
    title = "Generated samples over the data (grey)" + (f", seed {seed}" if seed is not None else ", first seed")
    title += f"\naxes: the data + {SAMPLE_MARGIN:.0%}"
    if beyond:
        title += f"; {beyond} samples beyond, drawn at the edge ({SAMPLE_CLIP_MARK})"
    fig.suptitle(title)
    return fig


def _means(results: StudyResults, run: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per data set: the mean of `metric` over seeds and the half-width of its 95% CI (0 with one seed)."""
    means, errors = [], []
    for dataset in results.datasets:
        vals = list(results.values(run, dataset, metric).values())
        mean, lo, hi = confidence_interval(vals, CI_LEVEL) if vals else (np.nan, np.nan, np.nan)
        means.append(mean)
        errors.append(0.0 if np.isnan(lo) else hi - mean)
    return np.array(means), np.array(errors)


def _offsets(n: int) -> np.ndarray:
    """x offsets of `n` runs within a data set's slot (together they fill 80% of it)."""
    return (np.arange(n) - (n - 1) / 2) * (0.8 / max(n, 1))


def _legend_outside(fig: Figure, ax, loc: Literal["outside right upper", "outside lower center"] = "outside right upper"
                    ) -> None:
    """The runs' legend outside the panels (right of them, or below with loc="outside lower center"),
    where it hides no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        below = "lower" in loc
        fig.legend(handles, labels, loc=loc, fontsize=8, frameon=False, ncols=len(labels) if below else 1)


def _seeds_note(results: StudyResults) -> str:
    n = results.max_seeds()
    return f" (mean and 95% CI over {n} seeds)" if n > 1 else " (one seed)"


def _metric_figure(results: StudyResults, metrics: list[str], title: str) -> Figure:
    """Rows = `metrics` (titled from the registry, with any caveat), columns = data sets, each panel
    on its own y-axis fitted to its values: one marker per run at its mean with its 95% CI. A
    difference of 0.01 bits on `moons` is as visible as one of 0.1 on `dino`, which a shared axis
    would flatten. A diverging run's mean (`views.outlying`) does not set the axis either: it is
    drawn as a triangle at the panel's edge with its value, and the title counts them."""
    colours = _colours(results)
    rows, cols = len(metrics), len(results.datasets)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.8, 2.3 * rows + 0.6), squeeze=False,
                             layout="constrained")
    x = np.arange(len(results.runs))
    clipped = 0
    for i, metric in enumerate(metrics):
        stats = {run["name"]: _means(results, run["name"], metric) for run in results.runs}
        for j, dataset in enumerate(results.datasets):
            ax = axes[i, j]
            means = np.array([stats[run["name"]][0][j] for run in results.runs])
            errors = np.array([stats[run["name"]][1][j] for run in results.runs])
            far = outlying(means)
            for k, run in enumerate(results.runs):
                if far[k]:
                    continue
                if errors[k] > 0:
                    ax.errorbar([x[k]], [means[k]], yerr=[errors[k]], fmt="o", ms=4, capsize=2,
                                color=colours[run["name"]])
                else:
                    ax.plot([x[k]], [means[k]], "o", ms=4, color=colours[run["name"]])
            ax.set_xticks([])
            ax.margins(x=0.2, y=0.15)
            clipped += _clip_outliers(ax, x, means, errors, far, [colours[r["name"]] for r in results.runs])
            ax.tick_params(labelsize=7)
            ax.yaxis.set_major_locator(MaxNLocator(4))
            if i == 0:
                ax.set_title(dataset, fontsize=10)
            if j == 0:
                caveat = METRICS[metric].caveat
                ax.set_ylabel(metric_title(metric) + (f" ({caveat})" if caveat else ""), fontsize=8)
    handles = [Line2D([], [], color=colours[r["name"]], marker="o", ms=4, ls="") for r in results.runs]
    fig.legend(handles, [r["label"] for r in results.runs], loc="outside right upper", fontsize=8, frameon=False)
    plural = "s" if clipped > 1 else ""
    note = f"\n{CLIP_MARK}: {clipped} diverging mean{plural} beyond the axis, value printed" if clipped else ""
    fig.suptitle(title + _seeds_note(results) + note)
    return fig


def _clip_outliers(ax, x: np.ndarray, means: np.ndarray, errors: np.ndarray, far: np.ndarray,
                   colours: list[str]) -> int:
    """Fit the panel's y-axis to the means that are not outlying and their CIs within
    `views.typical_range`, when an outlying mean or a CI end would otherwise set it; draw each outlying
    mean as a triangle at the edge it lies beyond, its value beside it. Returns how many."""
    lo_fence, hi_fence = typical_range(means)
    kept = ~far & np.isfinite(means)
    ends = np.concatenate([means[kept] - errors[kept], means[kept] + errors[kept]])
    if not kept.any() or (not far.any() and ((ends >= lo_fence) & (ends <= hi_fence)).all()):
        return 0
    shown = np.concatenate([means[kept], np.clip(ends, lo_fence, hi_fence)])
    lo, hi = float(shown.min()), float(shown.max())
    pad = 0.15 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1e-9)
    ax.set_ylim(lo - pad, hi + pad)
    at_edge = ax.get_xaxis_transform()  # x in data, y in axes units: just inside the top or bottom edge
    for k in np.flatnonzero(far):
        above = means[k] > hi
        edge = EDGE_INSET if not above else 1 - EDGE_INSET
        ax.plot([x[k]], [edge], "^" if above else "v", ms=7, color=colours[k], transform=at_edge, gid=CLIPPED_GID)
        ax.annotate(fmt(float(means[k])), (x[k], edge), xycoords=at_edge, xytext=(6, 0), textcoords="offset points",
                    fontsize=7, color=colours[k], va="center")
    return int(far.sum())


def evaluation_metrics_figure(results: StudyResults) -> Figure:
    """The sample metrics the study recorded (KL first, then W2, sliced W2, MMD, precision, recall),
    a row each: per data set one marker per run at its mean with its 95% CI, axes fitted to the values."""
    recorded = results.metric_names()
    return _metric_figure(results, [m for m in metrics_where(kind=("sample",)) if m in recorded], "Sample metrics")


def costs_figure(results: StudyResults) -> Figure:
    """Eval loss (apart from the sample metrics: a grid that scales the forward noise changes what it
    measures) and the training and sampling times."""
    recorded = results.metric_names()
    return _metric_figure(results, [m for m in metrics_where(kind=("loss", "time")) if m in recorded],
                          "Eval loss and time")


def forest_figure(results: StudyResults, metric: str = "kl_divergence", claims: dict | None = None) -> Figure:
    """One panel per data set, a row per non-baseline run: its paired difference from the baseline
    (run - baseline, over the seeds both have) with two intervals (`report.forest`): a thick bar, the
    Holm-compatible interval, which excludes 0 exactly when the marker is filled and starred (Holm p <
    ALPHA), and a thin line with caps, the unadjusted 95% t-interval. A row without a value, or
    without an interval, says why in grey."""
    found = forest_rows(results, metric, claims)
    colours = _colours(results)
    runs = [r for r in results.runs if r["name"] != results.baseline]
    fig, axes = plt.subplots(1, len(results.datasets), figsize=(3.2 * len(results.datasets) + 2,
                                                                0.45 * len(runs) + 2.0),
                             squeeze=False, sharey=True, layout="constrained")
    for ax, dataset in zip(axes[0], results.datasets):
        ax.axvline(0.0, color="black", lw=0.8)
        for y, run in enumerate(runs):
            row = found[(run["name"], dataset)]
            colour = colours[run["name"]]
            if row.reason:
                ax.annotate(textwrap.fill(row.reason, REASON_WIDTH), (0.02, y), xycoords=ax.get_yaxis_transform(),
                            xytext=(0, -8 if row.has_value else 0), textcoords="offset points", va="center",
                            fontsize=7, color=REASON_COLOUR, style="italic")
            if row.test is None or not row.has_value:
                continue
            test = row.test
            if not np.isnan(row.holm_lo):
                ax.plot([row.holm_lo, row.holm_hi], [y, y], color=colour, lw=HOLM_BAR_WIDTH, alpha=HOLM_BAR_ALPHA,
                        solid_capstyle="butt", gid=HOLM_GID)
            interval = [[test.mean_diff - test.ci_lo], [test.ci_hi - test.mean_diff]]
            ax.errorbar([test.mean_diff], [y], xerr=None if np.isnan(test.ci_lo) else interval, fmt="o", ms=6,
                        capsize=3, elinewidth=1, color=colour, mfc=colour if row.significant else "white", mew=1.5)
            if row.significant:
                ax.annotate(SIGNIFICANT_MARK, (test.mean_diff, y), xytext=(0, 4), textcoords="offset points",
                            ha="center", fontsize=12, color=colour)
        ax.set_title(dataset)
        ax.set_xlabel("run - baseline")
        ax.margins(x=0.15)
        ax.xaxis.set_major_locator(MaxNLocator(4))
    axes[0, 0].set_yticks(range(len(runs)), [r["label"] for r in runs])
    axes[0, 0].set_ylim(max(len(runs), 1) - 0.5, -0.5)  # the experiment's first run on top (a row when none)
    fig.legend([Line2D([], [], color="grey", lw=HOLM_BAR_WIDTH, alpha=HOLM_BAR_ALPHA, solid_capstyle="butt"),
                Line2D([], [], color="grey", lw=1, marker="|", ms=6)], [HOLM_BAR, PLAIN_LINE],
               loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    fig.suptitle(f"{metric_title(metric)} ({family(results, metric)}): difference from "
                 f"{results.label(results.baseline)} (filled {SIGNIFICANT_MARK}: Holm p < {ALPHA}; {better} is better)",
                 fontsize=10)
    return fig


def grid_variance_figure(results: StudyResults) -> Figure:
    """Coarse and fine grid variance side by side for the runs that have both grids; every bar is
    labelled with its value, so the L1-penalised fine grids' near-zero variance is read, not lost."""
    runs = [r for r in results.runs
            if any(results.values(r["name"], d, "fine_grid_variance") for d in results.datasets)]
    colours = _colours(results)
    fig, axes = _panels(len(VARIANCE_PANELS), size=5)
    for ax, metric in zip(axes, VARIANCE_PANELS):
        for run, dx in zip(runs, _offsets(len(runs))):
            means, errors = _means(results, run["name"], metric)
            bars = ax.bar(np.arange(len(results.datasets)) + dx, means, 0.8 / max(len(runs), 1),
                          yerr=errors if errors.any() else None, capsize=2, color=colours[run["name"]],
                          label=run["label"])
            ax.bar_label(bars, fmt="%.1e", fontsize=6, rotation=90, padding=3)
        ax.set_xticks(np.arange(len(results.datasets)), results.datasets)
        ax.set(title=metric_title(metric), xlabel="data set", ylabel="variance of grid values")
        ax.margins(y=0.25)  # room for the labels
    if runs:
        _legend_outside(fig, axes[0], loc="outside lower center")
    fig.suptitle("Noise adaptation effectiveness: variance of the learned grid values"
                 + (_seeds_note(results) if results.max_seeds() > 1 else ""))
    return fig


FIGURE_FILES = ("samples.png", "loss.png")  # a task without these has not had its figures drawn


def redraw_run_figures(results: StudyResults, only_missing: bool = False) -> list[Path]:
    """Draw every finished task's own figures (`run_figures.draw_run_figures`) with its per-snapshot
    heatmaps, or with `only_missing` just what a task lacks: its figures but not the heatmaps (drawn on
    demand) when its samples, loss or grids figure is missing, else only its likelihood figure when
    that is missing or older than the `evaluation.json` it shows."""
    written = []
    for key in sorted(results.metrics):
        run_dir = results.run_dir(*key)
        drawn = all((run_dir / name).is_file() for name in FIGURE_FILES) and (
            rundir.final_snapshot(run_dir) is None or (run_dir / rundir.GRIDS_FIGURE).is_file())
        if not only_missing:
            written += draw_run_figures(run_dir)
        elif not drawn:
            written += draw_run_figures(run_dir, heatmaps=False)
        elif _stale_likelihood_figure(run_dir):
            written.append(draw_likelihood_figure(run_dir, run_title(rundir.read_config(run_dir))))
    return written


def _stale_likelihood_figure(run_dir: Path) -> bool:
    terms, figure = run_dir / rundir.LIKELIHOOD_TERMS_FILE, run_dir / rundir.LIKELIHOOD_FIGURE
    if not terms.is_file():
        return False
    if not figure.is_file():
        return True
    drawn = figure.stat().st_mtime_ns
    return any(p.is_file() and p.stat().st_mtime_ns > drawn for p in (terms, run_dir / rundir.EVALUATION_FILE))


def forest_metrics(results: StudyResults) -> list[str]:
    """The metrics that get a forest plot, the primary one first: the sample metrics and likelihoods the
    study recorded; none for a one-seed study (single-seed differences say nothing)."""
    if results.max_seeds() < 2:
        return []
    recorded = results.metric_names()
    primary, _ = primary_metric(results)
    return sorted((m for m in FOREST if m in recorded), key=lambda m: m != primary)


def likelihood_terms_figure(results: StudyResults) -> Figure | None:
    """One panel per data set: each run's variational-bound KL term L_t per timestep t >= 1 (bits/dim,
    mean over held-out points and seeds), log scale; None when no run has them."""
    colours = _colours(results)
    curves: dict[tuple[str, str], np.ndarray] = {}
    for run in results.runs:
        for dataset in results.datasets:
            found = []
            for seed in results.seeds(run["name"], dataset):
                path = results.run_dir(run["name"], dataset, seed) / rundir.LIKELIHOOD_TERMS_FILE
                if path.is_file():
                    with np.load(path) as f:
                        if "elbo_steps" in f:
                            found.append(f["elbo_steps"])
            if found:
                curves[(run["name"], dataset)] = np.mean(found, axis=0)
    if not curves:
        return None
    fig, axes = _panels(len(results.datasets))
    for ax, dataset in zip(axes, results.datasets):
        for run in results.runs:
            if (run["name"], dataset) in curves:
                steps = curves[(run["name"], dataset)][1:]  # the KL terms; t = 0 is the decoder, a density
                ax.plot(np.arange(1, len(steps) + 1), steps, color=colours[run["name"]], label=run["label"], lw=1.2)
        ax.set(yscale="log", title=dataset, xlabel="timestep t", ylabel="KL term L_t (bits/dim)")
    _legend_outside(fig, axes[0], loc="outside lower center")  # the long title spans the top
    fig.suptitle("Variational bound per timestep, t >= 1 (mean over held-out points and seeds; the prior and "
                 "decoder terms are in the tables)", fontsize=10)
    return fig


def learned_schedule_figures(results: StudyResults, dest: Path) -> list[Path]:
    """`schedules/<run>_<dataset>.png`: a continuous-time run's learned gamma (`run_figures.schedule_figure`)
    on its first seed, for every run and data set that saved one."""
    written = []
    for run in results.runs:
        for dataset in results.datasets:
            seeds = results.seeds(run["name"], dataset)
            schedule = rundir.read_schedule(results.run_dir(run["name"], dataset, seeds[0])) if seeds else None
            if schedule is None:
                continue
            cfg = rundir.read_config(results.run_dir(run["name"], dataset, seeds[0]))
            fig = schedule_figure(schedule, overlay_points(dataset, cfg.training_data_seed, cfg.data),
                                  title=f"{run['label']} on {dataset}: learned log-SNR gamma (seed {seeds[0]})")
            written.append(save_figure(fig, dest / "schedules" / f"{run['name']}_{rundir.file_stem(dataset)}.png"))
    return written


def make_figures(results: StudyResults, dest: str | Path, *, only_missing_run_figures: bool = False) -> list[Path]:
    """Write every study figure into `dest` and return their paths (forest plots first); also draw
    each finished task's own figures (all, or with `only_missing_run_figures` only where missing).

    The tasks' figures live in their run directories and are not in the returned list.
    """
    dest = Path(dest)
    claims = study_tests(results)  # once for every forest plot
    written = [save_figure(forest_figure(results, metric, claims), dest / f"{FOREST_PREFIX}{metric}.png")
               for metric in forest_metrics(results)]
    written += [
        save_figure(evaluation_metrics_figure(results), dest / "evaluation_metrics.png"),
        save_figure(costs_figure(results), dest / "eval_loss_and_time.png"),
        save_figure(train_loss_figure(results), dest / "train_loss.png"),
        save_figure(generated_images_figure(results), dest / "generated_images.png"),
    ]
    terms = likelihood_terms_figure(results)
    if terms is not None:
        written.append(save_figure(terms, dest / "likelihood_terms.png"))
    if any("fine_grid_variance" in m for m in results.metrics.values()):
        written.append(save_figure(grid_variance_figure(results), dest / "grid_variance_comparison.png"))
    for run in results.runs:
        for dataset in results.datasets:
            seeds = results.seeds(run["name"], dataset)
            run_dir = results.run_dir(run["name"], dataset, seeds[0]) if seeds else None
            snapshot = rundir.final_snapshot(run_dir) if run_dir else None
            if run_dir is None or snapshot is None:
                continue
            cfg = rundir.read_config(run_dir)
            step, grids, extent = run_grids(run_dir, cfg, snapshot)
            fig = grids_figure(grids, extent, points=overlay_points(dataset, cfg.training_data_seed, cfg.data),
                               title=f"{run['label']} on {dataset}: final grids (seed {seeds[0]}, step {step})")
            written.append(save_figure(fig, dest / "final_grids" / f"{run['name']}_{rundir.file_stem(dataset)}.png"))
    written += learned_schedule_figures(results, dest)
    redraw_run_figures(results, only_missing=only_missing_run_figures)
    return written
