import numpy as np
import pytest

from conftest import make_study
from gridnoise.plots import (evaluation_metrics_figure, final_grids_figure, generated_images_figure, grid_heatmap,
                             grid_variance_figure, run_colours, train_loss_figure)
from gridnoise.results import load_results


def test_heatmap_orientation_and_extent():
    values = np.tile(np.arange(4.0)[:, None], (1, 4))  # grows with the x cell index (axis 0)
    fig = grid_heatmap(values, [-4, 4, -2, 2], points=np.zeros((3, 2)))
    image = fig.axes[0].images[0]
    assert image.origin == "lower" and list(image.get_extent()) == [-4, 4, -2, 2]
    shown = np.asarray(image.get_array())
    assert np.array_equal(shown, values.T)  # rows = y, columns = x: colour increases left to right
    assert (np.diff(shown[0]) > 0).all()


def test_final_grids_rows_columns_and_product():
    coarse = np.ones((100, 5, 5))
    coarse[:, 0, 0] = 2.0
    fine = np.ones((100, 20, 20))
    fine[:, 1, 1] = 3.0
    fig = final_grids_figure({"coarse_grid": coarse, "fine_grid": fine}, [-1, 1, -1, 1],
                             points=np.array([[-4.0, -3.0], [4.0, 3.5]]))
    heatmaps = [ax for ax in fig.axes if ax.images]
    assert len(heatmaps) == 3 * 5  # coarse, fine, combined x t = 0, 25, 50, 75, 99
    combined = np.asarray(heatmaps[10].images[0].get_array()).T  # back to (x, y)
    assert combined.shape == (20, 20) and combined[1, 1] == 6.0 and combined[3, 3] == 2.0 and combined[4, 4] == 1.0
    assert heatmaps[0].get_xlim() == pytest.approx((-4, 4))  # axes span the data, not just the grid


def test_study_figures_have_their_panels(tmp_path):
    results = load_results(make_study(tmp_path / "s", seeds=(0, 1)))
    assert len([a for a in train_loss_figure(results).axes if a.get_visible()]) == 2
    assert len(generated_images_figure(results).axes) == 3 * 2
    fig = evaluation_metrics_figure(results)
    assert [a.get_title() for a in fig.axes] == ["Eval loss", "KL divergence (bits)", "Training time (s)",
                                                 "Inference time (s)"]
    assert len(fig.axes[1].patches) == 3 * 2  # runs x data sets
    fig = grid_variance_figure(results)
    assert len(fig.axes[0].patches) == 2  # only the multi-scale run, on two data sets
    colours = run_colours(results)
    assert len(set(colours.values())) == 3
    assert fig.axes[0].patches[0].get_facecolor()[:3] == pytest.approx(
        tuple(int(colours["noisy"][i:i + 2], 16) / 255 for i in (1, 3, 5)))
