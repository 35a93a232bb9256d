import pytest

from gridnoise.config import adaptation_for
from gridnoise.errors import ConfigError
from gridnoise.study.experiment import bundled, config_hash, load_experiment, parse_experiment


def test_bundled_seed_experiment_is_the_study():
    exp = load_experiment(bundled("seed"))
    assert [r.name for r in exp.runs] == [f"run_{i}" for i in range(5)]
    assert [r.label for r in exp.runs] == ["Baseline", "10x10 Grid", "20x20 Grid", "Multi-scale Grid",
                                           "Multi-scale + L1 Reg"]
    assert exp.datasets == ["circle", "dino", "line", "moons"] and exp.seeds == [0] and exp.baseline == "run_0"
    tasks = exp.tasks()
    assert len(tasks) == 20 and len({t.config_hash for t in tasks}) == 20
    run4 = exp.config(exp.run("run_4"), "moons", 0)
    assert run4.adaptation == adaptation_for("multiscale_l1") and run4.train.steps == 10_000


def test_run_tables_override_the_preset():
    exp = parse_experiment({
        "experiment": {"name": "x", "datasets": ["line"], "seeds": [1, 2]},
        "defaults": {"train": {"steps": 7}, "n_points": 500},
        "runs": {"a": {"variant": "multiscale", "adaptation": {"grids": {"grid": 3}, "extent": [-4, 4, -4, 4]},
                       "train": {"lr": 0.01}}},
    })
    cfg = exp.config(exp.runs[0], "line", 2)
    assert cfg.adaptation.grids == {"grid": 3} and cfg.adaptation.extent == [-4.0, 4.0, -4.0, 4.0]
    assert cfg.adaptation.kind == "original_grid"  # formerly "seed_grid"
    assert (cfg.train.steps, cfg.train.lr, cfg.n_points, cfg.seed) == (7, 0.01, 500, 2)
    assert exp.runs[0].label == "a" and exp.baseline == "a"


def test_a_declared_primary_metric_and_question_reach_the_study_record_but_not_its_identity(tmp_path):
    from gridnoise.study.executor import study_record

    text = '[experiment]\nname = "x"\n{}[runs.a]\nvariant = "baseline"\n'
    (tmp_path / "plain.toml").write_text(text.format(""))
    (tmp_path / "declared.toml").write_text(text.format('primary = "nll_ode"\nquestion = "Q?"\n'))
    plain, declared = load_experiment(tmp_path / "plain.toml"), load_experiment(tmp_path / "declared.toml")
    assert (declared.primary, declared.question, plain.primary) == ("nll_ode", "Q?", "")
    assert declared.identity() == plain.identity()  # what the report leads with changes no result
    record = study_record(declared, tmp_path / "out")
    assert (record["primary"], record["question"]) == ("nll_ode", "Q?")


def test_restricted_and_hashes():
    exp = load_experiment(bundled("seed"))
    small = exp.restricted(seeds=[3, 4], datasets=["moons"], steps=50)
    assert [t.key for t in small.tasks()][:2] == ["run_0/moons/seed_3", "run_0/moons/seed_4"]
    assert small.tasks()[0].config.train.steps == 50
    assert config_hash(small.tasks()[0].config) != config_hash(exp.restricted(steps=51, seeds=[3]).tasks()[0].config)
    # Which seeds or data sets run does not change what the experiment is; steps do.
    assert exp.restricted(seeds=[0, 1]).identity() == exp.identity() != small.identity()
    with pytest.raises(ConfigError, match="unknown data set"):
        exp.restricted(datasets=["spiral"])
    with pytest.raises(ConfigError, match="seeds"):
        exp.restricted(seeds=[])


@pytest.mark.parametrize("text, message", [
    ('[experiment]\nname = "x"\n', "at least one"),
    ('[experiment]\nname = "x"\ncolour = 1\n[runs.a]\nvariant = "baseline"\n', "unknown key"),
    ('[experiment]\nname = "x"\n[runs.a]\nvariant = "nope"\n', "unknown variant 'nope'"),
    ('[experiment]\nname = "x"\n[runs.a]\nlabel = "A"\n', "needs a variant"),
    ('[experiment]\nname = "x"\n[runs.a]\nvariant = "baseline"\n[runs.a.train]\nstepz = 3\n', "unknown key"),
    ('[experiment]\nname = "x"\nbaseline = "b"\n[runs.a]\nvariant = "baseline"\n', "baseline 'b'"),
    ('[experiment]\nname = "x"\ndatasets = ["mars"]\n[runs.a]\nvariant = "baseline"\n', "unknown data set"),
    ('[experimnt]\nname = "x"\n', "unknown top-level"),
    ('[experiment]\nname = "x"\nprimary = "eval_loss"\n[runs.a]\nvariant = "baseline"\n', "primary metric 'eval_loss'"),
    ('[experiment]\nname = "x"\nprimary = "training_time"\n[runs.a]\nvariant = "baseline"\n', "choose from kl_"),
    ('[experiment\n', "malformed TOML"),
])
def test_malformed_experiment_files(tmp_path, text, message):
    path = tmp_path / "e.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(path)
    assert "\n" not in str(info.value)


def test_bundled_improved_experiment_resolves_every_run():
    exp = load_experiment(bundled("improved"))
    assert exp.seeds == [0, 1, 2, 3, 4] and exp.baseline == "baseline"
    kinds = {run.name: exp.config(run, "moons", 0).adaptation for run in exp.runs}
    assert kinds["baseline"].kind == "none"
    assert kinds["multiscale"].kind == "original_grid" and not kinds["multiscale"].extent_from_data
    for name in ("grid10_data", "grid20_data", "multiscale_data", "multiscale_l1_data"):
        assert kinds[name].kind == "original_grid" and kinds[name].extent_from_data
    assert kinds["conditioning"].kind == "conditioning" and kinds["reverse_variance"].kind == "reverse_variance"


def test_bundled_schedules_experiment():
    exp = load_experiment(bundled("schedules"))
    cfgs = {run.name: exp.config(run, "line", 0) for run in exp.runs}
    assert cfgs["baseline_cosine"].diffusion.beta_schedule == "cosine"
    assert cfgs["multiscale_linear"].diffusion.beta_schedule == "linear"
    samplers = cfgs["multiscale_cosine"].eval.extra_samplers
    assert {k: (v.sampler, v.steps, v.eta, v.clip_sample) for k, v in samplers.items()} == {
        "ddim20": ("ddim", 20, 0.0, 0.0), "ddim50": ("ddim", 50, 0.0, 0.0),
        "ddpm_clip5": ("ddpm", 0, 0.0, 5.0), "ddim20_clip5": ("ddim", 20, 0.0, 5.0)}


def test_settings_added_later_keep_earlier_task_hashes_when_off():
    # clip_sample was added to samplers after studies with extra samplers were run: off, it must not
    # change their hashes (or re-running would retrain every finished task).
    from gridnoise.config import SamplerConfig, comparable_dict

    cfg = load_experiment(bundled("seed")).tasks()[0].config
    cfg.eval.extra_samplers = {"ddim20": SamplerConfig("ddim", 20)}
    assert "clip_sample" not in comparable_dict(cfg)["eval"]["extra_samplers"]["ddim20"]
    before = config_hash(cfg)
    cfg.eval.extra_samplers["ddim20"].clip_sample = 4.0
    assert config_hash(cfg) != before


def test_settings_lay_over_every_runs_defaults():
    exp = load_experiment(bundled("original")).restricted(
        seeds=[0], datasets=["moons"], settings={"train": {"ema_decay": 0.9}, "model": {"hidden_dim": 64}})
    for task in exp.tasks():
        assert task.config.train.ema_decay == 0.9 and task.config.model.hidden_dim == 64
        assert task.config.train.steps == 10_000  # the rest of the defaults table stays
    assert exp.identity() != load_experiment(bundled("original")).identity()  # other settings, another study
    with pytest.raises(ConfigError, match="unknown key"):
        load_experiment(bundled("original")).restricted(settings={"train": {"nope": 1}})
