"""A study's figures, checked as figure objects: panels, error bars, the forest plots' two intervals,
significance marks (against known inputs) and reasons for missing rows, axes a diverging run does not
set, and the labelled near-zero variance bars."""

import matplotlib.colors as mcolors
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from test_sections import DATASETS, RUNS, kl_of, write_study

from gridnoise import rundir
from gridnoise.report.claims import study_tests
from gridnoise.report.colours import run_colours
from gridnoise.report.forest import HOLM_BAR, PLAIN_LINE
from gridnoise.report.run_figures import CLIPPED_GID
from gridnoise.report.stats import holm_interval
from gridnoise.report.study_figures import (
    HOLM_GID,
    costs_figure,
    evaluation_metrics_figure,
    forest_figure,
    generated_images_figure,
    grid_variance_figure,
    train_loss_figure,
)
from gridnoise.study.results import load_results

from conftest import make_study, write_evaluations


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
    colours = run_colours(results.runs, results.baseline)
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


def holm_bars(ax):
    return [line for line in ax.lines if line.get_gid() == HOLM_GID]


def reasons(ax) -> list[str]:
    """The grey notes of a forest panel's rows without a value, unwrapped."""
    return [t.get_text().replace("\n", " ") for t in ax.texts if t.get_text() != "*"]


def test_forest_plot_marks_what_the_tests_find(known):
    fig = forest_figure(known, "kl_divergence")
    assert [ax.get_title() for ax in fig.axes] == list(DATASETS)
    assert fig.get_suptitle().startswith("KL divergence (bits) (secondary):")  # W2 is this study's primary
    assert forest_figure(known, "w2").get_suptitle().startswith("Wasserstein-2 (primary):")
    found = {k: (c.test, c.p_holm) for k, c in study_tests(known)["kl_divergence"].items()}
    colours = run_colours(known.runs, known.baseline)
    for ax, dataset in zip(fig.axes, DATASETS):
        assert any(list(line.get_xdata()) == [0.0, 0.0] for line in ax.lines)  # the zero line
        bars = error_bars(ax)
        assert len(bars) == 2 and len(holm_bars(ax)) == 2  # good and noisy; the baseline is the reference
        for bar, thick, run in zip(bars, holm_bars(ax), ("good", "noisy")):
            test, adjusted = found[(run, dataset)]
            marker = bar.lines[0]
            expected = np.mean([kl_of(run, s) - kl_of("base", s) for s in range(5)])
            assert marker.get_xdata()[0] == pytest.approx(expected) == pytest.approx(test.mean_diff)
            # the thin line is the unadjusted paired t-interval
            segment = bar.lines[2][0].get_segments()[0]
            assert [segment[0][0], segment[1][0]] == pytest.approx([test.ci_lo, test.ci_hi])
            # the thick bar is the Holm-compatible one: off 0 exactly when the marker is filled
            lo, hi = thick.get_xdata()
            assert (lo, hi) == pytest.approx(holm_interval(test, adjusted, 0.05))
            assert lo <= test.ci_lo and hi >= test.ci_hi and mcolors.same_color(thick.get_color(), colours[run])
            filled = mcolors.to_rgb(marker.get_markerfacecolor()) == mcolors.to_rgb(colours[run])
            assert filled == (adjusted < 0.05) == (lo > 0 or hi < 0)
        assert [t.get_text() for t in ax.texts] == ["*"]  # good: 0.1 better on every seed; noisy: noise
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [label for _, label, _ in RUNS[1:]]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [HOLM_BAR, PLAIN_LINE]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A three-seed study on moons with `gridnoise evaluate`'s files: `good`'s flow slides on two seeds
    (no ODE likelihood), `noisy` has no bound."""
    study = make_study(tmp_path_factory.mktemp("evaluated") / "s", seeds=(0, 1, 2), datasets=("moons",))
    return load_results(write_evaluations(study))


def test_a_forest_row_without_a_value_says_why(evaluated, tmp_path):
    ode = forest_figure(evaluated, "nll_ode").axes[0]
    assert [t.get_text() for t in ode.get_yticklabels()] == ["10x10 Grid", "Multi-scale"]  # the row stays
    assert reasons(ode) == ["the flow slides along cell edges (10% of points on 2 of 3 seeds), not invertible"]
    assert len(error_bars(ode)) == 1 and error_bars(ode)[0].lines[0].get_ydata()[0] == 1  # noisy's, on its row
    bound = forest_figure(evaluated, "nll_elbo").axes[0]
    assert reasons(bound) == ["not evaluated on moons"] and len(error_bars(bound)) == 1
    # one seed: the difference is drawn, without an interval or a test, and says so
    single = load_results(make_study(tmp_path / "one", seeds=(0,), datasets=("moons",)))
    ax = forest_figure(single, "kl_divergence").axes[0]
    assert reasons(ax) == ["one seed: no interval, no test"] * 2
    assert len(error_bars(ax)) == 2 and not holm_bars(ax)
    assert all(not b.has_xerr for b in error_bars(ax))


@pytest.fixture(scope="module")
def diverging(tmp_path_factory):
    """A two-seed study whose `noisy` run diverged on moons: W2 113 and 114 (the others about 0.7)
    and samples at about +-1000 on seed 0."""
    study = make_study(tmp_path_factory.mktemp("diverging") / "s", seeds=(0, 1))
    for d in sorted(study.glob("*/*/seed_*")):
        run, dataset, seed = d.parent.parent.name, d.parent.name, int(d.name.split("_")[1])
        metrics = rundir.read_metrics(d)
        blown = run == "noisy" and dataset == "moons"
        metrics["w2"] = 113.0 + seed if blown else 0.7 + 0.01 * seed + 0.02 * ["base", "good", "noisy"].index(run)
        if blown and seed == 0:
            rundir.write_samples(d, np.random.default_rng(1).normal(size=(200, 2)) * 1000)
        rundir.write_metrics(d, metrics)
    return load_results(study)


def clipped_marks(ax):
    return [a for a in [*ax.lines, *ax.collections] if a.get_gid() == CLIPPED_GID]


def test_a_diverging_run_does_not_set_the_metric_axes(diverging):
    fig = evaluation_metrics_figure(diverging)
    panels = np.array(fig.axes).reshape(2, 2)  # kl_divergence and w2 by moons and line
    w2 = panels[1, 0]
    assert w2.get_ylabel() == "Wasserstein-2" and w2.get_title() == ""
    lo, hi = w2.get_ylim()
    assert 0.5 < lo and hi < 1.0  # fitted to the others (0.70-0.75, with their CIs), not to 113
    (mark,) = clipped_marks(w2)
    assert mark.get_ydata()[0] > 0.9 and mark.get_marker() == "^"  # inside the top edge (axes units)
    assert mcolors.same_color(mark.get_color(), run_colours(diverging.runs, diverging.baseline)["noisy"])
    assert [t.get_text() for t in w2.texts] == ["113.500"]  # its true mean, beside it
    assert len(error_bars(w2)) == 2  # base and good, drawn as usual
    assert "1 diverging mean beyond the axis, value printed" in fig.get_suptitle()
    for ax in (panels[0, 0], panels[0, 1], panels[1, 1]):  # nothing diverged there: nothing clipped
        assert not clipped_marks(ax) and not ax.texts


def test_a_diverging_sampler_does_not_set_the_sample_axes(diverging):
    fig = generated_images_figure(diverging)
    panels = np.array(fig.axes).reshape(3, 2)  # base, good, noisy by moons and line
    blown = panels[2, 0]
    (xlo, xhi), (ylo, yhi) = blown.get_xlim(), blown.get_ylim()
    data = blown.collections[0].get_offsets()  # the moons data behind the samples
    assert xlo < data[:, 0].min() and xhi > data[:, 0].max() and xhi - xlo < 20  # the data's extent, not +-1000
    assert (xlo, xhi) == panels[0, 0].get_xlim()  # a data set's panels share the view
    (mark,) = clipped_marks(blown)
    edge = mark.get_offsets()
    inside = len(blown.collections[1].get_offsets())
    assert len(edge) + inside == 200 and len(edge) > 190
    assert np.all(np.isclose(edge[:, 0], xlo) | np.isclose(edge[:, 0], xhi) | np.isclose(edge[:, 1], ylo)
                  | np.isclose(edge[:, 1], yhi))  # drawn on the edge
    assert blown.texts[0].get_text().startswith(f"{len(edge)} of 200 beyond the axes")
    assert f"{len(edge)} samples beyond, drawn at the edge" in fig.get_suptitle()
    others = [ax for ax in fig.axes if ax is not blown]
    assert all(not clipped_marks(ax) and len(ax.collections) == 2 for ax in others)


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
