"""One run end to end for every variant: train, evaluate, sample with each sampler it supports."""

import json

import numpy as np
import pytest

from gridnoise import rundir
from gridnoise.config import RunConfig, SamplerConfig, adaptation_for
from gridnoise.presets import VARIANTS
from gridnoise.run import train_run
from gridnoise.sampling import sample_run

from conftest import cli

DDPM_ONLY = {name for name, preset in VARIANTS.items() if preset["kind"] == "reverse_variance"}
CONTINUOUS = {name for name, preset in VARIANTS.items() if preset["kind"] in ("vdm", "mulan", "mulan_cells")}


def tiny_config(variant: str, **diffusion) -> RunConfig:
    cfg = RunConfig(dataset="moons", variant=variant, adaptation=adaptation_for(variant), n_points=1000,
                    device="cpu")
    cfg.diffusion.num_timesteps = 20
    for key, value in diffusion.items():
        setattr(cfg.diffusion, key, value)
    cfg.train.steps, cfg.train.batch_size, cfg.train.grid_snapshot_every = 20, 64, 10
    cfg.eval.num_samples = 200
    if variant in CONTINUOUS:  # ancestral steps, any number of them
        cfg.eval.extra_samplers = {"ddpm5": SamplerConfig("ddpm", 5, clip_sample=3.0)}
    elif variant not in DDPM_ONLY:
        cfg.eval.extra_samplers = {"ddim5": SamplerConfig("ddim", 5, clip_sample=3.0)}
    return cfg


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_and_samples_with_its_samplers(variant, tmp_path):
    metrics = train_run(tiny_config(variant), tmp_path, progress=False)
    assert all(np.isfinite(v) for v in metrics.values())
    grids = adaptation_for(variant).grids and variant not in CONTINUOUS  # mulan_cells' grid is of latent cells
    assert (tmp_path / "grids" / "grids_step_20.npz").is_file() == bool(grids)
    assert not (tmp_path / "heatmaps").exists()  # snapshots are saved as data; `gridnoise plot` draws them
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "grids.png").is_file() == bool(grids)
    timings = rundir.read_timings(tmp_path)  # where the run's time went
    assert timings["training_time"] == metrics["training_time"]  # one segment: all of the training
    assert 0 < timings["training_time"] + timings["evaluation_time"] + timings["figures_time"] < timings["wall_time"]
    # the machine's load while it trained: at least this run's own thread once it has run a while
    assert timings["cores"] >= 1 and timings["load_average_max"] >= 0
    assert ("ddim5_kl_divergence" in metrics) == (variant not in DDPM_ONLY | CONTINUOUS)
    assert ("ddpm5_kl_divergence" in metrics) == (variant in CONTINUOUS)
    samplers = [SamplerConfig(), SamplerConfig(clip_sample=1.0)]
    if variant in CONTINUOUS:
        samplers += [SamplerConfig("ddpm", 5), SamplerConfig("ddpm", 50, clip_sample=1.0)]
    elif variant not in DDPM_ONLY:
        samplers += [SamplerConfig("ddim", 5), SamplerConfig("ddim", 5, 1.0, clip_sample=1.0)]
    drawn = [sample_run(tmp_path, 64, 1, "cpu", s) for s in samplers]
    assert all(x.shape == (64, 2) and np.isfinite(x).all() for x in drawn)
    assert not np.array_equal(drawn[0], drawn[1])  # a clip at 1 changes a moons sample


def test_zero_terminal_snr_schedule_trains_and_samples_clipped(tmp_path):
    cfg = tiny_config("multiscale", beta_schedule="cosine", zero_terminal_snr=True)
    metrics = train_run(cfg, tmp_path, progress=False)
    assert metrics["abar_T"] == pytest.approx(2.0**-24)
    assert np.isfinite(metrics["ddim5_kl_divergence"])
    x = sample_run(tmp_path, 64, 0, "cpu", SamplerConfig(clip_sample=3.0))
    assert np.isfinite(x).all() and np.abs(x).max() < 10


def test_clip_sample_reaches_the_sampler_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "c.toml"
    config.write_text('n_points = 1000\n[diffusion]\nnum_timesteps = 20\n[train]\nsteps = 20\nbatch_size = 64\n'
                      '[eval]\nnum_samples = 200\n[eval.extra_samplers]\n'
                      'ddpm_clip = {sampler = "ddpm", clip_sample = 0.5}\n')
    cli("train", "--config", config, "--variant", "conditioning", "--out", run, "--no-progress", check=True)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["ddpm_clip_kl_divergence"] != metrics["kl_divergence"]
    for clip in ("0", "0.5"):
        cli("sample", run, "-n", 100, "--clip-sample", clip, "--out", tmp_path / f"{clip}.npz", check=True)
    with np.load(tmp_path / "0.npz") as free, np.load(tmp_path / "0.5.npz") as clipped:
        assert np.array_equal(free["samples"], sample_run(run, 100, 0, "cpu", SamplerConfig()))
        assert np.array_equal(clipped["samples"], sample_run(run, 100, 0, "cpu", SamplerConfig(clip_sample=0.5)))
        assert not np.array_equal(free["samples"], clipped["samples"])


def test_a_runs_own_sampler_draws_its_samples(tmp_path):
    """`[sampler]` sets how a run's samples.npz is drawn (here clipped), `sample_run` redraws them with
    it by default, and the setting takes part in the task's hash only when it is not DDPM's default."""
    from gridnoise.study.experiment import config_hash

    cfg = tiny_config("conditioning")
    plain = config_hash(cfg)
    cfg.sampler = SamplerConfig(clip_sample=0.5)
    assert config_hash(cfg) != plain and config_hash(tiny_config("conditioning")) == plain
    train_run(cfg, tmp_path)
    samples = rundir.read_samples(tmp_path)
    model = (samples - np.array(cfg.data.shift or [0.0, 0.0])) / cfg.data.scale
    assert np.abs(model).max() <= 0.5 + 1e-6
    assert np.array_equal(samples, sample_run(tmp_path, cfg.eval.num_samples, None, "cpu"))
