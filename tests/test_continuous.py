"""The continuous-time model family as gridnoise runs it: VDM and both MuLANs train, sample, resume
and are evaluated through the same paths as the discrete variants; their conformance checks catch
broken subclasses; bad settings are one-line errors. (The process's maths against closed forms is in
test_vdm.py and test_mulan.py.)"""

import json
import shutil

import numpy as np
import pytest
import torch

import gridnoise
from gridnoise.components import sampling_components
from gridnoise.config import comparable_dict
from gridnoise.continuous import IMPORTANCE_SAMPLES, CellLatentNoise, GaussianLatentNoise, log_snr_ends
from gridnoise.errors import ConfigError, SamplerError
from gridnoise.likelihood import continuous_ode_likelihood, ode_log_likelihood
from gridnoise.model import continuous_time
from gridnoise.run import train_run
from gridnoise.rundir import load_checkpoint
from gridnoise.study.evaluation import evaluate_run
from gridnoise.testing import check_adaptation
from gridnoise.vdm import continuous_bound

from conftest import TINY_RUN, study_file

CONTINUOUS = ("vdm", "mulan", "mulan_cells")


def test_the_default_ends_are_the_discrete_schedules_first_and_last_log_snr():
    cfg = gridnoise.make_config("vdm")
    betas = torch.linspace(1e-4, 0.02, 100).double()  # the discrete model's own: float32 values
    abar = torch.cumprod(1 - betas, 0)
    g0, g1 = log_snr_ends(cfg.diffusion)
    assert g0 == pytest.approx(float(torch.log((1 - abar[0]) / abar[0])), rel=1e-9)
    assert g1 == pytest.approx(float(torch.log((1 - abar[-1]) / abar[-1])), rel=1e-9)


@pytest.mark.parametrize("variant", CONTINUOUS)
def test_a_continuous_run_trains_its_schedule_and_samples_any_number_of_steps(tiny_run, variant):
    run = gridnoise.load_run(tiny_run(variant, "scales"))
    assert np.isfinite(run.samples).all() and np.isfinite(run.metrics["kl_divergence"])
    assert np.isfinite(run.losses).all() and run.metrics["abar_T"] > 0
    state = load_checkpoint(run.path / "checkpoint.pt", "cpu")
    fresh = gridnoise.make_config(variant, dataset="scales", **TINY_RUN)
    from gridnoise.components import build_components

    _, initial, _ = build_components(fresh, torch.device("cpu"))
    changed = [k for k, v in initial.state_dict().items() if not torch.equal(v, state["adaptation"][k])]
    assert changed and all("ends" not in k for k in changed)  # the schedule learned; its ends are fixed
    few, many = run.sample(200, steps=3), run.sample(200, steps=500)  # more steps than T = 20
    assert few.shape == many.shape == (200, 2) and not np.array_equal(few, many)
    assert np.array_equal(run.sample(300), run.samples)  # the run's own seed and steps redraw its samples


def test_a_continuous_runs_abar_t_is_its_own_learned_end(tmp_path):
    """The signal a run records as left where sampling starts is sigmoid(-gamma(1)) of its own
    (here learned) end, as its schedule figure draws it, not the discrete schedule's abar_T."""
    cfg = gridnoise.make_config("mulan", dataset="scales", adaptation={"learn_ends": True}, **TINY_RUN)
    train_run(cfg, tmp_path / "run", progress=False)
    run = gridnoise.load_run(tmp_path / "run")
    _, _, adaptation = sampling_components(load_checkpoint(run.path / "checkpoint.pt", "cpu"), torch.device("cpu"))
    gamma_1 = float(adaptation.ends[1].detach())
    assert run.metrics["abar_T"] == pytest.approx(1 / (1 + np.exp(gamma_1)), rel=1e-6)
    drawn = np.load(run.path / "schedule.npz")["gamma"][-1]  # every drawn point and coordinate at t = 1
    assert np.allclose(drawn, gamma_1, atol=1e-5)
    discrete = 1 / (1 + np.exp(log_snr_ends(cfg.diffusion)[1]))  # the discrete schedule's abar_T, its initial end
    assert abs(run.metrics["abar_T"] - discrete) > 1e-3  # the end moved in training


def test_an_interrupted_continuous_run_resumes_to_the_same_numbers(tiny_run, tmp_path):
    whole = gridnoise.load_run(tiny_run("mulan_cells", "scales"))
    cfg = gridnoise.make_config("mulan_cells", dataset="scales", **TINY_RUN)
    assert train_run(cfg, tmp_path / "run", progress=False, until=25) == {}
    resumed = train_run(gridnoise.make_config("mulan_cells", dataset="scales", **TINY_RUN), tmp_path / "run",
                        resume=True, progress=False)
    assert np.array_equal(np.load(tmp_path / "run" / "samples.npz")["samples"], whole.samples)
    assert resumed["kl_divergence"] == whole.metrics["kl_divergence"]


@pytest.mark.parametrize("variant", CONTINUOUS)
def test_evaluate_gives_a_continuous_runs_bound_and_its_exact_likelihood(tiny_run, tmp_path, variant):
    run = shutil.copytree(tiny_run(variant, "scales"), tmp_path / "run")
    result = evaluate_run(run, ["nll_elbo", "nll_ode", "kl_exact"], ode_points=4, tolerance=1e-3)
    assert result["nll_elbo_points"] == 300 and result["nll_ode_points"] == 4
    for key in ("nll_elbo", "nll_elbo_prior", "nll_elbo_decoder", "nll_elbo_diffusion", "nll_ode", "kl_exact",
                "nll_ode_solver_gap"):
        assert np.isfinite(result[key]), key
    # the terms add up (the prior and the diffusion term are differences of -log p: bits, not bits per dim)
    parts = result["nll_elbo_prior"] + result["nll_elbo_diffusion"] + result.get("nll_elbo_latent_kl", 0.0)
    assert result["nll_elbo"] == pytest.approx(result["nll_elbo_decoder"] + parts, rel=1e-9)
    latent = {"vdm": {}, "mulan": {"nll_ode_importance_samples": 8}, "mulan_cells": {"nll_ode_cells": 9}}[variant]
    assert {k: result[k] for k in latent} == latent
    assert ("nll_elbo_latent_kl" in result) == (variant != "vdm")
    assert json.loads((run / "evaluation.json").read_text())["nll_ode"] == result["nll_ode"]


def test_a_latent_models_ode_draws_are_the_same_for_the_first_points_whatever_their_number():
    """The solver check solves the first points again at half the tolerance: with the same draws of z,
    so its gap is the solver's, not importance sampling's."""
    torch.manual_seed(0)
    model = GaussianLatentNoise(latent_dim=3)
    x = torch.randn(50, 2, dtype=torch.float64)
    every = model.ode_latents(x, torch.Generator().manual_seed(1))
    first = model.ode_latents(x[:20], torch.Generator().manual_seed(1))
    assert len(every) == len(first) == IMPORTANCE_SAMPLES
    for (z_every, w_every), (z_first, w_first) in zip(every, first):
        assert torch.equal(z_every[:20], z_first) and torch.equal(w_every[:20], w_first)
    assert not torch.equal(every[0][0], every[1][0])


def test_one_solve_over_every_cell_is_the_sum_of_each_cells_solve(tiny_run):
    """log p(x) = log sum_c p(c) p(x | c): the joint solve (every point under every cell, one solver pass)
    against one solve per cell, each the conditioned flow's own (`ode_log_likelihood`), both at a tight
    tolerance: alike within the solver's error (the network computes in float32, so solves that take
    other steps differ by ~1e-4 nats; a misplaced weight or row would be off by tenths or more)."""
    state = load_checkpoint(tiny_run("mulan_cells", "scales") / "checkpoint.pt", "cpu")
    scheduler, model, adaptation = sampling_components(state, torch.device("cpu"))
    noise_model = continuous_time(model, len(scheduler))
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    joint = continuous_ode_likelihood(adaptation, noise_model, x, tolerance=1e-6)  # 1e-7: alike within 1e-4, 4x slower
    per_cell = []
    for cell, log_prior in adaptation.ode_latents(x):
        schedule, condition = adaptation.given(cell)
        solve = ode_log_likelihood(lambda z, u, step, c=condition: noise_model(z, u, c), schedule, x, 1e-6)
        per_cell.append(log_prior - torch.from_numpy(solve.nll))
    assert int(joint.terms["latents"]) == len(per_cell) == 9
    expected = -torch.logsumexp(torch.stack(per_cell), 0).numpy()
    assert joint.nll == pytest.approx(expected, abs=5e-4)


def test_a_study_report_shows_each_continuous_runs_learned_schedule(tmp_path):
    """The report's figures read each run's saved schedule (nothing retrains): one per continuous
    run and data set, none for a discrete run; `schedule.png` beside each task's other figures."""
    runs = '[runs.baseline]\nvariant = "baseline"\n\n[runs.cells]\nvariant = "mulan_cells"\n'
    study = gridnoise.run_experiment(study_file(tmp_path / "e.toml", "e", ["scales"], [0], runs), tmp_path / "out",
                                     workers=1)
    figures = sorted(p.name for p in (study.path / "schedules").iterdir())
    assert figures == ["cells_scales.png"]
    assert "schedules/cells_scales.png" in (study.path / "report.md").read_text()
    assert (study.path / "cells" / "scales" / "seed_0" / "schedule.png").is_file()
    assert not (study.path / "baseline" / "scales" / "seed_0" / "schedule.npz").exists()


def test_bad_settings_of_a_continuous_model_are_one_line_errors(tiny_run):
    with pytest.raises(ConfigError, match="takes one grid of cells"):
        gridnoise.make_config("mulan_cells", adaptation={"grids": {"a": 2, "b": 3}})
    with pytest.raises(ConfigError, match="latent_dim must be >= 1"):
        gridnoise.make_config("mulan", adaptation={"latent_dim": 0})
    with pytest.raises(SamplerError, match="ddim sampler is not defined for ContinuousNoise"):
        gridnoise.make_config("vdm", sampler={"sampler": "ddim", "steps": 5})
    with pytest.raises(ConfigError, match="sample steps must be >= 0"):
        gridnoise.make_config("vdm", sampler={"steps": -1})
    assert gridnoise.make_config("vdm", sampler={"steps": 1000}).sampler.steps == 1000  # any number of steps
    # a continuous kind's setting on a kind that would ignore it
    for variant, setting in [("baseline", {"learn_ends": True}), ("vdm", {"latent_dim": 3}),
                             ("mulan_cells", {"learned_schedule": False}), ("grid10", {"latent_dim": 4})]:
        with pytest.raises(ConfigError, match=f"adaptation.{next(iter(setting))} is not read by adaptation"):
            gridnoise.make_config(variant, adaptation=setting)
    assert gridnoise.make_config("mulan", adaptation={"latent_dim": 3, "learn_ends": True}).adaptation.latent_dim == 3


def test_the_new_settings_leave_earlier_configs_comparable():
    """At their defaults, the continuous models' settings are not part of a discrete run's identity,
    so finished studies keep their task hashes."""
    adaptation = comparable_dict(gridnoise.make_config("grid10"))["adaptation"]
    assert not {"learned_schedule", "learn_ends", "latent_dim"} & set(adaptation)
    assert comparable_dict(gridnoise.make_config("vdm_fixed"))["adaptation"]["learned_schedule"] is False


class UnlinearHead(GaussianLatentNoise):
    """A fresh instance whose schedule is not linear for every z: with the latent ignored it is no VDM."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with torch.no_grad():
            self.head[-1].bias.add_(0.5)


class WideCondition(CellLatentNoise):
    """Gives the denoiser one more column than it declares."""

    def condition(self, latent):
        one_hot = super().condition(latent)
        return torch.cat([one_hot, one_hot[:, :1]], 1)


class PriorForgotten(CellLatentNoise):
    """Marginalises the cells as log sum_c p(x | c), without the prior's weights p(c)."""

    def ode_latents(self, x, generator=None):
        return [(cell, torch.zeros_like(weight)) for cell, weight in super().ode_latents(x, generator)]


class OneDrawForAllRows(CellLatentNoise):
    """Scores the points under every cell on one draw of t over all C B rows (the bound before the fix):
    each cell's times in a 1/C slice of [0, 1] per call."""

    def bound_given(self, noise_model, generator):
        def bound(x, latent):
            schedule, condition = self.given(latent)
            return continuous_bound(schedule, lambda z, t: noise_model(z, t, condition),
                                    x.repeat(len(latent) // len(x), 1), generator)
        return bound


@pytest.mark.parametrize("cls, message", [
    (UnlinearHead, "must be VDM's with the fixed linear schedule"),
    (OneDrawForAllRows, "must be VDM's draw for draw"),
    (WideCondition, "condition_dim = 9 columns"),
    (PriorForgotten, "the ODE likelihood must be VDM's"),
])
def test_the_conformance_checks_catch_a_broken_continuous_model(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_adaptation(cls)
