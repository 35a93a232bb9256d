"""A run's own figures and the building blocks of every figure, checked as figure objects."""

import shutil

import numpy as np
import pytest

from gridnoise import rundir
from gridnoise.report.run_figures import (
    CLAMPED_GID,
    CLIPPED_GID,
    GRID_OUTLINE_GID,
    figure_timesteps,
    grid_heatmap,
    grids_figure,
    loss_figure,
    overlay_points,
    samples_figure,
)
from gridnoise.report.views import CLAMPED_NOTE

from conftest import cli


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def rectangles(ax, gid: str) -> np.ndarray:
    """The patches with this gid as rows (x0, x1, y0, y1)."""
    return np.array([(p.get_x(), p.get_x() + p.get_width(), p.get_y(), p.get_y() + p.get_height())
                     for p in ax.patches if p.get_gid() == gid]).reshape(-1, 4)


def clamped(ax) -> np.ndarray:
    """The hatched rectangles outside the grid's extent."""
    return rectangles(ax, CLAMPED_GID)


def outline(ax) -> np.ndarray:
    """The outline of the grid's extent."""
    return rectangles(ax, GRID_OUTLINE_GID)


def test_heatmap_orientation_and_extent():
    values = np.tile(np.arange(4.0)[:, None], (1, 4))  # grows with the x cell index (axis 0)
    fig = grid_heatmap(values, [-4, 4, -2, 2], points=np.zeros((3, 2)))
    image = fig.axes[0].images[0]
    assert image.origin == "lower" and list(image.get_extent()) == [-4, 4, -2, 2]
    shown = np.asarray(image.get_array())
    assert np.array_equal(shown, values.T)  # rows = y, columns = x: colour increases left to right
    assert (np.diff(shown[0]) > 0).all()
    assert fig.axes[0].get_xlim() == (-4, 4) and not len(clamped(fig.axes[0]))  # the data lie inside the grid


def test_heatmap_spans_data_outside_the_grid_and_marks_it_clamped():
    values = np.arange(16.0).reshape(4, 4)
    points = np.array([[0.0, 0.0], [-3.0, 0.5], [2.5, 4.0]])  # beyond [-1, 1]^2 on three sides
    fig = grid_heatmap(values, [-1, 1, -1, 1], points=points)
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.origin == "lower" and list(image.get_extent()) == [-1, 1, -1, 1]  # the grid where it is
    assert ax.get_xlim() == pytest.approx((-3, 2.5)) and ax.get_ylim() == pytest.approx((-1, 4))  # the data too
    # hatched: left of, right of and above the grid (nothing below it), exactly the view outside the grid
    assert np.allclose(clamped(ax), [(-3, -1, -1, 4), (1, 2.5, -1, 4), (-1, 1, 1, 4)])
    assert np.allclose(outline(ax), [(-1, 1, -1, 1)])
    assert ax.get_title().endswith(f"hatched: {CLAMPED_NOTE}")


def test_figure_timesteps_are_the_quarters():
    assert figure_timesteps(100) == (0, 25, 50, 75, 99)
    assert figure_timesteps(1000) == (0, 250, 500, 750, 999)
    assert figure_timesteps(3) == (0, 1, 2)


def test_grids_figure_orientation_extent_and_one_colour_scale():
    grid = np.tile(np.arange(5.0)[None, :, None], (10, 1, 5)) * np.arange(1, 11)[:, None, None]  # (T, x, y)
    fig = grids_figure({"grid": grid}, [-1, 1, -2, 2])
    axes = heatmap_axes(fig)
    assert [ax.get_title() for ax in axes] == [f"grid, t={t}" for t in (0, 2, 5, 7, 9)]  # T = 10: the quarters
    image = axes[0].images[0]
    assert image.origin == "lower" and list(image.get_extent()) == [-1, 1, -2, 2]
    shown = np.asarray(image.get_array())
    assert np.array_equal(shown, grid[0].T) and (np.diff(shown[0]) > 0).all()
    assert axes[0].get_xlim() == pytest.approx((-1, 1))  # no data: the view is the grid
    assert not any(len(clamped(ax)) or len(outline(ax)) for ax in axes) and CLAMPED_NOTE not in fig.get_suptitle()
    assert len(fig.axes) == 5 + 1  # five heatmaps and one colorbar
    assert {ax.images[0].get_clim() for ax in axes} == {(0.0, 40.0)}  # one scale: t = 9 reaches 4 * 10


def test_grids_rows_columns_product_and_labels():
    coarse = np.ones((100, 5, 5))
    coarse[:, 0, 0] = 2.0
    fine = np.ones((100, 20, 20))
    fine[:, 1, 1] = 1.0 + 1e-6  # an L1-penalised fine grid barely moves
    fig = grids_figure({"coarse_grid": coarse, "fine_grid": fine}, [-1, 1, -1, 1],
                       points=np.array([[-4.0, -3.0], [4.0, 3.5]]))
    heatmaps = heatmap_axes(fig)
    assert len(heatmaps) == 3 * 5  # coarse, fine, combined x t = 0, 25, 50, 75, 99
    assert len(fig.axes) == 3 * 5 + 1  # one colorbar for the figure
    (clim,) = {ax.images[0].get_clim() for ax in heatmaps}  # the product reaches 2 (1 + 1e-6)
    assert clim == pytest.approx((1.0, 2.0 * (1 + 1e-6)), rel=1e-12)
    combined = np.asarray(heatmaps[10].images[0].get_array()).T  # back to (x, y)
    assert combined.shape == (20, 20) and combined[0, 0] == 2.0 and combined[4, 4] == 1.0
    assert combined[1, 1] == pytest.approx(2.0 * (1 + 1e-6))
    assert heatmaps[0].get_xlim() == pytest.approx((-4, 4))  # axes span the data, not just the grid
    assert heatmaps[0].get_ylim() == pytest.approx((-3, 3.5))
    assert len(heatmaps[0].collections) == 1  # the data overlay
    for ax in heatmaps:  # hatched: the view (8 x 6.5) less the grid's 2 x 2, on all four sides
        strips = clamped(ax)
        assert len(strips) == 4 and sum((x1 - x0) * (y1 - y0) for x0, x1, y0, y1 in strips) == pytest.approx(
            8 * 6.5 - 4)
        assert np.allclose(outline(ax), [(-1, 1, -1, 1)])
    assert fig.get_suptitle().endswith(f"hatched: {CLAMPED_NOTE}")
    # each row is labelled with its own range: the near-constant fine grid is read from its label
    assert heatmaps[0].get_ylabel().startswith("coarse grid: g in [1, 2]")
    assert heatmaps[5].get_ylabel().startswith("fine grid: g = 1 \u00b1 5.0e-07")


def test_a_diverging_sample_does_not_set_a_runs_sample_axes():
    rng = np.random.default_rng(0)
    data = rng.uniform(-4, 4, size=(200, 2))
    samples = np.vstack([rng.uniform(-4, 4, size=(97, 2)), [[1000.0, 0.0], [0.0, -800.0], [np.inf, 0.0]]])
    ax = samples_figure(samples, data).axes[0]
    assert ax.get_xlim()[1] < 10 and ax.get_ylim()[0] > -10  # the data's extent, not the stray samples'
    (triangles,) = [c for c in ax.collections if c.get_gid() == CLIPPED_GID]
    edge = triangles.get_offsets()
    assert len(edge) == 3 and edge[0][0] == pytest.approx(ax.get_xlim()[1])  # drawn at the edge they run to
    assert any("3 of 100 beyond the axes" in t.get_text() for t in ax.texts)


def test_samples_and_loss_figures():
    rng = np.random.default_rng(0)
    fig = samples_figure(rng.uniform(-0.5, 0.5, size=(50, 2)), rng.normal(size=(30, 2)), title="s")
    ax = fig.axes[0]
    assert [len(c.get_offsets()) for c in ax.collections] == [30, 50]  # the data, then the samples
    assert ax.get_aspect() == 1.0 and [t.get_text() for t in ax.get_legend().get_texts()] == ["data", "samples"]
    losses = 1 + np.exp(-np.arange(300) / 50.0)
    fig = loss_figure(losses)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2  # per step and the moving average
    assert np.array_equal(fig.axes[0].lines[0].get_ydata(), losses)
    fig = loss_figure(losses, {"step": [100, 200, 300], "kl_divergence": [0.9, 0.5, 0.4]})
    assert len(fig.axes) == 2 and list(fig.axes[1].lines[0].get_ydata()) == [0.9, 0.5, 0.4]


def test_a_run_draws_its_own_figures_from_its_files(tmp_path, capsys):
    """Training draws samples.png, loss.png and grids.png and saves its grid snapshots as data;
    `gridnoise plot` draws one heatmap per snapshot and grid from them, at the quarters."""
    from gridnoise.cli import main

    out = tmp_path / "run"
    cli("train", "--dataset", "moons", "--variant", "multiscale", "--steps", 40, "--n-points", 2000,
        "--set", "diffusion.num_timesteps=20", "--set", "train.grid_snapshot_every=20",
        "--set", "eval.num_samples=300", "--set", "eval.kl_every=20", "--out", out, "--no-progress", check=True)
    figures = {"samples.png", "loss.png", "grids.png"}
    heatmaps = {f"moons_{g}_grid_step_{s}.png" for g in ("coarse", "fine") for s in (20, 40)}
    assert figures <= {p.name for p in out.iterdir()}
    assert [p.name for p in rundir.grid_snapshots(out)] == ["grids_step_20.npz", "grids_step_40.npz"]
    assert not (out / "heatmaps").exists()  # drawn on demand, not while training
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".png"}
    assert main(["plot", str(out)]) == 0
    assert "7 figures" in capsys.readouterr().out  # three, and two grids at two snapshots
    assert {p.name for p in (out / "heatmaps").iterdir()} == heatmaps  # the original study's names
    for name in figures:
        (out / name).unlink()
    shutil.rmtree(out / "heatmaps")
    assert main(["plot", str(out)]) == 0 and "7 figures" in capsys.readouterr().out  # drawn again from the files
    assert figures <= {p.name for p in out.iterdir()} and {p.name for p in (out / "heatmaps").iterdir()} == heatmaps
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".png"}
    # What those files show, as figure objects drawn from the same saved arrays:
    _, grids, extent = rundir.read_grid_snapshot(rundir.final_snapshot(out), rundir.read_config(out))
    fig = grids_figure(grids, extent)
    assert [ax.get_title() for ax in heatmap_axes(fig)][:5] == [f"coarse grid, t={t}" for t in (0, 5, 10, 15, 19)]
    baseline = tmp_path / "baseline"
    cli("train", "--dataset", "line", "--steps", 10, "--n-points", 500, "--set", "eval.num_samples=100",
        "--out", baseline, "--no-progress", check=True)
    assert {"samples.png", "loss.png"} <= {p.name for p in baseline.iterdir()}
    assert not (baseline / "grids.png").exists() and not (baseline / "heatmaps").exists()


def test_plot_refuses_an_unfinished_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.toml").write_text('dataset = "moons"\n')
    proc = cli("plot", out)
    assert proc.returncode == 2 and "not finished training" in proc.stderr and "Traceback" not in proc.stderr


def test_overlay_points_survive_a_missing_data_set(monkeypatch, tmp_path):
    points = overlay_points("moons", 42)
    assert points.shape == (5000, 2)
    monkeypatch.setenv("GRIDNOISE_DATASAURUS", str(tmp_path / "missing.tsv"))  # dino's table is not here
    with pytest.warns(UserWarning, match="Datasaurus table not found"):
        assert overlay_points("dino", 42) is None


def test_datasets_figure_has_one_panel_per_data_set_on_shared_axes():
    from gridnoise.data import load
    from gridnoise.report.run_figures import datasets_figure

    names = ["moons", "rings", "scales", "checkerboard", "pinwheel"]
    fig = datasets_figure({n: load(n, 200) for n in names}, columns=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == names and len(fig.axes) == 8
    assert all(ax.get_xlim() == (-4.5, 4.5) and ax.get_ylim() == (-4.5, 4.5) for ax in visible)
    assert len(visible[1].collections[0].get_offsets()) == 200
