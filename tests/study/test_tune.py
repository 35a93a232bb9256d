"""`gridnoise tune` on real small tunings: equal budgets, the same trials from the same seed, pruning
by one rule for every arm, resuming after SIGKILL, and a tuned experiment file that reproduces its
best trials."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from gridnoise import rundir
from gridnoise.components import sampling_components
from gridnoise.data import run_points
from gridnoise.data.datafile import to_model
from gridnoise.likelihood import bits_per_dim
from gridnoise.report.blocks import fmt_setting
from gridnoise.report.outputs import write_study_outputs
from gridnoise.report.tuning import ZOOM_FROM_TRIAL, best_so_far, importances, progress_limits, write_tuning_outputs
from gridnoise.rundir import JOURNAL_FILE, TUNED_FILE, TUNING_FILE
from gridnoise.seeding import generator
from gridnoise.study.cluster import Cluster
from gridnoise.study.evaluation import VALIDATION_STREAM, heldout_points, sampler_bound
from gridnoise.study.executor import run_tasks
from gridnoise.study.experiment import load_experiment
from gridnoise.study.trials import objective_value
from gridnoise.study.tune import report_steps, tune

from conftest import cli

TRIALS, CONCURRENT, STEPS, EVERY, STARTUP = 6, 2, 120, 40, 2

EXPERIMENT = f"""[experiment]
name = "tiny_tuning"
datasets = ["moons", "line"]
seeds = [0, 1]
baseline = "base"

[defaults]
n_points = 1000
[defaults.diffusion]
num_timesteps = 20
[defaults.train]
steps = {STEPS}
batch_size = 64
checkpoint_every = 20
[defaults.model]
hidden_dim = 32
hidden_layers = 1
embedding_dim = 16
[defaults.eval]
num_samples = 200

[defaults.search]
"train.lr" = {{ low = 1e-4, high = 3e-2, log = true }}

[runs.base]
variant = "baseline"

[runs.grid]
variant = "multiscale"
[runs.grid.search]
"adaptation.grids.fine" = {{ low = 4, high = 12, step = 4 }}

[tune]
trials = {TRIALS}
concurrent_trials = {CONCURRENT}
validation_points = 200
report_every = {EVERY}
pruner_options = {{ n_startup_trials = {STARTUP} }}
"""


def write_experiment(directory: Path) -> Path:
    path = directory / "tiny.toml"
    path.write_text(EXPERIMENT)
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """An uninterrupted tuning on a local cluster of two workers: (experiment file, tuning directory)."""
    root = tmp_path_factory.mktemp("tune")
    path = write_experiment(root)
    outcome = tune(load_experiment(path), root / "full", cluster=Cluster(workers=2), progress=False)
    assert outcome.tuned_file == root / "full" / TUNED_FILE
    return path, root / "full"


def arms(directory: Path) -> dict:
    return json.loads((directory / TUNING_FILE).read_text())["arms"]


def studies(directory: Path) -> dict[str, optuna.Study]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(directory / JOURNAL_FILE)))
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
            for s in optuna.get_all_study_summaries(storage)}


def test_every_arm_gets_the_same_budget(tuned):
    _, out = tuned
    summary = arms(out)
    assert set(summary) == {"base/moons", "base/line", "grid/moons", "grid/line"}
    for name, arm in summary.items():
        assert arm["trials"] == TRIALS and arm["complete"] + arm["pruned"] + arm["fail"] == TRIALS, name
        assert len(list((out / "trials" / name).iterdir())) == TRIALS
    assert set(summary["grid/line"]["best_params"]) == {"train.lr", "adaptation.grids.fine"}
    assert not list(out.glob("trials/**/*.png")), "a trial drew figures: it is scored, not viewed"


def test_pruning_follows_one_rule_in_every_arm(tuned):
    """Each trial of each arm is pruned exactly where the median rule says, judged against the trials
    completed in earlier batches, at the same report steps: and some trial was pruned."""
    _, out = tuned
    steps = report_steps(STEPS, EVERY, True)
    pruned = 0
    for name, study in studies(out).items():
        trials = study.get_trials()
        for trial in trials:
            earlier = [t for t in trials if t.number < trial.number - trial.number % CONCURRENT
                       and t.state == optuna.trial.TrialState.COMPLETE]
            expected, last = optuna.trial.TrialState.COMPLETE, steps[-1]
            for step in steps[:-1]:
                best = min(v for s, v in trial.intermediate_values.items() if s <= step)
                if len(earlier) >= STARTUP and best > statistics.median(t.intermediate_values[step] for t in earlier):
                    expected, last = optuna.trial.TrialState.PRUNED, step
                    break
            assert (trial.state, max(trial.intermediate_values)) == (expected, last), (name, trial.number)
            assert sorted(trial.intermediate_values) == [s for s in steps if s <= last]
            pruned += trial.state == optuna.trial.TrialState.PRUNED
    assert pruned > 0, "no trial was pruned: the rule was not exercised"


def test_more_trials_are_added_to_a_finished_tuning(tuned, tmp_path):
    import shutil

    path, out = tuned
    grown = tmp_path / "grown"
    shutil.copytree(out, grown)
    tune(load_experiment(path), grown, trials=TRIALS + 1, cluster=Cluster(workers=2), progress=False)
    before, after = studies(out), studies(grown)
    for name, study in after.items():
        trials = study.get_trials()
        assert len(trials) == TRIALS + 1
        assert [(t.params, t.state, t.value) for t in trials[:TRIALS]] == \
            [(t.params, t.state, t.value) for t in before[name].get_trials()]


def test_the_tuned_experiment_reproduces_each_best_trial(tuned, tmp_path):
    """tuned.toml run on the tuning seed computes exactly what each arm's best trial computed; on the
    experiment's own seeds (its default) it is measured on other seeds."""
    _, out = tuned
    exp = load_experiment(out / TUNED_FILE)
    assert exp.seeds == [0, 1]
    outcome = run_tasks(exp.restricted(seeds=[100], datasets=["moons"]), tmp_path / "final", cluster=Cluster(workers=2),
                        progress=False)
    assert not outcome.failed
    chosen = {k: v for k, v in arms(out).items() if k.endswith("/moons")}
    for name, arm in chosen.items():
        run, dataset = name.split("/")
        final = rundir.read_metrics(tmp_path / "final" / run / dataset / "seed_100")
        trial = rundir.read_metrics(out / "trials" / name / f"trial_{arm['best_trial']}" / "seed_100")
        assert final == {**trial, "training_time": final["training_time"],
                         "inference_time": final["inference_time"]}, name
    # its report says which settings each run won with, and how many trials it had
    report = write_study_outputs(tmp_path / "final").read_text()
    section = report[report.index("## Tuned settings"):].split("\n## ")[0]
    for name, arm in chosen.items():
        run, dataset = name.split("/")
        row = next(line for line in section.splitlines() if line.startswith(f"| {run} ") and f"| {dataset} |" in line)
        # each searched setting under the name its search space gives it (`adaptation.grids.fine`)
        assert all(f"`{p}` = {fmt_setting(v)}" in row for p, v in arm["best_params"].items()), row
        assert f"| {arm['trials']} | {arm['pruned']} | {arm['fail']} |" in row


def test_the_tuning_report_shows_each_search(tuned, tmp_path):
    """The tuning's report reads the journal: each arm's counts and chosen settings, its best-so-far
    curve (the running best of its finished trials) and its parameter importances."""
    _, out = tuned
    report = write_tuning_outputs(out, tmp_path).read_text()
    assert (tmp_path / "tuning_progress.png").is_file() and (tmp_path / "tuning_importances.png").is_file()
    assert "report.html" in {p.name for p in tmp_path.iterdir()}
    for name, study in studies(out).items():
        run, dataset = name.split("/")
        trials = study.get_trials()
        finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
        row = next(line for line in report.splitlines() if line.startswith(f"| {run} | {dataset} |"))
        assert f"| {len(trials)} | {len(finished)} | {pruned} |" in row
        xs, ys = best_so_far(study)
        first = min(t.number for t in finished)
        assert xs == list(range(first + 1, len(trials) + 1))
        assert ys == [min(t.value for t in finished if t.number < x) for x in xs]
        found = importances(study)
        if len(finished) >= 2:
            assert set(found) == set(trials[0].params) and sum(found.values()) == pytest.approx(1.0)
            assert all(f"`{p}` {v:.2f}" in report for p, v in found.items())


def test_a_bad_first_trial_is_cut_off_above_the_progress_panel_and_no_later_value_is():
    """A first trial far worse than the rest (a diverged run, say) would squeeze every curve into a line:
    the panel spans every best-so-far value from trial ZOOM_FROM_TRIAL on and cuts the start off above."""
    trials = list(range(1, 9))
    diverged = (trials, [30.0, 1.0, 1.0, 0.5, 0.45, 0.4, 0.3, 0.3])
    steady = (trials, [2.0, 1.5, 1.2, 1.1, 0.9, 0.9, 0.8, 0.8])
    low, high = progress_limits([diverged, steady])
    later = [y for xs, ys in (diverged, steady) for x, y in zip(xs, ys) if x >= ZOOM_FROM_TRIAL]
    assert all(low < y < high for y in later) and high < 1.1 and low < 0.3
    # with fewer trials than that, each run's last value is inside; with no finished trial, no limits
    low, high = progress_limits([([1, 2], [30.0, 2.0]), ([1], [1.0])])
    assert low < 1.0 and 2.0 < high < 30.0
    assert progress_limits([([], [])]) is None


def test_trials_are_scored_on_a_validation_draw(tuned):
    """A trial's value is its bound on the validation draw: not the training points, not the held-out
    draw the final comparison is measured on."""
    _, out = tuned
    arm = arms(out)["base/moons"]
    run_dir = out / "trials" / "base/moons" / f"trial_{arm['best_trial']}" / "seed_100"
    cfg = rundir.read_config(run_dir)
    validation, held = heldout_points(cfg, 200, VALIDATION_STREAM)[0], heldout_points(cfg, 200)[0]
    assert not np.allclose(validation, held)
    assert not np.isin(validation, run_points(cfg)).all(axis=1).any()
    assert objective_value(run_dir, "nll_elbo", 200) == pytest.approx(arm["best_value"])
    state = rundir.load_checkpoint(run_dir / rundir.CHECKPOINT_FILE)
    scheduler, model, adaptation = sampling_components(state, torch.device("cpu"))

    def bound(points):
        x = torch.as_tensor(to_model(points, cfg.data.shift, cfg.data.scale), dtype=torch.float32)
        value = sampler_bound(model, adaptation, scheduler, cfg, x, cfg.sampler,
                              generator(cfg.seed, "validation-elbo"))
        return bits_per_dim(value.mean(), cfg.data.scale)
    assert bound(validation) == pytest.approx(arm["best_value"], rel=1e-9)
    assert bound(held) != pytest.approx(arm["best_value"], rel=1e-6)


def test_a_killed_tuning_resumes_to_the_same_trials(tuned, tmp_path):
    """A tuning of one data set: SIGKILL of one worker mid-trial (Dask retries its segment elsewhere),
    then of the command with its whole cluster; the same command, on one worker this time, then
    finishes with the trials of the uninterrupted tuning's arms on that data set, run on two: the same
    seed gives the same trials whatever the workers and the other data sets. The killed session's
    time counts in the tuning's wall time, and its report shows the trials so far from the journal."""
    path, full = tuned
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "gridnoise", "tune", str(path), "--out", str(out), "--datasets", "line",
            "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, worker = time.time() + 120, None
    while time.time() < deadline and proc.poll() is None and worker is None:
        for segments in out.glob(f"trials/*/*/trial_*/seed_100/{rundir.SEGMENTS_FILE}"):
            run = segments.parent
            if (run / rundir.CHECKPOINT_FILE).exists() and not (run / rundir.METRICS_FILE).exists():
                worker = rundir.read_segments(run)[-1]["pid"]
                break
        time.sleep(0.02)
    assert worker is not None, "no trial checkpointed within 120 s"
    os.kill(worker, signal.SIGKILL)
    while time.time() < deadline and proc.poll() is None and len(list(out.glob("trials/*/*/trial_*"))) < 6:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / TUNED_FILE).exists(), "the tuning finished before it was killed"
    killed_after = json.loads((out / TUNING_FILE).read_text())["wall_time"]
    assert killed_after > 0, "the killed session's time was not recorded"
    report = write_tuning_outputs(out, tmp_path / "so_far").read_text()
    assert "This tuning has not finished" in report
    for name, study in studies(out).items():  # the journal's counts so far, though tuning.json has none
        trials = study.get_trials()
        ended = sum(t.state.is_finished() for t in trials)
        assert ended < TRIALS
        row = next(line for line in report.splitlines() if line.startswith(f"| {name.replace('/', ' | ')} |"))
        assert f"| {len(trials)} | {sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)} |" in row
    done = subprocess.run([*args[:-2], "1", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert arms(out) == {k: v for k, v in arms(full).items() if k.endswith("/line")}
    assert json.loads((out / TUNING_FILE).read_text())["wall_time"] > killed_after
    assert "has not finished" not in write_tuning_outputs(out, tmp_path / "finished").read_text()


def test_bad_tuning_input_is_one_line_and_writes_nothing(tuned, tmp_path):
    path, full = tuned
    before = {p: p.stat().st_mtime_ns for p in full.rglob("*") if p.is_file()}
    other = tmp_path / "other.toml"
    other.write_text(EXPERIMENT.replace('"train.lr" = { low = 1e-4', '"train.lr" = { low = 2e-4'))
    cases = [
        (["tune", path, "--out", tmp_path / "a", "--trials", "0"], "--trials must be >= 1"),
        (["tune", other, "--out", full], "holds the tuning of another experiment"),
    ]
    for bad, spec in [('"train.lrr" = { low = 1e-4, high = 1e-2 }', "is not a setting of this run"),
                      ('"train.lr" = { low = 1e-2, high = 1e-4 }', "empty or inverted"),
                      ('"train.lr" = { low = 1e-2, high = 1e-2 }', "empty or inverted"),
                      ('"train.lr" = { choices = ["fast", "slow"] }', "must be float"),
                      ('"train.lr" = { choices = [] }', "non-empty list"),
                      ('"train.lr" = { low = 0.0, high = 1e-2, log = true }', "log range needs low > 0")]:
        file = tmp_path / f"bad{len(cases)}.toml"
        file.write_text(EXPERIMENT.replace('"train.lr" = { low = 1e-4, high = 3e-2, log = true }', bad))
        cases.append((["tune", file, "--out", tmp_path / f"out{len(cases)}"], spec))
    for args, text in cases:
        proc = cli(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and text in lines[0], (args, proc.stderr)
    assert not any((tmp_path / name).exists() for name in ("a", *(f"out{i}" for i in range(len(cases)))))
    assert {p: p.stat().st_mtime_ns for p in full.rglob("*") if p.is_file()} == before


def test_a_tuning_on_slurm_has_the_same_trials(tuned, tmp_path, slurm):
    """Through the Python API, on Slurm jobs (the test Slurm's), for one data set: the trials of the
    local tuning's arms on it, and the tuning's report beside them."""
    import gridnoise

    path, full = tuned
    outcome = gridnoise.tune_experiment(path, tmp_path / "slurm", datasets=["line"], cluster="slurm",
                                        cluster_settings={**slurm, "maximum_jobs": 2,
                                                          "log_directory": str(tmp_path / "logs")})
    assert outcome.tuned_file == tmp_path / "slurm" / TUNED_FILE and not outcome.incomplete
    assert arms(tmp_path / "slurm") == {k: v for k, v in arms(full).items() if k.endswith("/line")}
    assert (tmp_path / "slurm" / "report.md").is_file() and (tmp_path / "slurm" / "report.html").is_file()
