"""A run's modules from its config: seeded initialisation, the sampling modules of a checkpoint."""

import pytest
import torch

from gridnoise.adaptation import ConditioningGridAdaptation, NoiseAdaptation, OriginalGridAdaptation
from gridnoise.components import build_adaptation, build_components, resolve_device, sampling_components
from gridnoise.config import AdaptationConfig, RunConfig, adaptation_for, to_dict
from gridnoise.errors import ConfigError


def test_the_seed_fixes_the_initial_weights_and_nothing_else_draws_from_the_global_stream():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    _, _, a = build_components(RunConfig(seed=4), torch.device("cpu"))
    assert torch.equal(torch.rand(3), before)  # the global generator is left as it was
    _, _, b = build_components(RunConfig(seed=4), torch.device("cpu"))
    _, _, c = build_components(RunConfig(seed=5), torch.device("cpu"))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.network[0].weight, c.network[0].weight)


@pytest.mark.parametrize("variant, cls, inputs", [("baseline", NoiseAdaptation, 384),
                                                  ("grid10", OriginalGridAdaptation, 385),
                                                  ("conditioning", ConditioningGridAdaptation, 385)])
def test_the_adaptation_decides_whether_the_network_takes_g(variant, cls, inputs):
    cfg = RunConfig(variant=variant, adaptation=adaptation_for(variant))
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    assert type(adaptation) is cls and model.network[0].in_features == inputs
    assert len(scheduler) == cfg.diffusion.num_timesteps and len(scheduler.timesteps) == len(scheduler)


def test_build_adaptation_accepts_the_former_kind_name():
    ad = build_adaptation(AdaptationConfig(kind="seed_grid", grids={"grid": 3}), 5)
    assert isinstance(ad, OriginalGridAdaptation) and ad.grids()["grid"].shape == (5, 3, 3)


def test_sampling_components_load_the_ema_weights_not_the_raw_ones():
    cfg = RunConfig(variant="grid10", adaptation=adaptation_for("grid10"))
    _, adaptation, model = build_components(cfg, torch.device("cpu"))
    ema = {f"averaged.{k}": v + 1 for k, v in model.state_dict().items()}
    ema["num_calls"] = torch.tensor(3)
    state = {"config": to_dict(cfg), "ema": ema,
             "adaptation": {k: v * 2 for k, v in adaptation.state_dict().items()}}
    _, loaded, grids = sampling_components(state, torch.device("cpu"))
    assert torch.equal(loaded.network[0].weight, model.network[0].weight + 1)
    assert torch.equal(grids.grids()["grid"], torch.full((100, 10, 10), 2.0))
    assert not loaded.training and not grids.training


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == torch.device("cuda:0")
    else:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
