"""The registry is what the package reads about metrics and samplers: what a run writes is in it."""

import json

from gridnoise.config import DiffusionConfig, SamplerConfig
from gridnoise.registry import COMPARED, EVALUATED, FOREST, LOWER_IS_BETTER, METRICS, SAMPLE_QUALITY, SAMPLERS
from gridnoise.schedulers import SCHEDULERS, make_scheduler


def test_every_metric_a_grid_run_records_is_registered(tiny_run):
    recorded = set(json.loads((tiny_run("multiscale") / "metrics.json").read_text()))
    assert recorded - set(METRICS) == {"abar_T"}  # the schedule's, reported in its own section
    assert set(SAMPLE_QUALITY) <= recorded and "kl_divergence" in recorded


def test_the_derived_lists_follow_the_entries():
    assert EVALUATED == ("nll_elbo", "nll_ode", "kl_exact")  # `gridnoise evaluate --metrics` choices
    assert COMPARED[:6] == ("kl_divergence", "w2", "sliced_w2", "mmd", "precision", "recall")
    assert "kl_bound" not in FOREST and not set(FOREST) & {"eval_loss", "training_time", "grid_variance"}
    assert {"precision", "recall"}.isdisjoint(LOWER_IS_BETTER) and "grid_variance" not in LOWER_IS_BETTER
    assert [m for m in METRICS if METRICS[m].from_ode] == ["nll_ode", "kl_exact"]


def test_every_sampler_builds_its_noise_scheduler():
    for name, sampler in SAMPLERS.items():
        scheduler = make_scheduler(DiffusionConfig(num_timesteps=20), SamplerConfig(name))
        assert type(scheduler) is SCHEDULERS[sampler.scheduler]
