import math

import numpy as np
import pytest
import torch

from gridnoise.diffusion import NoiseSchedule, gaussian_kl, make_betas, rescale_zero_terminal_snr
from gridnoise.schedulers import DDPMScheduler


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
    # abar_T is about 0.36 with T = 100 and the linear schedule.
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


def test_gaussian_kl_against_torch():
    q = torch.distributions.Normal(torch.tensor([[0.3, -1.0]]), 0.5)
    p = torch.distributions.Normal(torch.tensor([[1.0, 0.2]]), 0.9)
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(gaussian_kl(q.mean, torch.tensor([0.25]), p.mean, torch.tensor([0.81])), expected)


def test_trained_betas_are_taken_as_given():
    betas = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    s = NoiseSchedule(3, trained_betas=betas, dtype=torch.float64)
    assert torch.equal(s.betas, betas) and torch.allclose(s.alphas_cumprod, torch.cumprod(1 - betas, 0))
    with pytest.raises(ValueError, match="3 values for 4 timesteps"):
        NoiseSchedule(4, trained_betas=betas)
