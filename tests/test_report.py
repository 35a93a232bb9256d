from conftest import make_study
from gridnoise.plots import make_figures
from gridnoise.report import write_report
from gridnoise.results import load_results, write_summaries
from gridnoise.stats import confidence_interval


def test_report_from_known_inputs(tmp_path):
    out = make_study(tmp_path / "study")
    results = load_results(out)
    write_summaries(results)
    figures = make_figures(results, out)
    names = {p.relative_to(out).as_posix() for p in figures}
    assert {"train_loss.png", "generated_images.png", "evaluation_metrics.png", "grid_variance_comparison.png",
            "final_grids/good_moons.png", "final_grids/noisy_line.png"} <= names
    for p in figures:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "good/moons/seed_0/heatmaps/moons_grid_step_500.png").is_file()

    text = write_report(results, out, figures).read_text()
    # One cell recomputed independently: the baseline's KL on moons over seeds 0..4.
    mean, lo, hi = confidence_interval([0.5 + 0.01 * s for s in range(5)])
    assert f"{mean:.3f} [{lo:.3f}, {hi:.3f}] (n=5)" in text
    kl_section = text.split("### KL divergence (bits)")[2].split("###")[0]
    good_rows = [row for row in kl_section.splitlines() if row.startswith("| good")]
    noisy_rows = [row for row in kl_section.splitlines() if row.startswith("| noisy")]
    assert len(good_rows) == 2 and all(row.endswith("better* |") for row in good_rows)
    assert all(row.endswith("n.s. |") for row in noisy_rows)
    assert "-0.100" in good_rows[0]  # the constructed difference
    # Training time: good is 5 s slower on every seed -> significantly worse.
    time_section = text.split("### Training time (s)")[2].split("###")[0]
    assert all(r.endswith("worse* |") for r in time_section.splitlines() if r.startswith("| good"))
    assert "10x10 Grid is better than the baseline on moons" in text.split("## Metrics")[0]
    assert "0.095 / 0.520" in text  # the seed's moons baseline KL beside our mean
    assert "not comparable across variants" in text
    assert "+10,256" in text  # grid10 adds 100 x 10 x 10 grid entries + 256 input weights
    assert "| base Baseline | moons | 0.900 | 0.520 |" in text  # KL history
    assert "![train_loss](train_loss.png)" in text and "(final_grids/good_moons.png)" in text
    assert "304" in text  # peak memory of seed 4


def test_single_seed_report_says_nothing_is_significant(tmp_path):
    out = make_study(tmp_path / "study", seeds=(0,))
    results = load_results(out)
    text = write_report(results, tmp_path, make_figures(results, tmp_path / "figs")).read_text()
    assert "One seed per task" in text and "n/a (1 seed)" in text
    assert "(figs/train_loss.png)" in text
