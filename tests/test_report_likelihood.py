"""The report's likelihood sections from a study written from known inputs (`evaluation.json` per task)."""

import json

import pytest

from gridnoise.report_likelihood import knn_vs_exact_section, likelihood_section
from gridnoise.results import load_results
from test_report import DATASETS, SEEDS, render, rows_of, write_study

SLIDING = {0: 0.1, 1: 0.1, 2: 0.2, 3: 0.1, 4: 0.1}  # good: share of points whose flow slides, per seed


def evaluation(run: str, seed: int) -> dict:
    bound = 3.0 + 0.01 * seed
    if run == "base":
        return {"nll_elbo": bound, "nll_ode": 1.5 + 0.01 * seed, "nll_ode_stderr": 0.02, "kl_exact": 0.5 + 0.02 * seed,
                "nll_ode_crossings": 0.0, "nll_ode_nontransversal": 0.0}
    if run == "good":  # a bound 0.2 better; its flow slides along cell edges, so no ODE likelihood
        return {"nll_elbo": bound - 0.2 + 0.001 * seed, "nll_ode_crossings": 3.0,
                "nll_ode_nontransversal": SLIDING[seed],
                "nll_ode_skipped": f"original_grid: the flow slides along a cell edge for {SLIDING[seed]:.1%}"}
    return {"nll_elbo": bound, "kl_bound": 1.0,
            "nll_ode_skipped": "reverse_variance: the reverse step's variance is learned"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = write_study(tmp_path_factory.mktemp("likelihood") / "study")
    for run in ("base", "good", "noisy"):
        for dataset in DATASETS:
            for seed in SEEDS:
                (out / run / dataset / f"seed_{seed}" / "evaluation.json").write_text(json.dumps(evaluation(run, seed)))
    return load_results(out)


def test_the_ode_column_says_why_a_run_has_no_ode_likelihood(results):
    text = render(likelihood_section(results))
    good, = rows_of(text.split("moons")[0], "good")
    noisy, = rows_of(text.split("moons")[0], "noisy")
    assert "-0.198" in good and "better*" in good  # the bound: 0.2 - 0.001 * mean seed better
    # no ODE likelihood, so no paired test: the cell says why
    assert "none: the flow slides along cell edges (10%-20% of points), not invertible" in good
    assert "none: the reverse step's variance is learned" in noisy and "n.s." in noisy


def test_the_kl_check_lists_each_runs_exact_kl_where_it_has_one(results):
    text = render(knn_vs_exact_section(results))
    base, = rows_of(text.split("moons")[0], "base")
    noisy, = rows_of(text.split("moons")[0], "noisy")
    assert "0.540" in base  # the exact KL's mean over seeds: 0.5 + 0.02 * 2
    assert noisy.endswith("| - | 1.000 [1.000, 1.000] |")  # no exact KL; its k-NN KL and bound are there
