import math

import numpy as np
import pytest
import torch

from gridnoise.diffusion import DDPMScheduler, make_betas, rescale_zero_terminal_snr


@pytest.mark.parametrize("schedule", ["linear", "quadratic"])
def test_schedule_conformance(schedule):
    s = DDPMScheduler(100, schedule)
    abar = s.alphas_cumprod
    assert torch.all(abar[1:] < abar[:-1]), "alphas_cumprod must strictly decrease"
    assert s.posterior_variance[0] == 0
    assert torch.all(s.posterior_variance[1:] > 0)
    assert s.betas[0] == pytest.approx(1e-4) and s.betas[-1] == pytest.approx(0.02)


def test_quadratic_is_linear_in_sqrt_beta():
    b = make_betas(10, "quadratic", 1e-4, 0.02).double().sqrt()
    assert np.allclose(np.diff(b.numpy()), (0.02**0.5 - 1e-4**0.5) / 9, atol=1e-7)


def test_linear_schedule_leaves_signal_at_T():
    # SYSTEM.md section 4: abar_T is about 0.36 with T = 100 and the linear schedule.
    assert DDPMScheduler(100).alphas_cumprod[-1].item() == pytest.approx(0.364, abs=0.005)


def test_bad_schedule_and_T():
    with pytest.raises(ValueError, match="unknown beta schedule 'sigmoid'"):
        make_betas(10, "sigmoid")
    with pytest.raises(ValueError, match=">= 2"):
        DDPMScheduler(1)


def test_add_noise_formula():
    s = DDPMScheduler(50)
    x0, eps = torch.randn(8, 2), torch.randn(8, 2)
    t = torch.arange(0, 50, 7)[:8].long()
    # the reference entirely in float64; float32 buffers and arithmetic differ by ~1 ulp per term
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 50, dtype=torch.float64), 0)[t].unsqueeze(-1)
    expected = abar.sqrt() * x0.double() + (1 - abar).sqrt() * eps.double()
    assert torch.allclose(s.add_noise(x0, eps, t).double(), expected, rtol=1e-6, atol=1e-6)


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


def test_cosine_schedule_follows_its_formula():
    T, s_ = 100, 0.008
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    sched = DDPMScheduler(T, "cosine")
    abar = sched.alphas_cumprod.double()
    betas = make_betas(T, "cosine")
    assert betas.max() <= 0.999 and (betas > 0).all()
    unclipped = [t for t in range(T) if betas[t] < 0.999]
    for t in unclipped[:: 7]:
        assert abar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-5)
    assert (abar[1:] < abar[:-1]).all()  # monotone
    assert abar[0] > 0.999 and abar[-1] < 1e-3


def test_zero_terminal_snr_rescale():
    betas = make_betas(100, "linear").double()
    rescaled = rescale_zero_terminal_snr(betas)
    abar, new = torch.cumprod(1 - betas, 0), torch.cumprod(1 - rescaled, 0)
    assert new[-1].item() == 0.0 and new[0].item() == pytest.approx(abar[0].item(), rel=1e-12)
    assert (new[1:] < new[:-1]).all()
    for schedule in ("linear", "cosine"):
        sched = DDPMScheduler(100, schedule, zero_terminal_snr=True)
        assert sched.alphas_cumprod[-1].item() == 2.0**-24  # floored for eps-prediction, SNR ~ 6e-8
        assert torch.allclose(torch.cumprod(1 - sched.betas.double(), 0), sched.alphas_cumprod.double(), rtol=1e-5)
        assert (sched.alphas_cumprod[1:] < sched.alphas_cumprod[:-1]).all()
    assert DDPMScheduler(100).alphas_cumprod[-1] > 0.3  # the study's schedule stops far from noise


def test_ddim_with_every_step_and_eta_1_is_the_ddpm_step():
    s = DDPMScheduler(50)
    x, eps, z = torch.randn(64, 2), torch.randn(64, 2), torch.randn(64, 2)
    t = torch.randint(1, 50, (64,))
    ddpm = s.step(eps, t, x, noise=z).prev_sample
    ddim = s.ddim_step(eps, t, t - 1, x, eta=1.0, noise=z).prev_sample
    assert torch.allclose(ddim, ddpm, atol=1e-5)
    # and the final step (t = 0 -> x_0) returns the predicted clean sample
    zero = torch.zeros(64, dtype=torch.long)
    out = s.ddim_step(eps, zero, zero - 1, x, eta=1.0, noise=z)
    assert torch.allclose(out.prev_sample, out.pred_original_sample, atol=1e-6)


def test_ddim_eta_0_is_deterministic():
    s = DDPMScheduler(50)
    x, eps, t = torch.randn(8, 2), torch.randn(8, 2), torch.full((8,), 30)
    a = s.ddim_step(eps, t, t - 10, x, eta=0.0, generator=torch.Generator().manual_seed(1)).prev_sample
    b = s.ddim_step(eps, t, t - 10, x, eta=0.0, generator=torch.Generator().manual_seed(2)).prev_sample
    assert torch.equal(a, b)


@pytest.mark.parametrize("ddim", [False, True])
def test_clip_sample_bounds_the_predicted_x0_and_is_a_no_op_when_loose(ddim):
    s = DDPMScheduler(100, "cosine")
    x, eps, z = torch.randn(256, 2), torch.randn(256, 2), torch.randn(256, 2)
    t = torch.full((256,), 99)  # abar ~ 2e-7: an unclipped x_0 estimate is in the thousands

    def step(clip):
        if ddim:
            return s.ddim_step(eps, t, t - 20, x, eta=1.0, noise=z, clip_sample=clip)
        return s.step(eps, t, x, noise=z, clip_sample=clip)

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
        out = s.ddim_step(eps, t, t - 20, x, eta=0.0, clip_sample=4.0).prev_sample
        assert torch.allclose(out, abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps_clipped, atol=1e-5)
