"""report.md from a study written from known inputs: every number asserted here is chosen below."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from gridnoise import rundir
from gridnoise.config import DiffusionConfig, RunConfig, adaptation_for
from gridnoise.files import write_json
from gridnoise.report import markdown
from gridnoise.report.markdown import write_report
from gridnoise.report.run_figures import save_figure
from gridnoise.report.stats import convergence_step
from gridnoise.report.study_figures import make_figures, train_loss_figure
from gridnoise.schedulers import DDPMScheduler
from gridnoise.study.results import load_results

from conftest import cli

STEPS = 500
SEEDS = (0, 1, 2, 3, 4)
RUNS = [("base", "Baseline", "baseline"), ("good", "10x10 Grid", "grid10"),
        ("noisy", "Multi-scale + L1", "multiscale_l1")]
DATASETS = ("circle", "moons")
BASE_KL = (0.40, 0.43, 0.41, 0.45, 0.42)  # per seed
GOOD_JITTER = (0.004, -0.003, 0.002, 0.0, -0.002)  # good = baseline - 0.1 + jitter: clearly better
NOISY_JITTER = (0.03, -0.04, 0.02, -0.01, 0.01)  # noisy = baseline + jitter: seed noise only
TRAIN_TIME = {"base": 10.0, "good": 15.0, "noisy": 20.0}  # plus the seed number
GRID_SHAPES = {"grid10": {"grid": 10}, "multiscale_l1": {"coarse_grid": 5, "fine_grid": 20}}
T = 100
N_POINTS, NUM_SAMPLES = 20_000, 2000  # the tasks' data and sample sizes (what the estimator floors see)
SNAPSHOT_SEEDS = (0, 1)  # grid snapshots of two seeds suffice (and keep the per-step heatmaps few)


def render(section) -> str:
    """One report section as Markdown."""
    return markdown.section(section, Path("."))


def kl_of(run: str, seed: int) -> float:
    base = BASE_KL[seed]
    return {"base": base, "good": base - 0.1 + GOOD_JITTER[seed], "noisy": base + NOISY_JITTER[seed]}[run]


def losses(run: str) -> np.ndarray:
    decay = {"base": 50.0, "good": 80.0, "noisy": 120.0}[run]
    return 1.0 + np.exp(-np.arange(STEPS) / decay)


def write_task(root, name: str, variant: str, dataset: str, seed: int, rng) -> None:
    """One finished task, its files written through `gridnoise.rundir` as a study's task writes them."""
    d = rundir.task_dir(root, name, dataset, seed)
    cfg = RunConfig(dataset=dataset, variant=variant, adaptation=adaptation_for(variant), seed=seed)
    cfg.train.steps = STEPS
    cfg.n_points, cfg.eval.num_samples = N_POINTS, NUM_SAMPLES
    rundir.write_config(d, cfg)
    grids = {label: 1 + 0.01 * rng.normal(size=(T, n, n)) for label, n in GRID_SHAPES.get(variant, {}).items()}
    metrics = {"kl_divergence": kl_of(name, seed), "eval_loss": 0.6 + 0.01 * seed,
               "training_time": TRAIN_TIME[name] + seed, "inference_time": 0.2 + 0.01 * seed,
               "w2": kl_of(name, seed) / 2,  # good: 0.05 better on every seed
               # a second sampler: 5x faster, KL 0.2 worse
               "ddim20_inference_time": 0.04, "ddim20_kl_divergence": kl_of(name, seed) + 0.2, "ddim20_w2": 0.5,
               **{f"{label}_variance": float(g.var(ddof=1)) for label, g in grids.items()},
               "abar_T": float(DDPMScheduler.from_config(cfg.diffusion).alphas_cumprod[-1])}  # as a run records it
    write_json(d / rundir.TASK_FILE, {"peak_rss_mb": 300.0 + 100 * [r[0] for r in RUNS].index(name) + seed})
    rundir.write_losses(d, losses(name), losses(name))
    rundir.write_samples(d, rng.normal(size=(300, 2)))
    rundir.write_kl_history(d, {"step": [250, 500], "kl_divergence": [0.9, kl_of(name, seed)]})
    if grids and seed in SNAPSHOT_SEEDS:  # the extent the grids covered, saved with them as training saves it
        rundir.write_grid_snapshot(d, STEPS, 3, grids, np.asarray(cfg.adaptation.extent, np.float32))
    rundir.write_metrics(d, metrics)  # last: it marks the task finished


def write_study(root, seeds=SEEDS):
    write_json(root / rundir.EXPERIMENT_FILE, {
        "name": "known-inputs", "identity": "x", "description": "A study written by the test.", "baseline": "base",
        "runs": [{"name": n, "label": lab, "variant": v} for n, lab, v in RUNS],
        "datasets": list(DATASETS), "seeds": list(seeds)})
    rng = np.random.default_rng(0)
    for name, _, variant in RUNS:
        for dataset in DATASETS:
            for seed in seeds:
                write_task(root, name, variant, dataset, seed, rng)
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The five-seed study, its figures (one stale heatmap planted first) and its report text."""
    out = write_study(tmp_path_factory.mktemp("report") / "study")
    stale = out / "good/circle/seed_0/heatmaps/circle_grid_step_500.png"
    stale.parent.mkdir()
    stale.write_bytes(b"stale")
    results = load_results(out)
    figures = make_figures(results, out)
    return out, figures, write_report(results, out, figures).read_text()


def section(text: str, title: str, occurrence: int = 1) -> str:
    """The body under the `occurrence`-th heading `title`, up to the next heading."""
    return text.split(title)[occurrence].split("\n#")[0]


def rows_of(block: str, run: str) -> list[str]:
    return [row for row in block.splitlines() if row.startswith(f"| {run} ")]


def test_figures_are_written_as_png(study):
    out, figures, _ = study
    names = {p.relative_to(out).as_posix() for p in figures}
    assert [p.name for p in figures[:2]] == ["forest_w2.png", "forest_kl_divergence.png"]  # first: the primary
    assert names == {"forest_kl_divergence.png", "forest_w2.png", "evaluation_metrics.png", "eval_loss_and_time.png",
                     "train_loss.png", "generated_images.png", "grid_variance_comparison.png",
                     "final_grids/good_circle.png", "final_grids/good_moons.png",
                     "final_grids/noisy_circle.png", "final_grids/noisy_moons.png"}
    for p in figures:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    redrawn = out / "good/circle/seed_0/heatmaps/circle_grid_step_500.png"
    assert redrawn.read_bytes()[:4] == b"\x89PNG"  # the stale heatmap was redrawn
    assert (out / "noisy/moons/seed_1/heatmaps/moons_fine_grid_step_500.png").is_file()
    # every finished task got its own figures; grids.png only where there are grid snapshots
    assert all((d / "samples.png").is_file() and (d / "loss.png").is_file() for d in out.glob("*/*/seed_*"))
    assert (out / "noisy/moons/seed_1/grids.png").is_file() and not (out / "noisy/moons/seed_2/grids.png").exists()


def test_the_first_screen_answers_the_question_on_the_primary_metric(study):
    _, _, text = study
    headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert headings[:2] == ["## Verdict", "## Secondary metrics at a glance"]
    first = section(text, "## Verdict")
    # no likelihood was measured, so W2 is primary; good is 0.05 better on every seed, noisy is seed noise
    assert "**Question.** Does any run differ from the baseline (Baseline) on Wasserstein-2, on circle, moons?" in first
    assert "**Primary metric: Wasserstein-2** (the study has no likelihood for every run" in first
    assert "They do not cover the training data's sampling" in first  # every seed trained on one draw
    table = section(text, "### Verdict on Wasserstein-2")
    good, noisy = rows_of(table, "good")[0], rows_of(table, "noisy")[0]
    assert good.startswith("| good 10x10 Grid | better (-0.0499) | better (-0.0499) |")
    assert noisy.startswith("| noisy Multi-scale + L1 | tied (+0.001) | tied (+0.001) |")
    assert "![forest_w2](forest_w2.png)" in table and "forest_kl_divergence" not in table  # one figure: the primary's
    secondary = section(text, "## Secondary metrics at a glance")
    assert "![forest_kl_divergence](forest_kl_divergence.png)" in secondary and "forest_w2" not in secondary
    assert "forest_" not in section(text, "## Figures")  # shown once, first


def test_a_declared_primary_metric_leads(study, tmp_path):
    import shutil

    out = shutil.copytree(study[0], tmp_path / "study")
    record = json.loads((out / rundir.EXPERIMENT_FILE).read_text())
    (out / rundir.EXPERIMENT_FILE).write_text(json.dumps({**record, "primary": "kl_divergence",
                                                          "question": "Is a 10x10 grid better?"}))
    text = write_report(load_results(out), out, []).read_text()
    first = section(text, "## Verdict")
    assert "**Question.** Is a 10x10 grid better?" in first
    assert "**Primary metric: KL divergence (bits)** (declared by the experiment file" in first
    assert "| good 10x10 Grid | better (-0.0998) | better (-0.0998) |" in section(text, "### Verdict on KL")
    assert "### Wasserstein-2 (secondary)" in text and "### KL divergence (bits) (primary)" in text


def test_a_report_judged_by_another_metric_says_so_and_leads_with_it(study, tmp_path):
    """`gridnoise report --primary METRIC`: the verdict on another metric than the declared one (the
    bound, say, where the baseline has no ODE likelihood), named as chosen for this report; a metric
    that cannot lead is a one-line error before anything is written."""
    import shutil

    out = shutil.copytree(study[0], tmp_path / "study")
    record = json.loads((out / rundir.EXPERIMENT_FILE).read_text())
    (out / rundir.EXPERIMENT_FILE).write_text(json.dumps({**record, "primary": "kl_divergence"}))
    text = write_report(load_results(out).judged_by("w2"), tmp_path, []).read_text()
    assert ("**Primary metric: Wasserstein-2** (chosen for this report with --primary; the experiment file "
            "declares kl_divergence;") in section(text, "## Verdict")
    assert "### Wasserstein-2 (primary)" in text and "### KL divergence (bits) (secondary)" in text
    proc = cli("report", out, "--primary", "eval_loss", "--dest", tmp_path / "x")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "--primary eval_loss is not a metric a report can be judged by: choose one of" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_a_report_against_another_run_compares_every_run_with_it(study, tmp_path):
    """`gridnoise report --baseline RUN`: a control as the reference (an unknown run fails before anything
    is written)."""
    from gridnoise.errors import ConfigError
    from gridnoise.report.outputs import write_study_outputs

    out = study[0]
    text = write_report(load_results(out).against("good"), tmp_path, []).read_text()
    assert "Baseline: good." in text
    verdict = section(text, "### Verdict on")
    assert rows_of(verdict, "base") and not rows_of(verdict, "good")
    with pytest.raises(ConfigError, match="--baseline nope is not a run of this study: choose one of base"):
        write_study_outputs(out, tmp_path / "x", baseline="nope")


def provenance_record(**changes) -> dict:
    record = {"gridnoise": "0.1.0", "git_commit": "0123456789abcdef", "git_dirty": False, "torch": "2.13.0+cpu",
              "numpy": "2.4.6", "python": "3.11.7", "platform": "Linux", "device": "cpu", "cpu": "AMD EPYC",
              "cpu_capability": "AVX512", "gpu": None, "threads": 1}
    return {**record, **changes}


def test_provenance_is_listed_and_mixed_versions_are_warned_about(tmp_path):
    from gridnoise.report.sections import provenance_section

    out = write_study(tmp_path / "study", seeds=(0, 1))
    results = load_results(out)
    text = render(provenance_section(results))
    assert "| not recorded | - | 12 |" in text  # tasks from before provenance was kept
    for d in out.glob("*/*/seed_*"):
        (d / "provenance.json").write_text(json.dumps(provenance_record()))
    text = render(provenance_section(results))
    assert "| gridnoise 0.1.0 (0123456), torch 2.13.0+cpu, numpy 2.4.6 | cpu: AMD EPYC, 1 threads | 12 |" in text
    assert "Warning" not in text
    (out / "good/moons/seed_1/provenance.json").write_text(json.dumps(provenance_record(torch="2.14.1+cpu")))
    text = render(provenance_section(results))
    assert "**Warning: this study mixes 2 software versions**" in text
    assert "torch 2.14.1+cpu, numpy 2.4.6 | cpu: AMD EPYC, 1 threads | 1 |" in text
    full = write_report(results, tmp_path, []).read_text()
    assert "Warning: this study's tasks were trained by 2 different software versions" in section(full, "Tasks fin")
    # hardware alone (another CPU, more threads) is listed but is not a version mix
    (out / "good/moons/seed_1/provenance.json").write_text(json.dumps(provenance_record(threads=2, cpu="Xeon")))
    text = render(provenance_section(results))
    assert "Warning" not in text and "| cpu: Xeon, 2 threads | 1 |" in text


def test_header_and_metric_cells(study):
    _, _, text = study
    assert text.startswith("# Study report: known-inputs\n\nA study written by the test.")
    assert "Seeds: 0, 1, 2, 3, 4. Training steps: 500." in text
    assert "| noisy | Multi-scale + L1 | multiscale_l1 |" in text
    # One cell recomputed independently with scipy: the baseline's KL on circle.
    mean = np.mean(BASE_KL)
    lo, hi = sps.t.interval(0.95, len(BASE_KL) - 1, loc=mean, scale=sps.sem(BASE_KL))
    kl_means = section(text, "### KL divergence (bits)", 1)
    assert rows_of(kl_means, "base")[0].startswith(f"| base Baseline | {mean:.3f} [{lo:.3f}, {hi:.3f}] (n=5) |")
    assert "### Fine grid variance" in text and "### Grid variance" in text


def test_paired_differences_and_verdicts(study):
    _, _, text = study
    kl = section(text, "### KL divergence (bits) (secondary)")
    good, noisy = rows_of(kl, "good"), rows_of(kl, "noisy")
    assert len(good) == 2 and all(row.endswith("| better |") for row in good)
    assert len(noisy) == 2 and all(row.endswith("| tied |") for row in noisy)
    diff = np.array(GOOD_JITTER) - 0.1
    lo, hi = sps.t.interval(0.95, 4, loc=diff.mean(), scale=sps.sem(diff))
    relative = diff.mean() / np.mean(BASE_KL)
    assert good[0].startswith(f"| good 10x10 Grid | circle | 5 | {diff.mean():.3f} | [{lo:.3f}, {hi:.3f}] | "
                              f"{100 * relative:+.1f}% |")
    noisy_p = sps.ttest_rel(np.array(BASE_KL) + NOISY_JITTER, BASE_KL).pvalue
    assert f"| {noisy_p:.3f} |" in noisy[0]
    # secondary metrics share one Holm family: only KL is tested here (times are not comparable), 4 tests
    good_p = sps.ttest_rel(np.array(BASE_KL) - 0.1 + GOOD_JITTER, BASE_KL).pvalue
    assert f"| {min(1.0, 4 * good_p):.2e} | better |" in good[0]
    # Training time: no provenance, so not tested, only described, with the reason
    times = section(text, "### Training time (s) (secondary)")
    assert all(row.endswith("| n/a (the tasks ran on different or unrecorded processors) |")
               for row in rows_of(times, "good") + rows_of(times, "noisy"))
    assert "two-sided paired t-test" in text and "Holm" in text


def test_timings_are_tested_only_between_comparable_tasks(study, tmp_path):
    import shutil

    from gridnoise.report.claims import study_tests

    out = shutil.copytree(study[0], tmp_path / "study")
    for d in out.glob("*/*/seed_*"):  # one processor, never more load than cores
        (d / "provenance.json").write_text(json.dumps(provenance_record()))
        write_json(d / rundir.TIMINGS_FILE, {"load_average_max": 2.1, "cores": 2})
    times = study_tests(load_results(out))["training_time"]
    assert {c.verdict for c in times.values()} == {"worse"}  # 5 s and 10 s slower on every seed
    write_json(out / "good/moons/seed_3" / rundir.TIMINGS_FILE, {"load_average_max": 3.9, "cores": 2})
    times = study_tests(load_results(out))["training_time"]
    shared = times[("good", "moons")]
    assert shared.verdict == "n/a" and shared.family == "descriptive"
    assert shared.reason == "1 of 10 tasks shared their cores with other work (load average above their cores)"
    assert times[("good", "circle")].verdict == "worse"
    text = write_report(load_results(out), out, []).read_text()  # the overhead table counts the study's tasks
    tasks = len(RUNS) * len(DATASETS) * len(SEEDS)
    assert f"Descriptive only, not tested: 1 of {tasks} tasks shared their cores" in section(text, "## Computational")
    (out / "noisy/circle/seed_0/provenance.json").write_text(json.dumps(provenance_record(cpu="Intel Xeon")))
    assert study_tests(load_results(out))["training_time"][("noisy", "circle")].verdict == "n/a"
    text = write_report(load_results(out), out, []).read_text()
    assert "Descriptive only, not tested: the tasks ran on different or unrecorded processors." \
        in section(text, "## Computational")


def test_estimator_floors_are_shown_and_no_difference_below_them_is_claimed(study, tmp_path):
    import shutil

    from gridnoise.metrics import KLEstimator
    from gridnoise.study.floors import FLOOR_DRAWS, FLOORS_FILE, read_floors, update_floors

    out = shutil.copytree(study[0], tmp_path / "study")
    for path in out.glob("*/moons/seed_*/metrics.json"):  # moons: every run within 0.004 of a perfect model
        m, seed = json.loads(path.read_text()), int(path.parts[-2].removeprefix("seed_"))
        m["kl_divergence"] = {"base": -0.031, "good": -0.035, "noisy": -0.02}[path.parts[-4]] + 1e-3 * seed ** 2
        path.write_text(json.dumps(m))
    results = load_results(out)
    update_floors(results)
    saved = json.loads((out / FLOORS_FILE).read_text())
    assert len(saved["moons"]["values"]["kl_divergence"]) == FLOOR_DRAWS and saved["moons"]["settings"]["num_samples"]
    # the floor's first draw, recomputed: a fresh draw of moons against the training points
    cfg = rundir.read_config(out / "base/moons/seed_0")
    from gridnoise.data import load, run_points
    seed = int(np.random.SeedSequence([cfg.data_seed, 0, 2]).generate_state(1)[0])
    fresh = load("moons", cfg.eval.num_samples, seed=seed)
    assert saved["moons"]["values"]["kl_divergence"][0] == KLEstimator(run_points(cfg), cfg.eval.kl_k)(fresh)
    floor = read_floors(results)["moons"]["kl_divergence"]
    text = write_report(results, out, []).read_text()
    kl = section(text, "### KL divergence (bits)", 1)
    floor_row = next(row for row in kl.splitlines() if row.startswith("| floor: the data against a fresh draw"))
    assert floor_row.split("|")[3].strip() == f"{floor.mean:.3f} +- {floor.spread:.3f}"
    assert all("below resolution" in row.split("|")[3] for row in rows_of(kl, "base") + rows_of(kl, "good"))
    diffs = section(text, "### KL divergence (bits) (secondary)")
    moons = [row for row in diffs.splitlines() if "| moons |" in row]
    assert moons and all(row.split("|")[6].strip() == "-" for row in moons)  # no percentage of a value near 0
    assert "%" not in "".join(moons)
    assert update_floors(results).read_bytes() == (out / FLOORS_FILE).read_bytes()  # kept, not recomputed


def test_seed_numbers_caveat_convergence_overhead_and_links(study):
    _, _, text = study
    seed = section(text, "## The original study's numbers")
    mean = np.mean(BASE_KL)
    lo, hi = sps.t.interval(0.95, len(BASE_KL) - 1, loc=mean, scale=sps.sem(BASE_KL))
    assert f"| base Baseline | KL divergence (bits) | 0.359 / {mean:.3f} [{lo:.3f}, {hi:.3f}] (outside) |" in seed
    assert "0.304" not in seed  # the seed's plain multi-scale run is not one of ours; its L1 variant is
    assert f"0.323 / {np.mean([kl_of('noisy', s) for s in SEEDS]):.3f} [" in seed
    assert "not comparable across variants" in text
    convergence = section(text, "## Convergence speed")
    step = convergence_step(losses("good"))
    assert f"| good 10x10 Grid | {step} [{step}, {step}] |" in convergence
    assert "| step 250 | step 500 |" in convergence and "| base Baseline | circle | 0.900 |" in convergence
    overhead = rows_of(section(text, "## Computational overhead"), "good")[0]
    assert "+10,256" in overhead  # grid10 adds 100 x 10 x 10 grid entries + 256 weights for the extra input
    assert "+42,756" in rows_of(section(text, "## Computational overhead"), "noisy")[0]  # 100 x (25 + 400) + 256
    ratios = [(TRAIN_TIME["good"] + s) / (TRAIN_TIME["base"] + s) for s in SEEDS] * 2
    assert f"| {np.mean(ratios):.3f} [" in overhead and overhead.endswith("| 404 |")  # max peak memory of good
    assert "![train_loss](train_loss.png)" in text and "![good_circle](final_grids/good_circle.png)" in text


def test_a_one_seed_study_of_the_original_runs_opens_with_the_reproduction(tmp_path):
    from gridnoise.report.verdict import five_seed_reference

    out = write_study(tmp_path / "study", seeds=(0,))
    results = load_results(out)
    figure = save_figure(train_loss_figure(results), tmp_path / "figs" / "train_loss.png")
    text = write_report(results, tmp_path, [figure]).read_text()
    headings = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert headings[0] == "## Is the original study reproduced?" and "## Secondary metrics at a glance" not in headings
    first = section(text, "## Is the original study reproduced?")
    reference = five_seed_reference()
    assert reference["steps"] == 10_000 != STEPS  # this study trained 500 steps: no interval is set beside it
    assert f"| base Baseline | KL divergence (bits) | 0.359 / {BASE_KL[0]:.3f} | 0.095 / {BASE_KL[0]:.3f} |" in first
    assert "not shown: it trained 10000 steps, this study 500" in first
    for path in out.glob("*/*/seed_0/config.toml"):  # as many steps as the reference: its interval is shown
        path.write_text(path.read_text().replace(f"steps = {STEPS}\n", "steps = 10000\n", 1))
    first = section(write_report(load_results(out), tmp_path, []).read_text(), "## Is the original study reproduced?")
    lo, hi = reference["baseline"]["kl_divergence"]["circle"][1:]
    inside = "original inside" if lo <= 0.359 <= hi else "neither inside"
    assert f"| base Baseline | KL divergence (bits) | 0.359 / {BASE_KL[0]:.3f} / [{lo:.3f}, {hi:.3f}]: {inside} |" \
        in first
    assert "**What one seed cannot tell.**" in first and "forest_" not in text
    assert "| n/a (one seed: no test) |" in text and "| better |" not in text and "| tied |" not in text
    assert f"| base Baseline | {BASE_KL[0]:.3f} (n=1) |" in text  # a single value: no interval
    assert "![train_loss](figs/train_loss.png)" in text


def test_a_one_seed_study_of_other_runs_says_nothing_is_significant(tmp_path):
    out = write_study(tmp_path / "study", seeds=(0,))
    record = json.loads((out / rundir.EXPERIMENT_FILE).read_text())
    for run in record["runs"]:  # variants the original study did not run
        run["variant"] = f"{run['variant']}_data"
    (out / rundir.EXPERIMENT_FILE).write_text(json.dumps(record))
    text = write_report(load_results(out), tmp_path, []).read_text()
    assert "One seed per task" in section(text, "## Verdict")


def test_edge_cell_shares_in_report(study):
    from gridnoise.report.sections import edge_cell_section

    text = render(edge_cell_section(load_results(study[0])))
    moons = next(ln for ln in text.splitlines() if ln.startswith("| moons"))
    seed10, data10 = (float(c.strip(" %")) for c in moons.split("|")[2:4])
    assert seed10 > data10  # the seed's small grid clamps more of the data into its border


def test_abar_t_is_printed_and_warned_about(study):
    from gridnoise.report.sections import schedule_section

    text = render(schedule_section(load_results(study[0])))
    base = next(ln for ln in text.splitlines() if ln.startswith("| base"))
    assert "0.364" in base and "warning" in base  # the study's linear schedule keeps 36% of the signal
    assert "Schedules and samplers" in study[2]
    rows = [ln for ln in text.splitlines() if ln.startswith("| base ")]
    ddpm, ddim = (next(r for r in rows if f"| {name} |" in r) for name in ("ddpm", "ddim20"))
    assert "| 0.22 |" in ddpm and "| 0.04 |" in ddim  # mean time over seeds 0..4: 0.2 + 0.02
    kl_base = sum(BASE_KL) / 5
    assert f"{kl_base:.3f}" in ddpm and f"{kl_base + 0.2:.3f}" in ddim
    # The cost table: DDIM takes 0.04 s against 0.2 + 0.01 seed, and its KL is 0.2 worse on every seed.
    costs = text.split("Cost or gain")[1]
    good = next(ln for ln in costs.splitlines() if ln.startswith("| good "))
    ratio = np.mean([0.04 / (0.2 + 0.01 * s) for s in SEEDS])
    assert f"| {ratio:.2f}x |" in good and good.count("0.200 worse*") == len(DATASETS)


def test_abar_t_is_shown_for_each_data_set_and_seed(study, tmp_path):
    """A tuned run's schedule can differ by data set, and a learned end by seed: each cell shows its
    own, and only the cells above the threshold are flagged."""
    import shutil

    from gridnoise.report.sections import schedule_section

    other = tmp_path / "other"
    shutil.copytree(study[0], other)
    cosine = float(DDPMScheduler.from_config(DiffusionConfig(beta_schedule="cosine")).alphas_cumprod[-1])
    for path in other.glob("*/moons/seed_*/metrics.json"):  # every run chose the cosine schedule on moons
        m = json.loads(path.read_text())
        m["abar_T"] = cosine
        path.write_text(json.dumps(m))
    path = other / "good/moons/seed_3/metrics.json"  # and one seed of one run learned its end higher
    path.write_text(json.dumps({**json.loads(path.read_text()), "abar_T": 0.02}))
    text = render(schedule_section(load_results(other)))
    rows = {ln.split(" |")[0][2:].split()[0]: [c.strip() for c in ln.split("|")[2:4]]
            for ln in text.split("| run |")[1].splitlines()[2:] if ln.startswith("| ")}
    assert rows["base"] == ["**0.364 (warning)**", f"{cosine:.3g}"]
    assert rows["good"] == ["**0.364 (warning)**", f"**{cosine:.3g} to 0.02 (warning)**"]
    assert "`base`, `good`, `noisy` where marked" in text


def test_comparing_two_studies_pairs_their_seeds(study, tmp_path):
    import shutil

    from gridnoise.report.sections import study_comparison

    other = tmp_path / "other"
    shutil.copytree(study[0], other)
    for path in other.glob("base/*/seed_*/metrics.json"):  # the second study's baseline: +0.05 on every seed
        m = json.loads(path.read_text())
        m["kl_divergence"] += 0.05
        path.write_text(json.dumps(m))
    text = markdown.table(study_comparison(load_results(study[0]), load_results(other)))
    base = next(ln for ln in text.splitlines() if ln.startswith("| base ") and "| circle |" in ln)
    good = next(ln for ln in text.splitlines() if ln.startswith("| good ") and "| circle |" in ln)
    assert "0.050 [0.050, 0.050]" in base and base.endswith("| no |")
    assert "| 0.000 " in good and good.endswith("| yes |")


def test_the_five_seed_reference_holds_each_variants_interval(study):
    import tomllib

    from gridnoise.report.verdict import reference_text

    reference = tomllib.loads(reference_text(load_results(study[0]), "the known-inputs study"))
    assert reference["source"] == "the known-inputs study"
    mean = np.mean(BASE_KL)
    lo, hi = sps.t.interval(0.95, len(BASE_KL) - 1, loc=mean, scale=sps.sem(BASE_KL))
    assert reference["baseline"]["kl_divergence"]["circle"] == pytest.approx([mean, lo, hi], rel=1e-5)
    assert set(reference) == {"source", "steps", "baseline", "grid10", "multiscale_l1"}  # keyed by variant
    assert reference["steps"] == STEPS
