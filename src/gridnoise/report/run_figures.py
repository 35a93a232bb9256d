"""Figures of one run, and the building blocks every figure shares; nothing here trains.

Every `*_figure` function returns a matplotlib Figure, which `save_figure` writes atomically.
`draw_run_figures` writes a run's own pictures from its files; nothing is drawn during training:

    samples.png        the samples over the data (faint grey), on the same axes
    loss.png           the training loss per step with its moving average (and the KL during
                       training, when `eval.kl_every` recorded it)
    grids.png          every grid at t = 0, T/4, T/2, 3T/4, T-1 over its real extent, the data drawn
                       over it, one colour scale for the figure; the axes span the data too, the
                       region outside the grid hatched (clamped into its edge cells)
    heatmaps/<dataset>_<grid>_step_K.png   the same for each grid snapshot (the original study's names)
    schedule.png       a continuous-time model's learned gamma(t), and an adaptive one's gamma over the
                       plane at t = 0.25, 0.5, 0.75 (from schedule.npz)

The first three are drawn once when a run finishes (`gridnoise train`, a study's task), and by a
study's report where a task lacks them. The per-snapshot heatmaps are drawn on demand only, by
`gridnoise plot RUN_DIR` or `gridnoise plot STUDY_DIR`, from the snapshots training saved as data
(`grids/grids_step_K.npz`): at about a second a snapshot, they took 8 % of a 10000-step study task.
A study's figures are `gridnoise.report.study_figures`'.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Any

import matplotlib

if "ipykernel" not in sys.modules:  # files only, no display; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from gridnoise import rundir  # noqa: E402
from gridnoise.config import DataConfig, RunConfig  # noqa: E402
from gridnoise.data import load
from gridnoise.data.datafile import (
    extent_to_data,  # noqa: E402
    is_data_file,
)
from gridnoise.errors import GridnoiseError  # noqa: E402
from gridnoise.files import atomic_write  # noqa: E402
from gridnoise.report.stats import SMOOTHING_WINDOW, smooth
from gridnoise.report.views import CLAMPED_NOTE, clamped_strips, clip_to_view, grid_view, sample_view

POINT_COLOUR = "#e8000b"  # data overlaid on heatmaps: visible on viridis and on white
DATA_COLOUR = "#aaaaaa"  # data behind samples
DATA_ALPHA = 0.5
DATA_POINT_SIZE = 3.0
PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
GRID_CMAP = "viridis"
SAMPLE_PANEL_SIZE = 3.0  # inches per scatter panel of samples
GRID_PANEL_SIZE = 2.8  # inches per heatmap panel
SAMPLE_POINT_SIZE = 0.8
SAMPLE_ALPHA = 0.5
OVERLAY_POINT_SIZE = 0.3  # data drawn over grids
OVERLAY_ALPHA = 0.3
OVERLAY_POINTS = 5000  # data points drawn over a grid figure
REASON_COLOUR = "#777777"  # notes in a panel: why a forest row has no value, how many samples were clipped
SAMPLE_CLIP_MARK = "\u25b2"  # samples beyond a panel's axes are drawn as this triangle at their edge
CLIPPED_GID = "clipped"  # the gid of those triangles
LOSS_ALPHA = 0.25  # the raw per-step loss behind its moving average
CLAMPED_FILL = (0.5, 0.5, 0.5, 0.15)  # the hatched region outside a grid's extent
CLAMPED_HATCH = "#999999"
CLAMPED_GID = "clamped"  # gids of those patches and of the grid's outline, to find them in a figure
GRID_OUTLINE_GID = "grid_extent"


def figure_timesteps(num_timesteps: int) -> tuple[int, ...]:
    """The timesteps a run's grids are drawn at: 0, T/4, T/2, 3T/4 and T-1 (0, 25, 50, 75, 99 for T = 100)."""
    T = num_timesteps
    return tuple(sorted({0, T // 4, T // 2, 3 * T // 4, T - 1}))


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure atomically as PNG and close it."""
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        plt.close(fig)


def grid_heatmap(values: np.ndarray, extent, title: str = "", points: np.ndarray | None = None) -> Figure:
    """Heatmap of one timestep's grid `(n, n)` (axis 0 = x, axis 1 = y) over its real extent.

    Drawn with `origin="lower"` so x runs along the horizontal axis (the original study's figures
    were transposed); `points` `(N, 2)` are overlaid when given, and the axes then span them too,
    the region outside the grid hatched as clamped into its edge cells (`mark_clamped`).
    """
    fig, ax = plt.subplots(figsize=(4.6, 4))
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    image = ax.imshow(np.asarray(values).T, origin="lower", extent=(xmin, xmax, ymin, ymax),
                      cmap=GRID_CMAP, aspect="auto", interpolation="nearest")
    view = grid_view(extent, points)
    clamped = mark_clamped(ax, extent, view)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=1, c=POINT_COLOUR, alpha=0.3, linewidths=0)
    ax.set(xlim=view[:2], ylim=view[2:])
    fig.colorbar(image, ax=ax, label="noise scale g")
    ax.set(xlabel="x", ylabel="y")
    ax.set_title(_with_clamped_note(title, clamped), fontsize=9 if clamped else None)
    fig.tight_layout()
    return fig


def datasets_figure(points: dict[str, np.ndarray], columns: int = 4) -> Figure:
    """One scatter panel per data set `(N, 2)`, all on the same [-4.5, 4.5]^2 axes."""
    rows = (len(points) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(SAMPLE_PANEL_SIZE * columns, SAMPLE_PANEL_SIZE * rows),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(points):]:
        ax.set_visible(False)
    for ax, (name, pts) in zip(axes.flat, points.items()):
        ax.scatter(pts[:, 0], pts[:, 1], s=SAMPLE_POINT_SIZE, alpha=SAMPLE_ALPHA, color=PALETTE[0], linewidths=0)
        ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), title=name, aspect="equal")
        ax.tick_params(labelsize=7)
    return fig


def scatter_samples(ax, samples: np.ndarray, data: np.ndarray | None = None, colour: str = PALETTE[0]) -> None:
    """Samples `(N, 2)` drawn over the data `(M, 2)`: the data as a faint grey layer with larger dots
    underneath, so data the samples miss shows grey and samples off the data show alone."""
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=DATA_POINT_SIZE, c=DATA_COLOUR, alpha=DATA_ALPHA, linewidths=0,
                   label="data", zorder=1)
    ax.scatter(samples[:, 0], samples[:, 1], s=SAMPLE_POINT_SIZE, color=colour, alpha=SAMPLE_ALPHA, linewidths=0,
               label="samples", zorder=2)


def clipped_samples(ax, samples: np.ndarray, data: np.ndarray | None, view, colour: str) -> int:
    """Samples over the data within `view`, those beyond it as triangles at its edge with their
    count in the panel; returns that count."""
    inside, clipped = clip_to_view(samples, view)
    scatter_samples(ax, samples[inside], data, colour)
    if len(clipped):
        ax.scatter(clipped[:, 0], clipped[:, 1], s=16, marker="^", color=colour, edgecolors="black",
                   linewidths=0.3, clip_on=False, zorder=3, gid=CLIPPED_GID)
        note = f"{len(clipped)} of {len(samples)} beyond the axes,\nclipped to the edge ({SAMPLE_CLIP_MARK})"
        ax.text(0.02, 0.98, note, transform=ax.transAxes, va="top", fontsize=7, color=REASON_COLOUR)
    return len(clipped)


def samples_figure(samples: np.ndarray, data: np.ndarray | None = None, title: str = "") -> Figure:
    """Samples `(N, 2)` over the data `(M, 2)` (faint grey), on axes over the data's extent (with the
    data; `views.sample_view`): samples beyond it are triangles at the edge, counted, so a diverging
    sampler does not set the axes."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
    if data is None:
        scatter_samples(ax, samples, data)
    else:
        xmin, xmax, ymin, ymax = view = sample_view(data, [samples])
        clipped_samples(ax, samples, data, view, PALETTE[0])
        ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax))
    ax.set(aspect="equal", xlabel="x", ylabel="y", title=title)
    ax.legend(loc="upper right", fontsize=8, markerscale=6, frameon=False)
    return fig


def loss_figure(losses: np.ndarray, kl_history: dict | None = None, title: str = "") -> Figure:
    """The training loss per step `(steps,)` (faint) with its moving average; with
    a KL history ({"step": [...], "kl_divergence": [...]}) a second panel shows KL during training."""
    with_kl = bool(kl_history and kl_history.get("step"))
    fig, axes = plt.subplots(1, 2 if with_kl else 1, figsize=(9 if with_kl else 5, 3.6), squeeze=False,
                             layout="constrained")
    ax = axes[0, 0]
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color=PALETTE[0], alpha=LOSS_ALPHA, lw=0.5, label="per step")
    window = min(SMOOTHING_WINDOW, len(losses))
    ax.plot(steps, smooth(losses, window), color=PALETTE[0], lw=1.5, label=f"{window}-step moving average")
    ax.set(xlabel="training step", ylabel="training loss", title="Training loss")
    ax.legend(fontsize=8, frameon=False)
    if with_kl:
        assert kl_history is not None
        kl = axes[0, 1]
        kl.plot(kl_history["step"], kl_history["kl_divergence"], "o-", color=PALETTE[1], ms=3)
        kl.set(xlabel="training step", ylabel="KL (bits)", title="KL divergence of the EMA model")
    fig.suptitle(title)
    return fig


def _number(values: dict[str, Any], key: str) -> float:
    """values[key] as a float; nan where it is missing or null (a non-finite number saved as JSON null)."""
    value = values.get(key)
    return math.nan if value is None else float(value)


def likelihood_figure(terms: dict[str, np.ndarray], evaluation: dict[str, Any], title: str = "") -> Figure:
    """The variational bound's KL term L_t per timestep t >= 1 `(T,)` (bits per dimension, log scale), one
    line per sampler with a bound (`elbo_steps`, `<sampler>_elbo_steps` in `likelihood_terms.npz`), each
    labelled with its total, prior and decoder terms from `evaluation.json` (and the ODE's, when measured)."""
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    names = sorted((k[: -len("elbo_steps")] for k in terms if k.endswith("elbo_steps")), key=lambda p: (p != "", p))
    for i, prefix in enumerate(names):
        steps = np.asarray(terms[f"{prefix}elbo_steps"])[1:]  # t = 0 is the decoder, a density, not a KL
        total, se, prior, decoder = (_number(evaluation, prefix + k) for k in
                                     ("nll_elbo", "nll_elbo_stderr", "nll_elbo_prior", "nll_elbo_decoder"))
        label = (prefix.rstrip("_") or "standard sampler") + (
            f": bound {total:.3f} ± {se:.3f} (prior {prior:.2f}, decoder {decoder:.2f})")
        ax.plot(np.arange(1, len(steps) + 1), steps, color=PALETTE[i % len(PALETTE)], lw=1.2, label=label)
    if "nll_ode" in evaluation:
        ode, ode_se = _number(evaluation, "nll_ode"), _number(evaluation, "nll_ode_stderr")
        ax.plot([], [], " ", label=f"ODE likelihood {ode:.3f} ± {ode_se:.3f}")
    ax.set(yscale="log", xlabel="timestep t", ylabel="KL term L_t (bits/dim)",
           title=title or "Variational bound per timestep (bits/dim)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=7, frameon=False)
    return fig


def _with_combined(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The grids plus, when there are several, their product ("combined") on a common lattice.

    All grids share the extent, so each cell is an exact block of the lcm-resolution lattice.
    """
    rows = dict(values)
    if len(values) > 1:
        n = math.lcm(*(g.shape[1] for g in values.values()))
        rows["combined"] = np.prod([g.repeat(n // g.shape[1], 1).repeat(n // g.shape[1], 2)
                                    for g in values.values()], axis=0)
    return rows


def mark_clamped(ax, extent, view) -> bool:
    """Outline the grid's `extent` on `ax` and hatch the rest of `view` (`views.clamped_strips`), where
    points are clamped into the edge cells; whether there was any such region."""
    strips = clamped_strips(extent, view)
    for k, (x0, x1, y0, y1) in enumerate(strips):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=CLAMPED_FILL, edgecolor=CLAMPED_HATCH,
                               hatch="///", lw=0, gid=CLAMPED_GID, label=CLAMPED_NOTE if k == 0 else None))
    if strips:
        xmin, xmax, ymin, ymax = (float(v) for v in extent)
        ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, edgecolor="black", lw=0.8,
                               ls="--", gid=GRID_OUTLINE_GID))
    return bool(strips)


def value_range(values: np.ndarray) -> str:
    """A grid's range as a label: `g in [0.97, 1.04]`, or `g = 1 +- 3.2e-06` when it barely moves."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-3 * max(abs(hi), 1e-12):
        return f"g = {(lo + hi) / 2:.4g} \u00b1 {(hi - lo) / 2:.1e}"
    return f"g in [{lo:.4g}, {hi:.4g}]"


def grids_figure(values: dict[str, np.ndarray], extent, timesteps=None, points: np.ndarray | None = None,
                 title: str = "") -> Figure:
    """Rows = grids `(T, n, n)` by label (and their product when there are several), columns =
    timesteps (default `figure_timesteps(T)`).

    Each heatmap sits at the grid's real extent with `origin="lower"` (x along the horizontal
    axis); the axes span the data as well, so one sees how much of the data the grid covers, and
    the region outside the grid, where points are clamped into its edge cells, is hatched
    (`mark_clamped`): its colour there is the edge cells', not a value learned there.
    One colour scale for the whole figure, with one colorbar, so panels compare at a glance;
    each row's label gives its own range, so a grid that stays near 1 (an L1-penalised fine
    grid) is read from the label rather than lost in the colour.
    """
    rows = _with_combined(values)
    T = next(iter(values.values())).shape[0]
    cols = sorted({min(int(t), T - 1) for t in (figure_timesteps(T) if timesteps is None else timesteps)})
    xmin, xmax, ymin, ymax = (float(v) for v in extent)
    lims = grid_view(extent, points)
    clamped = False
    vmin = min(float(g[cols].min()) for g in rows.values())
    vmax = max(float(g[cols].max()) for g in rows.values())
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(GRID_PANEL_SIZE * len(cols) + 1,
                                                            GRID_PANEL_SIZE * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    image = None
    for i, (label, grid) in enumerate(rows.items()):
        for j, t in enumerate(cols):
            ax = axes[i, j]
            image = ax.imshow(grid[t].T, origin="lower", extent=(xmin, xmax, ymin, ymax), cmap=GRID_CMAP,
                              vmin=vmin, vmax=vmax, interpolation="nearest", aspect="equal")  # x and y alike
            if points is not None:
                ax.scatter(points[:, 0], points[:, 1], s=OVERLAY_POINT_SIZE, c=POINT_COLOUR, alpha=OVERLAY_ALPHA,
                           linewidths=0)
            clamped = mark_clamped(ax, extent, lims)
            ax.set_xlim(lims[0], lims[1])
            ax.set_ylim(lims[2], lims[3])
            ax.set_title(f"{label.replace('_', ' ')}, t={t}", fontsize=9)
            ax.tick_params(labelsize=7)
            if i == len(rows) - 1:
                ax.set_xlabel("x", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{label.replace('_', ' ')}: {value_range(grid[cols])}\ny", fontsize=8)
    assert image is not None  # at least one grid and one timestep
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01)
    bar.set_label("noise scale g", fontsize=8)
    bar.formatter.set_useOffset(False)  # type: ignore[attr-defined]  # factors near 1 read as 1.0002, not "+1" and 0.0002
    fig.suptitle(_with_clamped_note(title, clamped))
    return fig


def _with_clamped_note(title: str, clamped: bool) -> str:
    return f"{title}\nhatched: {CLAMPED_NOTE}" if clamped else title


def overlay_points(dataset: str, data_seed: int, data: DataConfig | None = None) -> np.ndarray | None:
    """Up to OVERLAY_POINTS points of the data set, in its own units, to draw over grids; None (with
    a warning) when they cannot be had here (a missing table, file or plug-in)."""
    data = data or DataConfig()
    try:
        if not is_data_file(dataset):
            return load(dataset, OVERLAY_POINTS, seed=data_seed)
        points = load(dataset, key=data.key, columns=data.columns)
        keep = np.random.default_rng(0).permutation(len(points))[:OVERLAY_POINTS]
        return points[np.sort(keep)]
    except GridnoiseError as e:  # e.g. dino without the Datasaurus table: draw the grids alone
        warnings.warn(f"{dataset} data not drawn over its grids: {e}", stacklevel=2)
        return None


def run_grids(run_dir: Path, cfg: RunConfig, snapshot: Path) -> tuple[int, dict[str, np.ndarray], list[float]]:
    """(step, grids `(T, n, n)` by label, extent in the data's units) of one grid snapshot."""
    _, grids, extent = rundir.read_grid_snapshot(snapshot, cfg)
    return rundir.snapshot_step(snapshot), grids, extent_to_data(extent, cfg.data.shift, cfg.data.scale)


def draw_heatmaps(run_dir: str | Path, points: np.ndarray | None = None) -> list[Path]:
    """Every grid snapshot of a run, one file per grid under the original study's names
    (`heatmaps/<dataset>_<grid>_step_K.png`), each drawn at `figure_timesteps(T)` over the data `points`."""
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    written = []
    for path in rundir.grid_snapshots(run_dir):
        step, grids, extent = run_grids(run_dir, cfg, path)
        for label, values in grids.items():
            fig = grids_figure({label: values}, extent, points=points,
                               title=f"{cfg.variant} on {cfg.dataset}: {label.replace('_', ' ')} at step {step}")
            written.append(save_figure(fig, rundir.heatmap_path(run_dir, cfg.dataset, label, step)))
    return written


def run_title(cfg) -> str:
    """How a run's own figures name it: "<variant> on <data set>, seed <seed>"."""
    return f"{cfg.variant} on {Path(cfg.dataset).name}, seed {cfg.seed}"


def draw_run_figures(run_dir: str | Path, heatmaps: bool = True) -> list[Path]:
    """Write a run's own figures from its files: samples.png, loss.png, and for a grid run grids.png
    and (with `heatmaps`) the per-snapshot heatmaps; returns the paths written. Never trains.

    `train_run` passes heatmaps=False (one figure per grid and snapshot is drawn on demand, by
    `gridnoise plot`)."""
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    name = run_title(cfg)
    points = overlay_points(cfg.dataset, cfg.training_data_seed, cfg.data)
    # read before anything is drawn, so a corrupt file fails before a figure is replaced
    samples = rundir.read_samples(run_dir) if (run_dir / rundir.SAMPLES_FILE).is_file() else None
    losses = rundir.read_losses(run_dir) if (run_dir / rundir.LOSSES_FILE).is_file() else None
    written = []
    if samples is not None:
        fig = samples_figure(samples, points, title=f"{name}: samples")
        written.append(save_figure(fig, run_dir / rundir.SAMPLES_FIGURE))
    if losses is not None:
        fig = loss_figure(losses, rundir.read_kl_history(run_dir), title=name)
        written.append(save_figure(fig, run_dir / rundir.LOSS_FIGURE))
    snapshot = rundir.final_snapshot(run_dir)
    if snapshot is not None:
        step, grids, extent = run_grids(run_dir, cfg, snapshot)
        fig = grids_figure(grids, extent, points=points, title=f"{name}: learned noise scales g at step {step}")
        written.append(save_figure(fig, run_dir / rundir.GRIDS_FIGURE))
        if heatmaps:
            written += draw_heatmaps(run_dir, points)
    schedule = rundir.read_schedule(run_dir)
    if schedule is not None:
        fig = schedule_figure(schedule, points, title=f"{name}: learned log-SNR schedule gamma")
        written.append(save_figure(fig, run_dir / rundir.SCHEDULE_FIGURE))
    if (run_dir / rundir.LIKELIHOOD_TERMS_FILE).is_file():
        written.append(draw_likelihood_figure(run_dir, name))
    return written


def schedule_figure(schedule: dict[str, np.ndarray], points: np.ndarray | None = None, title: str = "") -> Figure:
    """A continuous-time model's gamma = -log SNR (`continuous.schedule_arrays`): its curves gamma(t)
    (solid x, dashed y; one per cell or latent draw), and for an adaptive model gamma over the plane at
    each saved t, per coordinate, over its real extent with `origin="lower"`, the data drawn over it,
    one colour scale per t."""
    t, gamma = schedule["t"], schedule["gamma"]  # (K,), (K, M, D)
    planes = schedule.get("plane_gamma")  # (L, P, P, D)
    columns = 1 + (0 if planes is None else len(planes))
    rows = 1 if planes is None else 2
    fig, axes = plt.subplots(rows, columns, figsize=(GRID_PANEL_SIZE * columns + 0.6, GRID_PANEL_SIZE * rows),
                             squeeze=False, layout="constrained")
    ax = axes[0, 0]
    for m in range(gamma.shape[1]):
        colour = PALETTE[m % len(PALETTE)]
        ax.plot(t, gamma[:, m, 0], color=colour, lw=1, alpha=0.8)
        if gamma.shape[1] > 1 or not np.array_equal(gamma[:, m, 0], gamma[:, m, 1]):
            ax.plot(t, gamma[:, m, 1], color=colour, lw=1, ls="--", alpha=0.8)
    ax.set(xlabel="t", ylabel="gamma(t) = -log SNR", title="gamma(t)" + (" (x solid, y dashed)"
                                                                          if gamma.shape[1] > 1 else ""))
    if planes is not None:
        axes[1, 0].set_visible(False)
        xmin, xmax, ymin, ymax = (float(v) for v in schedule["extent"])
        for col, (when, plane) in enumerate(zip(schedule["plane_t"], planes), start=1):
            low, high = float(plane.min()), float(plane.max())
            for row, coordinate in enumerate("xy"):
                ax = axes[row, col]
                image = ax.imshow(plane[..., row].T, origin="lower", extent=(xmin, xmax, ymin, ymax), cmap=GRID_CMAP,
                                  aspect="auto", vmin=low, vmax=high, interpolation="nearest")
                if points is not None:
                    ax.scatter(points[:, 0], points[:, 1], s=OVERLAY_POINT_SIZE, c=POINT_COLOUR, alpha=OVERLAY_ALPHA,
                               linewidths=0)
                ax.set(xlim=(xmin, xmax), ylim=(ymin, ymax), title=f"gamma_{coordinate} at t = {when:.2f}")
                ax.tick_params(labelsize=7)
            fig.colorbar(image, ax=axes[:, col], shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def draw_likelihood_figure(run_dir: str | Path, name: str = "") -> Path:
    """Write `likelihood.png` from a run's `likelihood_terms.npz` and `evaluation.json` (`gridnoise evaluate`)."""
    run_dir = Path(run_dir)
    fix = "delete it and run `gridnoise evaluate` again"
    terms = rundir.read_arrays(run_dir / rundir.LIKELIHOOD_TERMS_FILE, fix=fix)
    evaluation = rundir.read_json(run_dir / rundir.EVALUATION_FILE, rundir.EVALUATION_FILE, fix)
    title = f"{name}\nvariational bound per timestep (bits/dim)" if name else ""
    return save_figure(likelihood_figure(terms, evaluation, title), run_dir / rundir.LIKELIHOOD_FIGURE)
