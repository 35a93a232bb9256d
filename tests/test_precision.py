import pytest
import torch

from gridnoise.config import RunConfig, adaptation_for, comparable_dict, from_dict, to_dict
from gridnoise.data import load
from gridnoise.errors import ConfigError
from gridnoise.model import MLPDenoiser
from gridnoise.precision import Autocast, autocast, native_bf16, slow_precision_warning, with_precision
from gridnoise.study.experiment import config_hash
from gridnoise.trainer import Trainer


def _trainer(precision: str, variant: str = "multiscale_l1", steps: int = 5) -> Trainer:
    cfg = RunConfig(dataset="moons", variant=variant, adaptation=adaptation_for(variant), device="cpu",
                    n_points=2000, precision=precision)
    cfg.train.steps = steps
    return Trainer(cfg, load("moons", 2000))


def test_fp32_is_the_network_itself():
    model = MLPDenoiser()
    assert with_precision(model, "fp32") is model
    assert isinstance(with_precision(model, "bf16"), Autocast)


def test_bf16_runs_linear_layers_in_bfloat16_and_returns_fp32():
    model = MLPDenoiser()
    seen = []
    model.network[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x, t = torch.randn(8, 2), torch.randint(0, 100, (8,))
    out = with_precision(model, "bf16")(x, t)
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    exact = model(x, t)
    assert seen[-1] == torch.float32
    # bf16 keeps about 3 significant digits: close to fp32, not equal
    assert not torch.equal(out, exact) and torch.allclose(out, exact, atol=0.05)


def test_bf16_training_is_reproducible_and_close_to_fp32():
    runs = {}
    for precision in ("fp32", "bf16", "bf16"):
        tr = _trainer(precision)
        tr.fit()
        runs.setdefault(precision, []).append(tr.losses.clone())
    assert torch.equal(runs["bf16"][0], runs["bf16"][1])
    assert torch.isfinite(runs["bf16"][0]).all()
    assert not torch.equal(runs["bf16"][0], runs["fp32"][0])
    assert torch.allclose(runs["bf16"][0], runs["fp32"][0], rtol=0.05)


def test_unknown_precision_is_refused():
    with pytest.raises(ConfigError, match="precision"):
        from_dict(RunConfig, {"precision": "fp16"})
    with pytest.raises(ValueError, match="unknown precision"):
        autocast("int8", "cpu")


def test_fp32_keeps_the_task_hashes_of_configs_written_before_precision_existed():
    cfg = RunConfig()
    old = to_dict(cfg)
    del old["precision"]  # a config.toml from before the setting
    assert comparable_dict(from_dict(RunConfig, old)) == comparable_dict(cfg)
    assert "precision" not in comparable_dict(cfg)
    bf16 = RunConfig(precision="bf16")
    assert comparable_dict(bf16)["precision"] == "bf16" and config_hash(bf16) != config_hash(cfg)


def test_only_emulated_bf16_is_warned_about():
    assert slow_precision_warning("fp32", "cpu") is None
    assert (slow_precision_warning("bf16", "cpu") is None) == native_bf16("cpu")
    cuda_warning = slow_precision_warning("bf16", "cuda")
    assert (cuda_warning is None) == native_bf16("cuda")
    assert native_bf16("cuda") or "--precision fp32" in cuda_warning
