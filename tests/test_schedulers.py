"""The samplers' steps: DDPM's posterior step and DDIM's, against float64 references."""

import pytest
import torch

from gridnoise.schedulers import DDIMScheduler, DDPMScheduler, ddim_timesteps, make_scheduler


def test_step_with_true_noise_recovers_x0_and_posterior_mean():
    s = DDPMScheduler(100)
    x0, eps = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 50, 98, 99])
    x_t = s.add_noise(x0, eps, t)
    out = s.step(eps, t, x_t, noise=torch.zeros_like(x_t))
    assert torch.allclose(out.pred_original_sample, x0, atol=1e-4)
    # Posterior mean computed independently in float64 from the betas (Ho et al. eq. 7).
    b = s.betas.double()
    abar = torch.cumprod(1 - b, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    c1 = (b * prev.sqrt() / (1 - abar))[t, None]
    c2 = ((1 - prev) * (1 - b).sqrt() / (1 - abar))[t, None]
    assert torch.allclose(out.prev_sample, c1 * x0 + c2 * x_t, atol=1e-4)


def test_step_adds_posterior_noise_except_at_zero():
    s = DDPMScheduler(100)
    x = torch.zeros(3, 2)
    z = torch.ones(3, 2)
    t = torch.tensor([0, 1, 99])
    out = s.step(torch.zeros(3, 2), t, x, noise=z)
    b = s.betas.double()
    abar = torch.cumprod(1 - b, 0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    expected_var = (b * (1 - prev) / (1 - abar))[t]
    expected_var[0] = 0
    assert torch.allclose(out.prev_sample[:, 0].double(), expected_var.sqrt(), atol=1e-6)


def test_step_is_seeded_and_buffers_roundtrip():
    s = DDPMScheduler(20, "quadratic")
    clone = DDPMScheduler(20, "quadratic")
    clone.load_state_dict(s.state_dict())
    x, eps, t = torch.randn(5, 2), torch.randn(5, 2), torch.full((5,), 7)
    a = s.step(eps, t, x, generator=torch.Generator().manual_seed(3)).prev_sample
    b = clone.step(eps, t, x, generator=torch.Generator().manual_seed(3)).prev_sample
    assert torch.equal(a, b)
    assert "alphas_cumprod" in s.state_dict()


def test_std_scale_multiplies_the_step_noise():
    s = DDPMScheduler(10)
    x, eps, noise = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    t = torch.tensor([5, 5, 3, 0])
    plain = s.step(eps, t, x, noise=noise)
    scale = torch.tensor([2.0, 0.0, 0.5, 3.0])
    scaled = s.step(eps, t, x, noise=noise, std_scale=scale)
    std = s.posterior_variance[t].sqrt().unsqueeze(-1)
    mean = plain.prev_sample - std * noise
    assert torch.allclose(scaled.prev_sample, mean + scale.unsqueeze(-1) * std * noise)
    assert torch.equal(scaled.prev_sample[3], plain.prev_sample[3])  # t = 0 stays noise-free


def test_ddim_with_every_step_and_eta_1_is_the_ddpm_step():
    s, d = DDPMScheduler(50), DDIMScheduler(50, eta=1.0)  # DDIM over all T timesteps: t' = t - 1
    x, eps, z = torch.randn(64, 2), torch.randn(64, 2), torch.randn(64, 2)
    t = torch.randint(1, 50, (64,))
    ddpm = s.step(eps, t, x, noise=z).prev_sample
    ddim = d.step(eps, t, x, noise=z).prev_sample
    assert torch.allclose(ddim, ddpm, atol=1e-5)
    # and the final step (t = 0 -> x_0) returns the predicted clean sample
    zero = torch.zeros(64, dtype=torch.long)
    out = d.step(eps, zero, x, noise=z)
    assert torch.allclose(out.prev_sample, out.pred_original_sample, atol=1e-6)


def test_ddim_eta_0_is_deterministic():
    s = DDIMScheduler(50)
    s.set_timesteps(5)  # 49, 39, 29, 19, 9
    x, eps, t = torch.randn(8, 2), torch.randn(8, 2), torch.full((8,), 29)
    a = s.step(eps, t, x, generator=torch.Generator().manual_seed(1)).prev_sample
    b = s.step(eps, t, x, generator=torch.Generator().manual_seed(2)).prev_sample
    assert torch.equal(a, b)


@pytest.mark.parametrize("ddim", [False, True])
def test_clip_sample_bounds_the_predicted_x0_and_is_a_no_op_when_loose(ddim):
    x, eps, z = torch.randn(256, 2), torch.randn(256, 2), torch.randn(256, 2)
    t = torch.full((256,), 99)  # abar ~ 2e-7: an unclipped x_0 estimate is in the thousands

    def scheduler(clip, eta=1.0):
        if ddim:
            s = DDIMScheduler(100, "cosine", eta=eta, clip_sample=clip)
            s.set_timesteps(5)  # 99, 79, ...: the step from 99 goes to 79
            return s
        return DDPMScheduler(100, "cosine", clip_sample=clip)

    def step(clip):
        return scheduler(clip).step(eps, t, x, noise=z)

    s = scheduler(0.0)

    free, clipped, loose = step(0.0), step(4.0), step(1e9)
    assert free.pred_original_sample.abs().max() > 100
    assert clipped.pred_original_sample.abs().max() <= 4.0
    # DDPM: a loose clip changes nothing; DDIM re-derives the noise from x_0, equal up to rounding
    assert torch.allclose(loose.prev_sample, free.prev_sample, rtol=1e-4, atol=1e-4)
    assert clipped.prev_sample.abs().max() < free.prev_sample.abs().max()
    if ddim:  # the step moves along the noise re-derived from the clipped x_0, not the network's
        abar, abar_prev = s.alphas_cumprod[99], s.alphas_cumprod[79]
        x0 = clipped.pred_original_sample
        eps_clipped = (x - abar.sqrt() * x0) / (1 - abar).sqrt()
        out = scheduler(4.0, eta=0.0).step(eps, t, x).prev_sample
        assert torch.allclose(out, abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps_clipped, atol=1e-5)


def test_ddim_timesteps_are_trailing_and_cover_all_t():
    steps = ddim_timesteps(100, 20)
    assert len(steps) == 20 and steps[0] == 99 and steps[-1] >= 0
    assert all(a > b for a, b in zip(steps, steps[1:]))
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


def test_set_timesteps_fills_timesteps_and_each_step_jumps_to_the_next():
    ddpm = DDPMScheduler(10)
    assert ddpm.timesteps.tolist() == list(range(9, -1, -1))
    with pytest.raises(ValueError, match="DDIM"):
        ddpm.set_timesteps(5)
    ddim = DDIMScheduler(20)
    ddim.set_timesteps(5)
    assert ddim.timesteps.tolist() == [19, 15, 11, 7, 3]
    assert ddim.prev_timesteps[ddim.timesteps].tolist() == [15, 11, 7, 3, -1]
    # the jump from 19 to 15 in float64: x_15 = sqrt(abar_15) x0_hat + sqrt(1 - abar_15) eps (eta = 0)
    x, eps = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    abar = ddim.alphas_cumprod.double()
    x0 = (x - (1 - abar[19]).sqrt() * eps) / abar[19].sqrt()
    out = ddim.step(eps.float(), torch.full((4,), 19), x.float()).prev_sample
    assert torch.allclose(out.double(), abar[15].sqrt() * x0 + (1 - abar[15]).sqrt() * eps, atol=1e-5)


def test_from_config_round_trips_the_constructor_and_gives_identical_steps():
    from gridnoise.config import DiffusionConfig, SamplerConfig

    diffusion = DiffusionConfig(num_timesteps=30, beta_schedule="cosine")
    for sampler in (SamplerConfig(), SamplerConfig("ddim", 6, 0.5, clip_sample=2.0)):
        s = make_scheduler(diffusion, sampler)
        clone = type(s)(**s.config)
        if sampler.sampler == "ddim":  # the inference steps are set after construction, as in diffusers
            clone.set_timesteps(len(s.timesteps))
        assert torch.equal(clone.timesteps, s.timesteps)
        x, eps, t = torch.randn(8, 2), torch.randn(8, 2), s.timesteps[:1].expand(8)
        a = s.step(eps, t, x, generator=torch.Generator().manual_seed(0))
        b = clone.step(eps, t, x, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a.prev_sample, b.prev_sample) and torch.equal(a.pred_original_sample, b.pred_original_sample)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_scheduler(diffusion, SamplerConfig("euler"))
