import pytest
import torch

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.components import build_adaptation
from gridnoise.config import DiffusionConfig, RunConfig, SamplerConfig, adaptation_for
from gridnoise.errors import ConfigError, SamplerError
from gridnoise.model import MLPDenoiser
from gridnoise.sampling import sample
from gridnoise.schedulers import DDIMScheduler, DDPMScheduler, make_scheduler


def scheduler(sampler: SamplerConfig, T: int = 20):
    return make_scheduler(DiffusionConfig(num_timesteps=T), sampler)


@pytest.mark.parametrize("sampler, frames", [(SamplerConfig(), 21), (SamplerConfig("ddim", 5), 6),
                                             (SamplerConfig("ddim", 0, 1.0), 21)])
def test_callback_sees_the_noise_and_every_step(sampler, frames):
    seen = []
    out = sample(MLPDenoiser(), NoiseAdaptation(), scheduler(sampler), 32, torch.Generator().manual_seed(0),
                 callback=lambda t, x: seen.append(t))
    assert len(seen) == frames and seen[0] == 20 and torch.isfinite(out).all()
    assert seen[1:] == scheduler(sampler).timesteps.tolist()  # one loop over the scheduler's timesteps


def test_ddim_eta_0_sampling_depends_only_on_the_starting_noise():
    # the same x_T with different generators: eta = 0 draws nothing more, eta = 1 does
    model, x_T = MLPDenoiser(), torch.randn(16, 2)
    ddim, noisy = scheduler(SamplerConfig("ddim", 5)), scheduler(SamplerConfig("ddim", 5, 1.0))
    a = sample(model, NoiseAdaptation(), ddim, 16, torch.Generator().manual_seed(3), noise=x_T)
    b = sample(model, NoiseAdaptation(), ddim, 16, torch.Generator().manual_seed(4), noise=x_T)
    c = sample(model, NoiseAdaptation(), noisy, 16, torch.Generator().manual_seed(3), noise=x_T)
    d = sample(model, NoiseAdaptation(), noisy, 16, torch.Generator().manual_seed(4), noise=x_T)
    assert torch.equal(a, b) and not torch.equal(c, d) and not torch.equal(a, c)


def test_the_starting_noise_is_the_generators_first_draw():
    model, s = MLPDenoiser(), scheduler(SamplerConfig())
    drawn = sample(model, NoiseAdaptation(), s, 16, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    x_T = torch.randn((16, 2), generator=gen)
    assert torch.equal(sample(model, NoiseAdaptation(), s, 16, gen, noise=x_T), drawn)


def test_ddim_is_refused_for_a_learned_reverse_variance():
    ad = build_adaptation(adaptation_for("reverse_variance"), 20)
    with pytest.raises(SamplerError, match="ddpm"):
        sample(MLPDenoiser(), ad, scheduler(SamplerConfig("ddim", 5)), 8, torch.Generator())
    cfg = RunConfig(variant="reverse_variance", adaptation=adaptation_for("reverse_variance"))
    cfg.eval.extra_samplers = {"ddim20": SamplerConfig("ddim", 20)}
    with pytest.raises(ConfigError, match="not defined"):
        cfg.validate()
    assert ad.supported_samplers == ("ddpm",) and "ddim" in NoiseAdaptation.supported_samplers


def test_every_scheduler_is_built_from_the_run_config_in_one_call():
    d = DiffusionConfig(num_timesteps=30, beta_schedule="cosine")
    ddpm, ddim = make_scheduler(d), make_scheduler(d, SamplerConfig("ddim", 6, 0.5, clip_sample=2.0))
    assert isinstance(ddpm, DDPMScheduler) and isinstance(ddim, DDIMScheduler)
    assert len(ddpm.timesteps) == 30 and len(ddim.timesteps) == 6
    assert (ddim.eta, ddim.clip_sample) == (0.5, 2.0)
    assert torch.equal(ddpm.betas, ddim.betas)


@pytest.mark.parametrize("variant", ["baseline", "multiscale"])
def test_chunked_network_calls_give_the_numbers_of_one_whole_batch_call(variant):
    from gridnoise.model import CHUNK, predict_noise

    torch.manual_seed(0)
    adaptation = build_adaptation(adaptation_for(variant), 20)
    model = MLPDenoiser(condition_dim=adaptation.condition_dim)
    x, t = torch.randn(2 * CHUNK + 17, 2), torch.randint(0, 20, (2 * CHUNK + 17,))
    g = adaptation.sampling_noise_scale(x, t)
    with torch.no_grad():
        assert torch.equal(predict_noise(model, x, t, g), model(x, t, g))
