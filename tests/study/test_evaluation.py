"""`gridnoise evaluate`: likelihoods added to finished runs and studies (on a real local Dask cluster)
from their checkpoints, without touching what training wrote or the tasks' hashes."""

from __future__ import annotations

import functools
import json
import math
import shutil

import numpy as np
import pytest
import torch

from gridnoise.components import sampling_components
from gridnoise.data.datafile import to_model
from gridnoise.likelihood import ODE_TOLERANCE, network_noise_model, ode_log_likelihood
from gridnoise.report.run_figures import likelihood_figure
from gridnoise.rundir import load_checkpoint, read_config
from gridnoise.study.evaluation import heldout_points, read_evaluation

from conftest import cli, gridnoise, study_file

TINY = ["--steps", 300, "--n-points", 3000, "--timesteps", 20, "--num-samples", 400, "--no-progress"]


def training_files(run_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir()
            if p.is_file() and p.name not in ("evaluation.json", "likelihood_terms.npz", "likelihood.png")}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate") / "run"
    cli("train", "--dataset", "moons", "--variant", "baseline", *TINY, "--out", out, check=True)
    return out


def test_a_run_gains_likelihoods_and_keeps_its_training_results(baseline):
    before = training_files(baseline)
    proc = gridnoise("evaluate", baseline, "--metrics", "nll_elbo,nll_ode,kl_exact", "--ode-points", 200)
    assert "nll_elbo" in proc.stdout
    result = read_evaluation(baseline)
    assert result["heldout"] is True
    for key in ("nll_elbo", "nll_elbo_stderr", "nll_ode", "nll_ode_stderr", "nll_ode_solver_gap", "kl_exact",
                "kl_bound", "entropy_bits", "nll_elbo_time", "nll_ode_time"):
        assert np.isfinite(result[key]), key
    # a trained model's bound lies above its exact (ODE) likelihood
    assert result["nll_elbo"] > result["nll_ode"]
    # the solver's tolerance is tight enough: halving it moves the result by less than its standard error;
    # that check solves the first ODE_CHECK_POINTS points again, and its gap is theirs
    assert 0 < result["nll_ode_solver_gap"] < result["nll_ode_stderr"]
    assert result["nll_ode_check_points"] == 100
    state = load_checkpoint(baseline / "checkpoint.pt")
    scheduler, model, adaptation = sampling_components(state, torch.device("cpu"))
    cfg = read_config(baseline)
    points = heldout_points(cfg, cfg.eval.num_samples)[0][:200]
    x = torch.as_tensor(to_model(points, cfg.data.shift, cfg.data.scale), dtype=torch.float32)
    solve = functools.partial(ode_log_likelihood, network_noise_model(model, adaptation), scheduler)
    # the reported points' values (solved together) against the same points solved more tightly
    reported = solve(x, tolerance=ODE_TOLERANCE).nll[:100].mean()
    gap = abs(solve(x[:100], tolerance=ODE_TOLERANCE / 2).mean() - reported) / (2 * math.log(2))
    assert result["nll_ode_solver_gap"] == pytest.approx(gap, rel=1e-9)
    assert result["kl_exact"] == pytest.approx(2 * result["nll_ode"] - result["entropy_bits"])
    assert (result["nll_elbo_points"], result["nll_ode_points"]) == (400, 200)
    with np.load(baseline / "likelihood_terms.npz") as f:
        steps = f["elbo_steps"]
    assert steps.shape == (20,) and (steps[1:] >= 0).all()  # KL terms are non-negative
    assert training_files(baseline) == before  # metrics.json, checkpoint, samples: untouched
    assert f"-> {baseline / 'likelihood.png'}" in proc.stdout
    # its figure: the bound's KL terms per timestep t >= 1 on a log axis, the totals in the legend
    fig = likelihood_figure(dict(np.load(baseline / "likelihood_terms.npz")), result)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 2  # the standard sampler's terms, the ODE's label
    assert np.array_equal(ax.lines[0].get_ydata(), steps[1:]) and list(ax.lines[0].get_xdata()) == list(range(1, 20))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith(f"standard sampler: bound {result['nll_elbo']:.3f}") and "ODE" in labels[1]
    # a second call finds nothing to do and leaves the file as it is
    written = (baseline / "evaluation.json").read_bytes()
    cli("evaluate", baseline, "--metrics", "nll_elbo", check=True)
    assert (baseline / "evaluation.json").read_bytes() == written


def test_a_learned_reverse_variance_has_a_bound_but_no_ode(tmp_path):
    out = tmp_path / "rv"
    cli("train", "--dataset", "line", "--variant", "reverse_variance", *TINY, "--out", out, check=True)
    cli("evaluate", out, "--metrics", "nll_ode,kl_exact", check=True)
    result = read_evaluation(out)
    assert "nll_ode" not in result and "not the standard posterior" in result["nll_ode_skipped"]
    assert np.isfinite(result["nll_elbo"]) and np.isfinite(result["kl_bound"]) and "kl_exact" not in result


@pytest.mark.parametrize("variant", ["multiscale", "conditioning_multiscale"])
def test_grid_runs_cross_cell_edges_and_get_an_ode_likelihood_where_the_flow_is_invertible(tmp_path, tiny_run,
                                                                                          variant):
    out = shutil.copytree(tiny_run(variant, "line"), tmp_path / variant)
    cli("evaluate", out, "--metrics", "nll_ode,kl_exact", "--ode-points", 100, check=True)
    result = read_evaluation(out)
    assert result["nll_ode_crossings"] > 0.1 and result["nll_ode_points"] == 100  # trajectories do cross edges
    if result["nll_ode_nontransversal"] == 0:  # every trajectory crosses its edges: the jumps make it exact
        assert np.isfinite(result["nll_ode"]) and np.isfinite(result["kl_exact"]) and "nll_ode_skipped" not in result
    else:  # some slide along an edge: no density there, so no likelihood
        assert "nll_ode" not in result and "slides along a cell edge" in result["nll_ode_skipped"]
        assert result["kl_exact_skipped"] == result["nll_ode_skipped"]
    # its record is current: a second call has nothing to do
    written = (out / "evaluation.json").read_bytes()
    cli("evaluate", out, "--metrics", "nll_ode,kl_exact", check=True)
    assert (out / "evaluation.json").read_bytes() == written


def test_records_written_by_older_code_are_recomputed(tmp_path, tiny_run):
    """An ODE likelihood of a grid model without its edges' jumps (before nll_ode_crossings) and the
    skip older code wrote for grid models are stale; a baseline's ODE likelihood is not."""
    from gridnoise.data.densities import entropy
    from gridnoise.study.evaluation import missing, stale

    out = shutil.copytree(tiny_run("conditioning_multiscale", "line"), tmp_path / "conditioning")
    evaluation = out / "evaluation.json"
    old_skip = {"nll_ode_skipped": "conditioning: g is looked up per grid cell", "kl_exact_skipped": "same"}
    evaluation.write_text(json.dumps(old_skip))
    assert stale(old_skip, "conditioning") == ["nll_ode", "kl_exact"]
    assert missing(out, ["nll_ode"]) == ["nll_ode", "kl_exact"]  # they go together
    assert missing(out, ["nll_elbo"]) == ["nll_elbo"]  # not asked for: left as they are
    cli("evaluate", out, "--metrics", "nll_ode", "--ode-points", 50, check=True)
    fresh = read_evaluation(out)
    assert "nll_ode_crossings" in fresh and fresh.get("kl_exact_skipped") != "same"
    assert stale(fresh, "conditioning") == [] and missing(out, ["nll_ode", "kl_exact"]) == []
    without_jumps = {"nll_ode": 1.0, "nll_ode_stderr": 0.1, "kl_exact": 0.5, "entropy_bits": 5.0}
    assert stale(without_jumps, "conditioning") == ["nll_ode", "kl_exact"]
    assert stale(without_jumps, "none") == []  # a continuous field needs no jump term
    assert stale(without_jumps, "reverse_variance") == ["nll_ode", "kl_exact"]  # it gets no ODE now
    evaluation.write_text(json.dumps(without_jumps))
    cli("evaluate", out, "--metrics", "kl_exact", "--ode-points", 50, check=True)
    redone = read_evaluation(out)
    assert "nll_ode_crossings" in redone and redone.get("nll_ode") != 1.0 and redone.get("kl_exact") != 0.5
    assert redone["entropy_bits"] == entropy("line").bits


def test_each_seed_is_measured_on_its_own_heldout_draw_and_older_records_are_redone(tmp_path, tiny_run):
    from gridnoise.config import RunConfig
    from gridnoise.study.evaluation import LIKELIHOODS, heldout_points, heldout_seed, missing

    seeds = {heldout_seed(RunConfig(dataset="moons", seed=s)) for s in range(5)}
    assert len(seeds) == 5 and not seeds & set(range(42, 48))  # one per seed, never a training draw
    first, _ = heldout_points(RunConfig(dataset="moons", seed=0), 100)
    second, heldout = heldout_points(RunConfig(dataset="moons", seed=1), 100)
    assert heldout and not np.array_equal(first, second)
    out = shutil.copytree(tiny_run("baseline", "line"), tmp_path / "baseline")
    cli("evaluate", out, "--metrics", "nll_elbo", check=True)
    assert read_evaluation(out)["heldout_seed"] == heldout_seed(RunConfig(dataset="line"))
    assert missing(out, ["nll_elbo"]) == []
    older = {k: v for k, v in read_evaluation(out).items() if k != "heldout_seed"}  # one shared draw for all seeds
    (out / "evaluation.json").write_text(json.dumps(older))
    assert missing(out, ["nll_elbo"]) == list(LIKELIHOODS)


@pytest.mark.parametrize("args, text", [
    (["--metrics", "fid"], "unknown metric(s) fid: choose from nll_elbo, nll_ode, kl_exact"),
    (["--metrics", "nll_elbo", "--ode-points", "1"], "--ode-points must be >= 2"),
])
def test_bad_evaluate_input_is_one_line(baseline, args, text):
    proc = cli("evaluate", baseline, *args)
    assert proc.returncode == 2 and text in proc.stderr and "Traceback" not in proc.stderr


def test_a_failed_ode_solve_is_a_skip_with_its_reason_and_the_study_goes_on(baseline, tmp_path):
    """A run whose network overflows float32 (its weights scaled by 1e12, finite in the checkpoint)
    has a field the ODE solver cannot integrate: it gets nll_ode_skipped with the reason, its data's
    kl_exact too, and the command and the study's other runs go on."""
    import torch

    study = tmp_path / "study"
    for seed in (0, 1):
        run = shutil.copytree(baseline, study / "base" / "moons" / f"seed_{seed}")
        for name in ("evaluation.json", "likelihood_terms.npz", "likelihood.png"):
            (run / name).unlink(missing_ok=True)
    (study / "experiment.json").write_text(json.dumps({
        "name": "ode", "identity": "x", "description": "", "baseline": "base", "datasets": ["moons"], "seeds": [0, 1],
        "runs": [{"name": "base", "label": "Baseline", "variant": "baseline"}]}))
    broken = study / "base" / "moons" / "seed_1"
    state = torch.load(broken / "checkpoint.pt", weights_only=True)
    state["ema"] = {k: v * 1e12 if v.dim() == 2 else v for k, v in state["ema"].items()}
    torch.save(state, broken / "checkpoint.pt")

    proc = cli("evaluate", broken, "--metrics", "nll_ode,kl_exact", "--ode-points", 20, check=True)
    assert "nll_ode_skipped" in proc.stdout and "Traceback" not in proc.stderr
    result = read_evaluation(broken)
    assert "nll_ode" not in result and "the probability-flow field is not finite" in result["nll_ode_skipped"]
    assert result["kl_exact_skipped"] == result["nll_ode_skipped"]
    (broken / "evaluation.json").unlink()
    proc = cli("evaluate", study, "--metrics", "nll_ode", "--ode-points", 20, "--workers", 1, "--no-progress",
               check=True)
    assert "2 tasks done (0 had them), 0 failed" in proc.stdout
    assert np.isfinite(read_evaluation(study / "base" / "moons" / "seed_0")["nll_ode"])
    assert "not finite" in read_evaluation(broken)["nll_ode_skipped"]


def test_a_study_gains_likelihoods_on_a_local_cluster_and_keeps_its_hashes(tmp_path):
    runs = '[runs.base]\nvariant = "baseline"\n[runs.multi]\nvariant = "multiscale"\n' \
           '[runs.multi.eval.extra_samplers]\ncell = { sampler = "cell" }\n'
    experiment = study_file(tmp_path / "e.toml", "lik", ["line"], [0, 1], runs)
    out = tmp_path / "study"
    cli("run", experiment, "--out", out, "--workers", 2, "--no-progress", check=True)
    tasks = sorted(out.glob("*/line/seed_*"))
    before = {d: training_files(d) for d in tasks}
    drawn = {p: p.stat().st_mtime_ns for d in tasks for p in d.rglob("*.png")}
    proc = gridnoise("evaluate", out, "--metrics", "nll_elbo", "--workers", 2)
    assert "4 tasks done (0 had them), 0 failed" in proc.stdout
    for d in tasks:
        assert training_files(d) == before[d] and np.isfinite(read_evaluation(d)["nll_elbo"])
    multi = read_evaluation(out / "multi/line/seed_0")
    assert all((d / "likelihood.png").is_file() for d in tasks)  # drawn with the report
    assert drawn and all(p.stat().st_mtime_ns == t for p, t in drawn.items())  # the rest not redrawn
    assert np.isfinite(multi["cell_nll_elbo"])  # the consistent sampler's bound, beside the standard one's
    metrics = json.loads((out / "multi/line/seed_0/metrics.json").read_text())
    assert np.isfinite(metrics["cell_kl_divergence"])  # sampled with it when training ended
    report = (out / "report.md").read_text()
    assert "## Likelihood: every variant against the baseline" in report and "(cell sampler)" in report
    # nothing to redo, and the study itself is still finished under the same hashes
    assert "4 tasks done (4 had them)" in cli("evaluate", out, "--metrics", "nll_elbo", "--workers", 1).stdout
    assert "4 tasks done (4 already finished)" in cli("run", experiment, "--out", out, "--workers", 1,
                                                      "--no-progress").stdout
