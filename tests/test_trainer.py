import numpy as np
import pytest
import torch

from gridnoise.components import sampling_components
from gridnoise.config import RunConfig, adaptation_for
from gridnoise.errors import CheckpointError, DivergedError
from gridnoise.rundir import load_checkpoint
from gridnoise.trainer import Trainer, TrainHooks


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


class StepLog(TrainHooks):
    """The step after each training step `fit` took (with `train.log_every` = 1)."""

    def __init__(self):
        self.steps = []

    def on_log(self, trainer):
        self.steps.append(trainer.step)


def test_resume_equals_uninterrupted(points, tmp_path):
    full = Trainer(small_config(steps=40, log_every=1), points)
    full.fit()
    first = Trainer(small_config(steps=40, log_every=1), points)
    while first.step < 17:  # stop mid-epoch, between EMA updates
        first.train_step()
    first.save_checkpoint(tmp_path / "ck.pt")
    resumed = Trainer(small_config(steps=40, log_every=1), points)
    resumed.load_state_dict(load_checkpoint(tmp_path / "ck.pt"))
    assert resumed.step == 17
    taken = StepLog()
    resumed.fit(taken)
    assert taken.steps == list(range(18, 41))  # only the 23 steps after the checkpoint
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


class SaveEveryStep(TrainHooks):
    def __init__(self, path):
        self.path = path

    def on_checkpoint(self, trainer):
        trainer.save_checkpoint(self.path)


def test_divergence_is_detected_and_no_bad_checkpoint_written(points, tmp_path):
    tr = Trainer(small_config(steps=50, lr=1e30, log_every=1, checkpoint_every=1), points)
    with pytest.raises(DivergedError, match="non-finite"):
        tr.fit(SaveEveryStep(tmp_path / "ck.pt"))
    # lr = 1e30 leaves finite (huge) weights after step 1 and an infinite loss at step 2: the checkpoint
    # of step 1 is the last good one, and nothing later replaced it
    state = load_checkpoint(tmp_path / "ck.pt")
    assert int(state["step"]) >= 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert torch.isfinite(state["losses"][: state["step"]]).all()


def test_gradients_are_clipped_separately_for_network_and_grids(points):
    # A tight clip on the network must leave the grids' gradient alone, and the reverse.
    loose = Trainer(small_config(variant="grid10", steps=5, grad_clip=1e9, grid_grad_clip=1e9), points)
    tight_net = Trainer(small_config(variant="grid10", steps=5, grad_clip=1e-4, grid_grad_clip=1e9), points)
    tight_grid = Trainer(small_config(variant="grid10", steps=5, grad_clip=1e9, grid_grad_clip=1e-6), points)
    for tr in (loose, tight_net, tight_grid):
        tr.train_step()  # gradients stay in .grad after the step

    def grads(tr, module):
        return torch.cat([p.grad.flatten() for p in module.parameters()])

    net, grid = grads(loose, loose.model), grads(loose, loose.adaptation)
    assert net.norm() > 1e-3 and grid.norm() > 1e-5  # both would be clipped by the tight settings
    assert torch.allclose(grads(tight_net, tight_net.model), net * (1e-4 / net.norm()), rtol=1e-4, atol=0)
    assert torch.equal(grads(tight_net, tight_net.adaptation), grid)
    assert torch.allclose(grads(tight_grid, tight_grid.adaptation), grid * (1e-6 / grid.norm()), rtol=1e-4, atol=0)
    assert torch.equal(grads(tight_grid, tight_grid.model), net)


def test_weight_decay_reaches_the_grids(points):
    # AdamW's decoupled decay: p <- p - lr * wd * p - lr * adam_update. Grids start at 1, so one step
    # with decay ends exactly lr * wd below the same step without it.
    lr, wd = 1e-2, 0.5
    with_decay = Trainer(small_config(variant="grid10", steps=5, lr=lr, weight_decay=wd), points)
    without = Trainer(small_config(variant="grid10", steps=5, lr=lr, weight_decay=0.0), points)
    grid_ids = {id(p) for p in with_decay.adaptation.parameters()}
    group = next(g for g in with_decay.optimizer.param_groups if any(id(p) in grid_ids for p in g["params"]))
    assert group["weight_decay"] == wd
    for tr in (with_decay, without):
        tr.train_step()
    gap = with_decay.adaptation.grids()["grid"] - without.adaptation.grids()["grid"]
    assert torch.allclose(gap, torch.full_like(gap, -lr * wd), atol=1e-6)


def test_eval_loss_is_one_pass_of_the_trained_weights_without_the_penalty(points, tmp_path):
    import torch.nn.functional as F

    from gridnoise.data import load
    from gridnoise.run import read_metrics, train_run
    from gridnoise.seeding import generator

    cfg = small_config(variant="multiscale_l1", steps=30)
    cfg.n_points, cfg.eval.num_samples = 500, 200
    train_run(cfg, tmp_path, progress=False)
    tr = Trainer(cfg, load("moons", 500))
    tr.load_state_dict(load_checkpoint(tmp_path / "checkpoint.pt"))

    def reference(model) -> float:
        # one pass over the data in order, batch by batch, fresh noise and timesteps from the eval stream
        gen, losses = generator(cfg.seed, "eval"), []
        with torch.no_grad():
            for start in range(0, len(tr.data), cfg.train.batch_size):
                x0 = tr.data[start:start + cfg.train.batch_size]
                eps = torch.randn(x0.shape, generator=gen)
                t = torch.randint(0, len(tr.noise_scheduler), (len(x0),), generator=gen)
                g = tr.adaptation.noise_scale(x0, t)
                x_t = tr.noise_scheduler.add_noise(x0, eps * g.unsqueeze(-1), t)
                losses.append(F.mse_loss(model(x_t, t, g), eps))
        return float(torch.stack(losses).mean())

    recorded = read_metrics(tmp_path)["eval_loss"]
    assert recorded == pytest.approx(reference(tr.model), rel=1e-6)
    assert recorded != pytest.approx(reference(tr.ema.averaged), rel=1e-6)  # not the EMA weights
    penalty = float(tr.adaptation.penalty().detach())
    assert penalty > 1e-4 and recorded != pytest.approx(reference(tr.model) + penalty, rel=1e-6)


def test_grid_factors_scale_the_grids_updates_alone(points):
    """train.grid_lr_factor scales how far the grids move and not the network's learning rate; at the
    original settings the grids share the network's parameter group."""
    runs = {}
    for factor in (1.0, 0.01):
        tr = Trainer(small_config(steps=5, grid_lr_factor=factor), points)
        before = [g.detach().clone() for g in tr.adaptation.parameters()]
        tr.fit()
        moved = sum(float((g.detach() - b).abs().sum()) for g, b in zip(tr.adaptation.parameters(), before))
        runs[factor] = (tr, moved)
    (original, moved_1), (slow, moved_001) = runs[1.0], runs[0.01]
    assert len(original.optimizer.param_groups) == 1 and len(slow.optimizer.param_groups) == 2
    assert 0 < moved_001 < 0.05 * moved_1
    assert [g["initial_lr"] for g in slow.optimizer.param_groups] == [pytest.approx(3e-4), pytest.approx(3e-6)]


def test_grid_weight_decay_factor_zero_leaves_untrained_grids_alone(points):
    """With the gradient of the grids clipped to nothing, only weight decay moves them: the original
    settings pull them towards 0, a factor of 0 does not."""
    moved = {}
    for factor in (1.0, 0.0):
        tr = Trainer(small_config(variant="grid10", steps=5, grid_weight_decay_factor=factor, lr=0.1,
                                  grid_grad_clip=1e-30), points)
        before = [g.detach().clone() for g in tr.adaptation.parameters()]
        tr.fit()
        moved[factor] = sum(float((g.detach() - b).abs().max()) for g, b in zip(tr.adaptation.parameters(), before))
    assert moved[0.0] < 1e-6 < moved[1.0]
