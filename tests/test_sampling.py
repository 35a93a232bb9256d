import pytest
import torch

from gridnoise.adaptation import NoiseAdaptation, build_adaptation
from gridnoise.config import ConfigError, RunConfig, SamplerConfig
from gridnoise.diffusion import DDPMScheduler
from gridnoise.model import MLPDenoiser
from gridnoise.presets import adaptation_for
from gridnoise.sampling import SamplerError, ddim_timesteps, sample


def test_ddim_timesteps_are_trailing_and_cover_all_t():
    steps = ddim_timesteps(100, 20)
    assert len(steps) == 20 and steps[0] == 99 and steps[-1] >= 0
    assert all(a > b for a, b in zip(steps, steps[1:]))
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(SamplerError):
        ddim_timesteps(10, 11)


@pytest.mark.parametrize("sampler, frames", [(SamplerConfig(), 21), (SamplerConfig("ddim", 5), 6),
                                             (SamplerConfig("ddim", 0, 1.0), 21)])
def test_callback_sees_the_noise_and_every_step(sampler, frames):
    seen = []
    out = sample(MLPDenoiser(), NoiseAdaptation(), DDPMScheduler(20), 32, torch.Generator().manual_seed(0), sampler,
                 callback=lambda t, x: seen.append(t))
    assert len(seen) == frames and seen[0] == 20 and torch.isfinite(out).all()


def test_ddim_eta_0_sampling_depends_only_on_the_starting_noise():
    model, s = MLPDenoiser(), DDPMScheduler(20)
    a = sample(model, NoiseAdaptation(), s, 16, torch.Generator().manual_seed(3), SamplerConfig("ddim", 5))
    b = sample(model, NoiseAdaptation(), s, 16, torch.Generator().manual_seed(3), SamplerConfig("ddim", 5))
    c = sample(model, NoiseAdaptation(), s, 16, torch.Generator().manual_seed(3), SamplerConfig("ddim", 5, 1.0))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_is_refused_for_a_learned_reverse_variance():
    ad = build_adaptation(adaptation_for("reverse_variance"), 20)
    with pytest.raises(SamplerError, match="ddpm"):
        sample(MLPDenoiser(), ad, DDPMScheduler(20), 8, torch.Generator(), SamplerConfig("ddim", 5))
    cfg = RunConfig(variant="reverse_variance", adaptation=adaptation_for("reverse_variance"))
    cfg.eval.extra_samplers = {"ddim20": SamplerConfig("ddim", 20)}
    with pytest.raises(ConfigError, match="not defined"):
        cfg.validate()


@pytest.mark.parametrize("variant", ["baseline", "multiscale"])
def test_chunked_network_calls_give_the_numbers_of_one_whole_batch_call(variant):
    from gridnoise.sampling import CHUNK, predict_noise

    torch.manual_seed(0)
    adaptation = build_adaptation(adaptation_for(variant), 20)
    model = MLPDenoiser(noise_level_input=adaptation.conditions_model)
    x, t = torch.randn(2 * CHUNK + 17, 2), torch.randint(0, 20, (2 * CHUNK + 17,))
    level = adaptation.sampling_level(x, t)
    with torch.no_grad():
        assert torch.equal(predict_noise(model, x, t, level), model(x, t, level))
