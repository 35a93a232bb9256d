"""`gridnoise animate` and the sampler flags, end to end on a tiny trained run."""

import numpy as np
import pytest
from conftest import gridnoise
from PIL import Image

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
        gridnoise("train", "--config", root / "tiny.toml", "--variant", variant, "--out", out[variant],
                  "--no-progress")
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
    proc = gridnoise("animate", runs[variant], "--out", out, check=False)  # never clobbered
    assert proc.returncode == 2 and "exists" in proc.stderr and "Traceback" not in proc.stderr


def test_sample_with_ddim_eta_0_is_deterministic(runs, tmp_path):
    for name in ("a", "b"):
        gridnoise("sample", runs["baseline"], "-n", 100, "--sampler", "ddim", "--sample-steps", 5, "--eta", 0,
                  "--out", tmp_path / f"{name}.npz")
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert np.array_equal(a["samples"], b["samples"])
    bad = gridnoise("sample", runs["baseline"], "--sampler", "ddim", "--sample-steps", 50, "--out",
                    tmp_path / "c.npz", check=False)
    assert bad.returncode == 2 and "sample steps" in bad.stderr and not (tmp_path / "c.npz").exists()
