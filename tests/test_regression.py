"""Regression values recorded before the architecture pass, so a refactor keeps every number.

- Samples and metrics of small real runs, one per sampler (DDPM, DDIM with eta 0 and 1, each
  with and without clipping x_0) and per adaptation mechanism, compared bit for bit with the
  values recorded on this kind of CPU (`tests/golden/regression_<cpu>.npz`). A CPU without its
  own recording is compared with another CPU's at float tolerance: matmul kernels differ in
  rounding between instruction sets, so bit-identity only holds on the same machine.
- The original study's hyper-parameter defaults and the first draws of every seeded stream.
- The task hashes of the documented studies (`experiments/*.toml`, five seeds), so finished
  studies stay finished.

`python tests/golden/record.py` writes this machine's recording; it is run once before a change
that must keep the numbers, never to make a failing comparison pass.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golden.record import GOLDEN, NUM_SAMPLES, VARIANTS, golden_files, machine_key, record_values

TIMINGS = ("training_time", "inference_time")


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    return record_values(tmp_path_factory.mktemp("regression"))


def test_every_sampler_and_mechanism_is_recorded(computed):
    expected = {f"samples/{v}/{s}" for v, samplers in VARIANTS.items() for s in samplers}
    assert expected <= set(computed)
    for key in expected:
        assert computed[key].shape == (NUM_SAMPLES, 2) and np.isfinite(computed[key]).all()


def test_samples_and_metrics_match_the_recording(computed):
    files = golden_files()
    assert files, f"no recording in {GOLDEN}: run `python tests/golden/record.py` before changing the code"
    own = GOLDEN / f"regression_{machine_key()}.npz"
    exact = own in files
    with np.load(own if exact else files[0]) as f:
        golden = {k: f[k] for k in f.files}
    assert set(golden) == set(computed)
    for key, expected in golden.items():
        actual = computed[key]
        if any(key.endswith(t) for t in TIMINGS):
            continue
        if exact:
            assert np.array_equal(actual, expected, equal_nan=True), f"{key} changed"
        else:  # another CPU's kernels: equal up to rounding that the sampler carries along
            assert np.allclose(actual, expected, rtol=1e-3, atol=2e-3, equal_nan=True), f"{key} changed"


def test_the_original_studys_defaults():
    from gridnoise.config import RunConfig, to_dict

    d = to_dict(RunConfig())
    assert d["diffusion"] == {"num_timesteps": 100, "beta_schedule": "linear", "beta_start": 1e-4,
                              "beta_end": 0.02, "zero_terminal_snr": False}
    assert d["model"] == {"embedding_dim": 128, "hidden_dim": 256, "hidden_layers": 3, "input_scale": 25.0,
                          "time_scale": 1.0}
    t = d["train"]
    assert (t["steps"], t["batch_size"], t["lr"], t["weight_decay"]) == (10_000, 256, 3e-4, 0.01)
    assert (t["grad_clip"], t["grid_grad_clip"]) == (0.5, 0.5)
    assert (t["ema_decay"], t["ema_update_every"], t["ema_warmup_steps"], t["ema_power"], t["ema_grids"]) == \
        (0.995, 10, 100, 2 / 3, False)
    assert (t["checkpoint_every"], t["grid_snapshot_every"]) == (1000, 1000)
    assert (d["eval"]["num_samples"], d["eval"]["kl_k"]) == (10_000, 5)
    assert (d["dataset"], d["seed"], d["data_seed"], d["n_points"], d["precision"]) == \
        ("moons", 0, 42, 100_000, "fp32")


# First values of each seeded stream of seed 0, as recorded before the architecture pass.
STREAM_SEEDS = {
    "init": 3833953820565842592, "train": 6840845319194447451, "epoch0": 2553152922905909793,
    "eval": 5291529424663151004, "sample": 3921076007050457452, "kl1000": 8430746169147812115,
}


def test_first_draws_of_every_seeded_stream():
    from gridnoise.seeding import derive_seed, generator

    for purpose, seed in STREAM_SEEDS.items():
        assert derive_seed(0, purpose) == seed, purpose
    with open(GOLDEN / "streams.json") as f:
        streams = json.load(f)
    # what the trainer draws first: the epoch's permutation, then the batch's noise and timesteps
    perm = torch.randperm(100_000, generator=generator(0, "epoch0"))[:8]
    train = generator(0, "train")
    noise = torch.randn((256, 2), generator=train)[:4]
    timesteps = torch.randint(0, 100, (256,), generator=train)[:8]
    start = torch.randn((10_000, 2), generator=generator(0, "sample"))[:4]
    assert perm.tolist() == streams["epoch0_perm"]
    assert timesteps.tolist() == streams["train_timesteps"]
    assert torch.equal(noise, torch.tensor(streams["train_noise"]))
    assert torch.equal(start, torch.tensor(streams["sample_start"]))
    # initialisation: the first weights of a fresh network
    from gridnoise.components import build_components
    from gridnoise.config import RunConfig

    _, _, model = build_components(RunConfig(), torch.device("cpu"))
    assert torch.equal(model.network[0].weight[0, :4].detach(), torch.tensor(streams["init_weight"]))


def test_documented_studies_keep_their_task_hashes():
    from gridnoise.study.experiment import bundled, load_experiment

    with open(GOLDEN / "task_hashes.json") as f:
        recorded = json.load(f)
    for name, expected in recorded.items():  # "seed" is the original study's former file name
        exp = load_experiment(bundled(name)).restricted(seeds=[0, 1, 2, 3, 4])
        assert exp.identity() == expected["identity"], name
        assert {t.key: t.config_hash for t in exp.tasks()} == expected["tasks"], name
