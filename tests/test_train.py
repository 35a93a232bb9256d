import numpy as np
import pytest
import torch

from gridnoise.config import RunConfig
from gridnoise.errors import CheckpointError, DivergedError
from gridnoise.presets import adaptation_for
from gridnoise.train import Trainer, load_checkpoint, sampling_components


def small_config(variant="multiscale_l1", seed=0, steps=40, **train):
    cfg = RunConfig(dataset="moons", variant=variant, adaptation=adaptation_for(variant), seed=seed, device="cpu")
    cfg.train.steps, cfg.train.batch_size = steps, 32
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)


def test_same_seed_same_numbers_other_seed_differs(points):
    a, b, c = (Trainer(small_config(seed=s), points) for s in (0, 0, 1))
    for tr in (a, b, c):
        tr.fit()
    assert torch.equal(a.losses, b.losses) and torch.isfinite(a.losses).all()
    assert not torch.equal(a.losses, c.losses)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)


def test_batches_are_shuffled_epochs(points):
    tr = Trainer(small_config(), points)
    epoch = torch.cat([tr.batch(s) for s in range(tr.batches_per_epoch)])
    assert tr.batches_per_epoch == 10 and len(tr.batch(9)) == 300 - 9 * 32  # last batch is partial
    assert torch.equal(epoch[torch.argsort(epoch[:, 0])], tr.data[torch.argsort(tr.data[:, 0])])
    assert not torch.equal(epoch, tr.data)
    assert not torch.equal(tr.batch(0), tr.batch(tr.batches_per_epoch))  # a new permutation per epoch


def test_grids_train_with_the_network(points):
    tr = Trainer(small_config(variant="grid10", steps=30), points)
    before = tr.adaptation.grids()["grid"].detach().clone()
    tr.fit()
    assert not torch.equal(before, tr.adaptation.grids()["grid"])
    # Sampling pairs the EMA network with the raw grids, as the seed did.
    model, adaptation = tr.sampling_modules()
    assert model is tr.ema.averaged and adaptation is tr.adaptation


def test_ema_grids_setting(points):
    tr = Trainer(small_config(variant="grid10", steps=30, ema_grids=True), points)
    tr.fit()
    _, adaptation = tr.sampling_modules()
    assert adaptation is tr.ema_adaptation.averaged


def test_lr_is_cosine_annealed(points):
    tr = Trainer(small_config(steps=20), points)
    tr.fit()
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_resume_equals_uninterrupted(points, tmp_path):
    full = Trainer(small_config(steps=40), points)
    full.fit()
    first = Trainer(small_config(steps=40), points)
    while first.step < 17:  # stop mid-epoch, between EMA updates
        first.train_step()
    first.save_checkpoint(tmp_path / "ck.pt")
    resumed = Trainer(small_config(steps=40), points)
    resumed.load_state_dict(load_checkpoint(tmp_path / "ck.pt"))
    assert resumed.step == 17
    resumed.fit()
    assert torch.equal(full.losses, resumed.losses)
    for a, b in zip(full.ema.averaged.parameters(), resumed.ema.averaged.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(full.adaptation.grids()["fine"], resumed.adaptation.grids()["fine"])


def test_checkpoint_holds_everything_and_loads_weights_only(points, tmp_path):
    tr = Trainer(small_config(steps=12), points)
    tr.fit()
    tr.save_checkpoint(tmp_path / "ck.pt")
    state = load_checkpoint(tmp_path / "ck.pt")
    for key in ("model", "ema", "adaptation", "optimizer", "lr_scheduler", "step", "config", "generator"):
        assert key in state
    scheduler, model, adaptation = sampling_components(state, torch.device("cpu"))
    for a, b in zip(model.parameters(), tr.ema.averaged.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(adaptation.grids()["coarse"], tr.adaptation.grids()["coarse"])


def test_corrupt_and_missing_checkpoints(tmp_path):
    bad = tmp_path / "ck.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_divergence_is_detected_and_no_bad_checkpoint_written(points, tmp_path):
    tr = Trainer(small_config(steps=50, lr=1e30, log_every=1), points)
    with pytest.raises(DivergedError, match="non-finite"):
        tr.fit(on_step=lambda t, _: t.save_checkpoint(tmp_path / "ck.pt"))
    if (tmp_path / "ck.pt").exists():  # the last one written is finite
        state = load_checkpoint(tmp_path / "ck.pt")
        assert all(torch.isfinite(v).all() for v in state["model"].values())
        assert torch.isfinite(state["losses"][: state["step"]]).all()
