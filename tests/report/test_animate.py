"""`gridnoise animate` and the sampler flags, end to end on a tiny trained run."""

import numpy as np
import pytest
from PIL import Image

from conftest import cli, gridnoise

TINY = """
n_points = 2000
[diffusion]
num_timesteps = 20
[train]
steps = 30
batch_size = 64
[eval]
num_samples = 300
[eval.extra_samplers]
ddim5 = {sampler = "ddim", steps = 5}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("animate")
    (root / "tiny.toml").write_text(TINY)
    out = {}
    for variant in ("baseline", "multiscale"):
        out[variant] = root / variant
        cli("train", "--config", root / "tiny.toml", "--variant", variant, "--out", out[variant],
            "--no-progress", check=True)
    return out


def test_extra_samplers_and_abar_t_are_recorded(runs):
    import json

    metrics = json.loads((runs["baseline"] / "metrics.json").read_text())
    assert {"ddim5_kl_divergence", "ddim5_w2", "ddim5_inference_time", "abar_T"} <= set(metrics)
    assert 0.01 < metrics["abar_T"] < 1 and np.isfinite(metrics["ddim5_kl_divergence"])


@pytest.mark.parametrize("variant, args, frames", [("baseline", [], 21),
                                                    ("multiscale", ["--sampler", "ddim", "--sample-steps", "5"], 6)])
def test_gif_has_one_frame_per_state(runs, tmp_path, variant, args, frames):
    out = tmp_path / "rev.gif"
    gridnoise("animate", runs[variant], "-n", 200, "--out", out, *args)
    with Image.open(out) as gif:
        assert gif.format == "GIF" and gif.n_frames == frames
    proc = cli("animate", runs[variant], "--out", out)  # never clobbered
    assert proc.returncode == 2 and "exists" in proc.stderr and "Traceback" not in proc.stderr


def test_sample_with_ddim_eta_0_is_the_deterministic_map_of_its_starting_noise(runs, tmp_path):
    # DDIM with eta = 0 draws nothing after the starting noise: the command's samples must equal the
    # update x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps_hat applied to that noise by hand.
    import torch

    from gridnoise.components import sampling_components
    from gridnoise.rundir import load_checkpoint
    from gridnoise.seeding import generator

    cli("sample", runs["multiscale"], "-n", 100, "--seed", 3, "--sampler", "ddim", "--sample-steps", 5,
        "--eta", 0, "--out", tmp_path / "a.npz", check=True)
    scheduler, model, adaptation = sampling_components(load_checkpoint(runs["multiscale"] / "checkpoint.pt"),
                                                       torch.device("cpu"))
    x = torch.randn((100, 2), generator=generator(3, "sample"))
    abar = scheduler.alphas_cumprod
    steps = [19, 15, 11, 7, 3]  # five trailing timesteps of T = 20
    with torch.no_grad():
        for t, t_prev in zip(steps, steps[1:] + [-1]):
            ts = torch.full((100,), t)
            eps = model(x, ts, adaptation.sampling_noise_scale(x, ts))
            x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
            a_prev = abar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    with np.load(tmp_path / "a.npz") as a:
        assert np.allclose(a["samples"], x.numpy(), rtol=1e-5, atol=1e-5)
    bad = cli("sample", runs["baseline"], "--sampler", "ddim", "--sample-steps", 50, "--out",
                    tmp_path / "c.npz")
    assert bad.returncode == 2 and "sample steps" in bad.stderr and not (tmp_path / "c.npz").exists()
