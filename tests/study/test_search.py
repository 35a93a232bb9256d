"""Search spaces, [tune] tables and per-data-set settings as an experiment file declares them."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from gridnoise.config import RunConfig, adaptation_for
from gridnoise.errors import ConfigError
from gridnoise.study.experiment import parse_experiment
from gridnoise.study.search import decode, parse_space, settings_of, tables_of


def experiment(**extra) -> dict:
    data = {"experiment": {"name": "s", "datasets": ["moons", "line"], "seeds": [0]},
            "runs": {"base": {"variant": "baseline"}, "grid": {"variant": "multiscale"}}}
    for key, value in extra.items():
        *path, last = key.split("__")
        table = data
        for name in path:
            table = table.setdefault(name, {})
        table[last] = value
    return data


def test_each_kind_of_range_becomes_its_optuna_distribution():
    space = parse_space({"train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                         "train.batch_size": {"low": 64, "high": 256, "step": 64},
                         "adaptation.grids": {"choices": [{"coarse": 5, "fine": 20}, {"coarse": 4, "fine": 16}]}},
                        "search")
    assert space["train.lr"].distribution() == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["train.batch_size"].distribution() == IntDistribution(64, 256, step=64)
    grids = space["adaptation.grids"]
    assert isinstance(grids.distribution(), CategoricalDistribution)
    # a table reaches Optuna as its JSON text, and the config as the table it was
    assert decode(grids.distribution().choices[1]) == {"coarse": 4, "fine": 16}


def test_a_grid_size_is_set_without_losing_the_other_grids():
    base = RunConfig(variant="multiscale", adaptation=adaptation_for("multiscale"))
    tables = tables_of({"adaptation.grids.fine": 8, "train.lr": 1e-3}, base)
    assert tables == {"adaptation": {"grids": {"coarse": 5, "fine": 8}}, "train": {"lr": 1e-3}}
    # and back, as a report lists them: a table-valued setting stays one value
    assert settings_of(tables) == {"adaptation.grids": {"coarse": 5, "fine": 8}, "train.lr": 1e-3}


def test_per_dataset_tables_set_one_data_set_and_enter_the_identity():
    plain = parse_experiment(experiment())
    tuned = parse_experiment(experiment(runs__base__per_dataset={"line": {"train": {"lr": 1e-3}}}))
    base = tuned.run("base")
    assert tuned.config(base, "line", 0).train.lr == 1e-3
    assert tuned.config(base, "moons", 0).train.lr == plain.config(plain.run("base"), "moons", 0).train.lr
    assert tuned.identity() != plain.identity()
    assert parse_experiment(experiment(tune={"trials": 3})).identity() == plain.identity()


def test_run_spaces_add_to_the_shared_one():
    exp = parse_experiment(experiment(defaults__search={"train.lr": {"low": 1e-4, "high": 1e-2}},
                                      runs__grid__search={"adaptation.grids.fine": {"choices": [10, 20]},
                                                          "train.lr": {"low": 1e-3, "high": 1e-2}}))
    assert set(exp.run("base").search) == {"train.lr"} and exp.run("base").search["train.lr"].low == 1e-4
    assert set(exp.run("grid").search) == {"train.lr", "adaptation.grids.fine"}
    assert exp.run("grid").search["train.lr"].low == 1e-3


@pytest.mark.parametrize("extra, text", [
    ({"runs__base__search": {"train.lr": {"low": 1e-3}}}, "needs low and high"),
    ({"runs__base__search": {"train.lr": {"low": 1e-4, "high": 1e-2, "choices": [1]}}}, "not both"),
    ({"runs__base__search": {"train.lr": [1e-4, 1e-2]}}, "must be a range"),
    ({"runs__base__search": {"train.steps": {"low": 10, "high": 100, "step": 0.5}}}, "integer step"),
    ({"runs__grid__search": {"adaptation.grids.medium": {"low": 4, "high": 8}}}, "'medium' unknown"),
    ({"runs__base__search": {"diffusion.beta_schedule": {"choices": ["linear", "sigmoid"]}}}, "not allowed"),
    ({"runs__base__per_dataset": {"dino": {}}}, "not data sets of this experiment"),
    ({"tune": {"seeds": [0]}}, "also the experiment's seeds"),
    ({"tune": {"trials": 0}}, "must be >= 1"),
    ({"tune": {"sampler": "FooSampler"}}, "not an Optuna sampler"),
    ({"tune": {"pruner": "BasePruner"}}, "not an Optuna pruner"),
    ({"tune": {"sampler": 3}}, "must be the name of an Optuna sampler"),
    ({"tune": {"pruner_options": [1]}}, "table of keyword arguments"),
    ({"tune": {"pruner_options": {"n_startup": 3}}}, "do not fit MedianPruner"),
    ({"tune": {"sampler_options": {"seed": 1}}}, "do not fit TPESampler"),
    ({"tune": {"objective": 7}}, "not one a trial"),
    ({"tune": {"objective": "eval_loss"}}, "cannot be|not one a trial"),
    ({"tune": {"budget": 3}}, "unknown key"),
])
def test_bad_spaces_and_tune_tables_name_the_fix(extra, text):
    import re

    with pytest.raises(ConfigError) as error:
        parse_experiment(experiment(**extra))
    assert re.search(text, str(error.value)), str(error.value)


@pytest.mark.parametrize("name", ["tuned", "likelihood"])
def test_shipped_experiments_declare_a_search_space_for_every_run(name):
    """The documented tuning (the original study's five runs and the learned reverse variance) and the
    likelihood study (the consistent variants) can be tuned as shipped."""
    from gridnoise.study.experiment import bundled, load_experiment
    from gridnoise.study.search import objective_for
    from gridnoise.study.tune import check_tunable

    exp = load_experiment(bundled(name))
    assert all("train.lr" in run.search for run in exp.runs)
    assert all("train.grid_lr_factor" in run.search for run in exp.runs if run.variant != "baseline")
    check_tunable(exp, objective_for(exp.tune, exp.primary))


def test_any_optuna_sampler_and_pruner_by_name_seeded_per_trial():
    """`[tune] sampler` and `pruner` name Optuna's classes, with their options; each trial's sampler is
    seeded from (seed, arm, trial number): the same trial always draws the same settings."""
    import optuna

    from gridnoise.study.tune import Arm, sampler_for

    exp = parse_experiment(experiment(
        defaults__search={"train.lr": {"low": 1e-4, "high": 1e-2, "log": True}},
        tune={"sampler": "RandomSampler", "pruner": "SuccessiveHalvingPruner",
              "pruner_options": {"min_resource": 2}}))
    samplers = [sampler_for(exp, "base/moons", n) for n in (0, 0, 1)]
    assert all(isinstance(s, optuna.samplers.RandomSampler) for s in samplers)
    storage = optuna.storages.InMemoryStorage()
    arm = Arm(exp, exp.run("base"), "moons", storage, None, "nll_elbo")
    assert isinstance(arm.study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    drawn = []
    for sampler in samplers:
        arm.study.sampler = sampler
        drawn.append(arm.study.ask(fixed_distributions={"train.lr": exp.run("base").search["train.lr"].distribution()})
                     .params["train.lr"])
    assert drawn[0] == drawn[1] != drawn[2]
