"""A study's figures, checked as figure objects: panels, error bars, the forest plots' intervals
and significance marks (against known inputs), and the labelled near-zero variance bars."""

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from test_sections import DATASETS, RUNS, kl_of, write_study

from gridnoise.report.sections import comparisons
from gridnoise.report.study_figures import (
    costs_figure,
    evaluation_metrics_figure,
    forest_figure,
    generated_images_figure,
    grid_variance_figure,
    run_colours,
    train_loss_figure,
)
from gridnoise.study.results import load_results

from conftest import make_study


def error_bars(ax):
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A two-seed study from known inputs (baseline, a good grid, a noisy multi-scale grid) on moons and line."""
    return load_results(make_study(tmp_path_factory.mktemp("figures") / "s", seeds=(0, 1)))


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The known-input study of test_report: `good` is 0.1 better than the baseline on every seed."""
    return load_results(write_study(tmp_path_factory.mktemp("known") / "study"))


def test_study_figures_have_their_panels(synthetic):
    results = synthetic
    loss = train_loss_figure(results)
    visible = [a for a in loss.axes if a.get_visible()]
    assert [a.get_title() for a in visible] == ["moons", "line"]
    assert all(len(a.lines) == 3 and len(a.collections) == 3 for a in visible)  # a curve and a band per run
    samples = generated_images_figure(results)
    assert len(samples.axes) == 3 * 2 and all(ax.get_aspect() == 1.0 for ax in samples.axes)
    assert all(len(ax.collections) == 2 for ax in samples.axes)  # the data behind, then the samples
    colours = run_colours(results)
    assert list(colours) == ["base", "good", "noisy"] and len(set(colours.values())) == 3


def test_sample_metrics_show_differences_with_the_legend_outside(known):
    fig = evaluation_metrics_figure(known)
    rows = [a for a in fig.axes if a.get_ylabel()]
    assert [a.get_ylabel() for a in rows] == ["KL divergence (bits)", "Wasserstein-2"]  # what it recorded, KL first
    assert [a.get_title() for a in fig.axes[:len(DATASETS)]] == list(DATASETS)  # a column per data set
    assert len(fig.axes) == 2 * len(DATASETS)
    for ax in fig.axes:
        bars = error_bars(ax)
        assert len(bars) == 3  # two seeds: one 95% CI per run
        means = np.array([c.lines[0].get_ydata()[0] for c in bars])
        lo, hi = ax.get_ylim()
        assert lo > 0 and (hi - lo) < 3 * (means.max() - means.min()) + 1e-9  # its own axis, fitted to its values
    assert not fig.axes[0].get_legend() and len(fig.legends) == 1  # the runs' legend is the figure's, outside
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [r["label"] for r in known.runs]
    costs = costs_figure(known)
    labels = [a.get_ylabel() for a in costs.axes if a.get_ylabel()]
    assert labels[0].startswith("Eval loss (not comparable") and labels[1:] == ["Training time (s)",
                                                                                 "Inference time (s)"]


def test_single_seed_figures_have_no_bands_or_error_bars(tmp_path):
    results = load_results(make_study(tmp_path / "s", seeds=(0,)))
    assert all(not a.collections for a in train_loss_figure(results).axes if a.get_visible())
    fig = evaluation_metrics_figure(results)
    assert not error_bars(fig.axes[0]) and len(fig.axes[0].lines) == 3  # one marker per run


def test_forest_plot_marks_what_the_tests_find(known):
    fig = forest_figure(known, "kl_divergence")
    assert [ax.get_title() for ax in fig.axes] == list(DATASETS)
    found = comparisons(known, "kl_divergence")
    colours = run_colours(known)
    for ax, dataset in zip(fig.axes, DATASETS):
        assert any(list(line.get_xdata()) == [0.0, 0.0] for line in ax.lines)  # the zero line
        bars = error_bars(ax)
        assert len(bars) == 2  # good and noisy; the baseline is the reference
        for bar, run in zip(bars, ("good", "noisy")):
            test, adjusted = found[(run, dataset)]
            marker = bar.lines[0]
            expected = np.mean([kl_of(run, s) - kl_of("base", s) for s in range(5)])
            assert marker.get_xdata()[0] == pytest.approx(expected) == pytest.approx(test.mean_diff)
            # the interval drawn is the paired t-interval
            segment = bar.lines[2][0].get_segments()[0]
            assert [segment[0][0], segment[1][0]] == pytest.approx([test.ci_lo, test.ci_hi])
            filled = mcolors.to_rgb(marker.get_markerfacecolor()) == mcolors.to_rgb(colours[run])
            assert filled == (adjusted < 0.05)
        assert [t.get_text() for t in ax.texts] == ["*"]  # good: 0.1 better on every seed; noisy: noise
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [label for _, label, _ in RUNS[1:]]


def test_near_zero_variance_bars_are_labelled(known):
    fig = grid_variance_figure(known)
    fine = fig.axes[1]
    assert fine.get_title() == "Fine grid variance"
    assert len(fine.patches) == 2 and len(fine.texts) == 2  # one multi-scale run on two data sets, each labelled
    for bar, text in zip(fine.patches, fine.texts):
        assert float(text.get_text()) == pytest.approx(bar.get_height(), rel=0.05)


def test_a_report_draws_what_tasks_lack_once_and_leaves_heatmaps_to_plot(tmp_path, capsys):
    """A study's report draws each task's samples, loss and grids figures where missing, and no
    per-snapshot heatmap: those are drawn on demand, by `gridnoise plot STUDY_DIR`, so a second
    report redraws nothing of the tasks'."""
    from gridnoise.cli import main
    from gridnoise.report.outputs import write_study_outputs

    study = make_study(tmp_path / "s", seeds=(0,))
    write_study_outputs(study)
    assert all((d / "samples.png").is_file() and (d / "loss.png").is_file() for d in study.glob("*/*/seed_*"))
    assert (study / "noisy/moons/seed_0/grids.png").is_file()
    assert not list(study.rglob("heatmaps"))
    drawn = {p: p.stat().st_mtime_ns for p in study.glob("*/*/seed_*/*.png")}
    write_study_outputs(study)
    assert drawn == {p: p.stat().st_mtime_ns for p in study.glob("*/*/seed_*/*.png")}
    assert not list(study.rglob("heatmaps"))
    assert main(["plot", str(study)]) == 0 and "figures ->" in capsys.readouterr().out
    assert {p.name for p in (study / "noisy/moons/seed_0/heatmaps").iterdir()} == {
        "moons_coarse_grid_step_500.png", "moons_fine_grid_step_500.png"}  # the original study's names
    assert {p.name for p in (study / "good/line/seed_0/heatmaps").iterdir()} == {"line_grid_step_500.png"}
