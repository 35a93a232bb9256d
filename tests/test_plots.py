import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from gridnoise.plots import (
    evaluation_metrics_figure,
    final_grids_figure,
    generated_images_figure,
    grid_heatmap,
    grid_variance_figure,
    overlay_points,
    run_colours,
    train_loss_figure,
)
from gridnoise.results import load_results

from conftest import make_study


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def error_bars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_heatmap_orientation_and_extent():
    values = np.tile(np.arange(4.0)[:, None], (1, 4))  # grows with the x cell index (axis 0)
    fig = grid_heatmap(values, [-4, 4, -2, 2], points=np.zeros((3, 2)))
    image = fig.axes[0].images[0]
    assert image.origin == "lower" and list(image.get_extent()) == [-4, 4, -2, 2]
    shown = np.asarray(image.get_array())
    assert np.array_equal(shown, values.T)  # rows = y, columns = x: colour increases left to right
    assert (np.diff(shown[0]) > 0).all()


def test_final_grids_orientation_and_extent():
    grid = np.tile(np.arange(5.0)[None, :, None], (10, 1, 5))  # (T, x, y), growing with x
    fig = final_grids_figure({"grid": grid}, [-1, 1, -2, 2], timesteps=(0, 25, 50, 75, 99))
    axes = heatmap_axes(fig)
    assert len(axes) == 2  # T = 10: timesteps clip to 0 and 9; one grid, no "combined" row
    assert [ax.get_title() for ax in axes] == ["grid, t=0", "grid, t=9"]
    image = axes[0].images[0]
    assert image.origin == "lower" and list(image.get_extent()) == [-1, 1, -2, 2]
    shown = np.asarray(image.get_array())
    assert np.array_equal(shown, grid[0].T) and (np.diff(shown[0]) > 0).all()
    assert axes[0].get_xlim() == pytest.approx((-1, 1))  # no data: the view is the grid
    assert len(fig.axes) == 3  # two heatmaps and the row's colorbar


def test_final_grids_rows_columns_and_product():
    coarse = np.ones((100, 5, 5))
    coarse[:, 0, 0] = 2.0
    fine = np.ones((100, 20, 20))
    fine[:, 1, 1] = 3.0
    fig = final_grids_figure({"coarse_grid": coarse, "fine_grid": fine}, [-1, 1, -1, 1],
                             points=np.array([[-4.0, -3.0], [4.0, 3.5]]))
    heatmaps = heatmap_axes(fig)
    assert len(heatmaps) == 3 * 5  # coarse, fine, combined x t = 0, 25, 50, 75, 99
    assert len(fig.axes) == 3 * 5 + 3  # one colorbar per row
    combined = np.asarray(heatmaps[10].images[0].get_array()).T  # back to (x, y)
    assert combined.shape == (20, 20) and combined[1, 1] == 6.0 and combined[3, 3] == 2.0 and combined[4, 4] == 1.0
    assert heatmaps[0].get_xlim() == pytest.approx((-4, 4))  # axes span the data, not just the grid
    assert heatmaps[0].get_ylim() == pytest.approx((-3, 3.5))
    assert len(heatmaps[0].collections) == 1  # the data overlay


def test_study_figures_have_their_panels(tmp_path):
    results = load_results(make_study(tmp_path / "s", seeds=(0, 1)))
    loss = train_loss_figure(results)
    visible = [a for a in loss.axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["moons", "line"]
    assert all(len(a.lines) == 3 and len(a.collections) == 3 for a in visible)  # a curve and a band per run
    samples = generated_images_figure(results)
    assert len(samples.axes) == 3 * 2 and all(ax.get_aspect() == 1.0 for ax in samples.axes)
    fig = evaluation_metrics_figure(results)
    assert [a.get_title() for a in fig.axes] == ["Eval loss", "KL divergence (bits)", "Training time (s)",
                                                 "Inference time (s)"]
    assert len(fig.axes[1].patches) == 3 * 2  # runs x data sets
    assert len(error_bars(fig.axes[1])) == 3  # two seeds: 95% CI error bars on every run's bars
    fig = grid_variance_figure(results)
    assert len(fig.axes[0].patches) == 2  # only the multi-scale run, on two data sets
    colours = run_colours(results)
    assert list(colours) == ["base", "good", "noisy"] and len(set(colours.values())) == 3
    assert fig.axes[0].patches[0].get_facecolor()[:3] == pytest.approx(mcolors.to_rgb(colours["noisy"]))


def test_single_seed_figures_have_no_bands_or_error_bars(tmp_path):
    results = load_results(make_study(tmp_path / "s", seeds=(0,)))
    assert all(not a.collections for a in train_loss_figure(results).axes if a.get_visible())
    fig = evaluation_metrics_figure(results)
    assert not error_bars(fig.axes[1])


def test_overlay_points_survive_a_missing_data_set(monkeypatch):
    import gridnoise.data as data

    points = overlay_points("moons", 42)
    assert points.shape == (5000, 2)

    def unavailable(*args, **kwargs):
        raise data.DataError("no table")

    monkeypatch.setattr(data, "load", unavailable)
    with pytest.warns(UserWarning, match="no table"):
        assert overlay_points("dino", 42) is None


def test_datasets_figure_has_one_panel_per_data_set_on_shared_axes():
    from gridnoise.data import load
    from gridnoise.plots import datasets_figure

    names = ["moons", "rings", "scales", "checkerboard", "pinwheel"]
    fig = datasets_figure({n: load(n, 200) for n in names}, columns=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == names and len(fig.axes) == 8
    assert all(ax.get_xlim() == (-4.5, 4.5) and ax.get_ylim() == (-4.5, 4.5) for ax in visible)
    assert len(visible[1].collections[0].get_offsets()) == 200
