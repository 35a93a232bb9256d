"""Continuous-time diffusion with a learned noise schedule (Kingma et al. 2021, "Variational
Diffusion Models", VDM).

Time t runs over [0, 1]. The schedule is gamma(t) = -log SNR(t), increasing from gamma_0 = gamma(0)
(almost clean) to gamma_1 = gamma(1) (almost pure noise), and the forward process is variance
preserving (VDM eq. 3):

    q(z_t | x) = N(alpha_t x, sigma_t^2 I),   alpha_t^2 = sigmoid(-gamma(t)),   sigma_t^2 = sigmoid(gamma(t))

The bound on -log p(x), in nats per point, with T -> infinity steps (VDM eqs. 11, 17):

    L_prior     = KL(q(z_1 | x) || N(0, I))
    L_diffusion = 1/2 E_{t ~ U(0, 1), eps ~ N(0, I)} [gamma'(t) ||eps - eps_hat(z_t, t)||^2]
    L_recon     = E_{q(z_0 | x)} [-log p(x | z_0)],   p(x | z_0) = N(z_0 / alpha_0, sigma_0^2 / alpha_0^2 I)

The decoder is the Gaussian that inverts z_0 = alpha_0 x + sigma_0 eps, the continuous-data
counterpart of VDM's discrete one. Between its end points the schedule changes the bound only
through the denoiser it trains: in x-space, L_diffusion = -1/2 int_{gamma_0}^{gamma_1} E ||x - x_hat||^2
d(e^{-gamma}) (VDM eq. 19), so two schedules with the same ends and the same denoiser give the same
bound. Only the end points, or a schedule that differs across the input, can change it.

A schedule may also differ per coordinate and per point (gamma `(B, D)`; MuLAN's, in `mulan.py`):
the forward process, the bound, the sampler and the ODE then act coordinate by coordinate, and the
diffusion term weighs each coordinate's error by its own gamma'.

The process knows nothing of the network: the bound takes `noise_model(z_t, t) -> eps_hat`, shapes
`(B, D)` and `(B,)` -> `(B, D)`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

NoiseModel = Callable[[Tensor, Tensor], Tensor]  # (z_t (B, D), t (B,)) -> eps_hat (B, D)

HIDDEN = 1024  # VDM's monotone network: 1 -> 1024 sigmoid units -> 1


class LogSNRSchedule(nn.Module):
    """gamma(t) = -log SNR(t) on t in [0, 1], increasing from `gamma_min` at t = 0 to `gamma_max`.

    Fixed (`learned=False`): linear in t, VDM's fixed schedule. Learned: VDM's monotone network
    gamma~(t) = l1(t) + l3(sigmoid(l2(l1(t)))), rescaled so that gamma(0) and gamma(1) are the end
    points, which are themselves learned scalars when `learn_ends` (else fixed).
    """

    def __init__(self, gamma_min: float = -10.0, gamma_max: float = 10.0, learned: bool = False,
                 learn_ends: bool = False, hidden: int = HIDDEN):
        super().__init__()
        if not gamma_min < gamma_max:
            raise ValueError(f"gamma_min must be below gamma_max (got {gamma_min}, {gamma_max})")
        # gamma(0), gamma(1): a parameter either way, trained only when `learn_ends`
        self.ends = nn.Parameter(torch.tensor([gamma_min, gamma_max]), requires_grad=learn_ends)
        self.learned = learned
        if learned:
            # VDM's `DenseMonotone` layers: their weights are used as |w| (`_raw`), so gamma~ increases in t
            self.l1 = nn.Linear(1, 1)
            self.l2 = nn.Linear(1, hidden)
            self.l3 = nn.Linear(hidden, 1, bias=False)

    def shape(self, t: Tensor) -> Tensor:
        """The schedule's shape in [0, 1]: `t` itself when fixed, the monotone network's gamma~(t)
        rescaled to 0 at t = 0 and 1 at t = 1 when learned. `t` `(B,)` -> `(B,)`."""
        return self.shape_with_derivative(t)[0]

    def shape_with_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """The shape and its derivative in t, each `(B,)`, in closed form (no second backward pass
        when the bound trains through the slope)."""
        if not self.learned:
            return t, torch.ones_like(t)
        raw, slope = self._raw(torch.cat([t, t.new_tensor([0.0, 1.0])]))
        value, (g0, g1) = raw[:-2], raw[-2:]
        return (value - g0) / (g1 - g0), slope[:-2] / (g1 - g0)

    def _raw(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """gamma~(t) = h + w3 . sigmoid(w2 h + b2), h = w1 t + b1 (all weights |w|), and its derivative
        w1 (1 + sum_k w3_k w2_k sigma'(u_k)), each `(B,)`."""
        w1, w2, w3 = self.l1.weight.abs()[0, 0], self.l2.weight.abs()[:, 0], self.l3.weight.abs()[0]
        h = w1 * t.to(w1.dtype) + self.l1.bias[0]
        s = torch.sigmoid(h[:, None] * w2 + self.l2.bias)
        raw = h + s @ w3
        slope = w1 * (1 + (s * (1 - s)) @ (w2 * w3))
        return raw.to(t.dtype), slope.to(t.dtype)

    def forward(self, t: Tensor) -> Tensor:
        """gamma(t) `(B,)` for times `(B,)` in [0, 1]."""
        g0, g1 = self.ends.to(t.dtype)
        return g0 + (g1 - g0) * self.shape(t)

    def with_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """gamma(t) and gamma'(t), each `(B,)`, the derivative in closed form (in the graph, so the
        bound trains the schedule through it)."""
        g0, g1 = self.ends.to(t.dtype)
        shape, slope = self.shape_with_derivative(t)
        return g0 + (g1 - g0) * shape, (g1 - g0) * slope


class Schedule(Protocol):
    """What the bound, the sampler and the ODE take: a `LogSNRSchedule`, or a per-coordinate schedule
    (`mulan.ConditionedSchedule`) whose gamma is `(B, D)`."""

    @property
    def ends(self) -> Tensor:  # gamma(0), gamma(1): `(2,)`, or `(2, D)` per coordinate
        ...

    def __call__(self, t: Tensor) -> Tensor: ...

    def with_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]: ...


def alpha_sigma(gamma: Tensor) -> tuple[Tensor, Tensor]:
    """alpha_t and sigma_t from gamma, elementwise (`(B,)`, or `(B, D)` for a per-coordinate
    schedule): alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma)."""
    return torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()


def per_coordinate(value: Tensor, x: Tensor) -> Tensor:
    """A schedule's value at the points' times for each coordinate of points `x` `(B, D)`: `(B,)`
    from a scalar schedule, `(B, D)` from a per-coordinate one -> `(B, D)`."""
    value = value.to(x.dtype)
    return (value[:, None] if value.dim() == 1 else value).expand(x.shape)


def end_values(end: Tensor, x: Tensor) -> Tensor:
    """An end point gamma_0 or gamma_1 (a scalar, or `(D,)` per coordinate) for points `(B, D)`."""
    return end.to(x.dtype).expand(x.shape)


def abar_beta(schedule: Schedule, t: Tensor) -> tuple[Tensor, Tensor]:
    """(alpha_t^2, beta(t)) `(B,)` (`(B, D)` per coordinate) at times `(B,)`: the variance-preserving SDE's rate
    beta = -d log alpha^2 / dt = gamma'(t) sigma_t^2, for the probability-flow ODE. Detached."""
    with torch.enable_grad():
        gamma, slope = schedule.with_derivative(t)
    return torch.sigmoid(-gamma).detach(), (slope * torch.sigmoid(gamma)).detach()


def prior_term(schedule: Schedule, x: Tensor) -> Tensor:
    """KL(q(z_1 | x) || N(0, I)) `(B,)` for points `(B, D)`, coordinate by coordinate."""
    gamma = end_values(schedule.ends[1], x)
    alpha2, sigma2 = torch.sigmoid(-gamma), torch.sigmoid(gamma)
    return 0.5 * (alpha2 * x ** 2 + sigma2 - 1 - torch.log(sigma2)).sum(-1)


def reconstruction_term(schedule: Schedule, x: Tensor, noise: Tensor) -> Tensor:
    """-log p(x | z_0) `(B,)` at z_0 = alpha_0 x + sigma_0 noise, with the Gaussian decoder
    N(z_0 / alpha_0, sigma_0^2 / alpha_0^2) in each coordinate."""
    alpha, sigma = alpha_sigma(end_values(schedule.ends[0], x))
    z0 = alpha * x + sigma * noise
    var = (sigma / alpha) ** 2
    return 0.5 * (torch.log(2 * math.pi * var) + (x - z0 / alpha) ** 2 / var).sum(-1)


def diffusion_term(schedule: Schedule, noise_model: NoiseModel, x: Tensor, t: Tensor,
                   noise: Tensor) -> tuple[Tensor, Tensor]:
    """1/2 (eps - eps_hat(z_t, t))^T diag(gamma'(t)) (eps - eps_hat) `(B,)`: the continuous-time
    diffusion loss (VDM eq. 17; MuLAN's for a per-coordinate schedule), one draw of t `(B,)` and eps
    `(B, D)` per point, an unbiased estimate of L_diffusion; and the denoiser's unweighted squared
    error per coordinate `(B,)` (the discrete models' training MSE, for comparison)."""
    gamma, slope = schedule.with_derivative(t)
    alpha, sigma = alpha_sigma(per_coordinate(gamma, x))
    z = alpha * x + sigma * noise
    error = (noise - noise_model(z, t)) ** 2
    return 0.5 * (per_coordinate(slope, x) * error).sum(-1), error.mean(-1)


def continuous_bound(schedule: Schedule, noise_model: NoiseModel, x: Tensor,
                     generator: torch.Generator | None = None, antithetic: bool = True,
                     copies: int = 1) -> dict[str, Tensor]:
    """The bound's terms per point, each `(B,)` in nats, their sum `nll` (an unbiased estimate
    of the bound on -log p(x) for each of the points `(B, D)`), and `mse` (`diffusion_term`'s). With
    `antithetic`, the times are VDM's low-discrepancy draw, t_i = (u + i / B) mod 1 for one
    u ~ U(0, 1): every time is still uniform, and the batch covers [0, 1] evenly.

    With `copies` = K > 1, the schedule and the noise model hold K B rows, the points under each of K
    latents one after the other (a categorical latent's every category, `mulan.categorical_latent_bound`),
    and the terms are `(K B,)` in that order. Each point's t and eps are drawn once and shared by its
    copies (common random numbers): each copy's estimate is the one-copy estimate, its times spread
    over [0, 1], and the copies differ only by their latent. (One draw over all K B rows would put
    the k-th copy's times in [k / K, (k + 1) / K) shifted by u: still unbiased, but a latent that
    takes every point would be scored on a 1/K slice of the times per call.)"""
    n = len(x)
    u = torch.rand((1 if antithetic else n,), generator=generator, dtype=x.dtype, device=x.device)
    t = torch.remainder(u + torch.arange(n, dtype=x.dtype, device=x.device) / n, 1.0) if antithetic else u
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if copies > 1:
        x, t, noise = x.repeat(copies, 1), t.repeat(copies), noise.repeat(copies, 1)
    diffusion, mse = diffusion_term(schedule, noise_model, x, t, noise)
    terms = {"prior": prior_term(schedule, x), "diffusion": diffusion,
             "reconstruction": reconstruction_term(schedule, x, noise)}
    terms["nll"] = terms["prior"] + terms["diffusion"] + terms["reconstruction"]
    terms["mse"] = mse
    return terms


def reverse_step(schedule: Schedule, noise_model: NoiseModel, z: Tensor, t: Tensor, s: Tensor,
                 noise: Tensor, clip_sample: float = 0.0) -> Tensor:
    """z_s ~ p(z_s | z_t) `(B, D)` for times s < t `(B,)`: q(z_s | z_t, x) at the predicted x (VDM
    appendix A.4), coordinate by coordinate, with c = 1 - SNR(t) / SNR(s) = -expm1(gamma_s - gamma_t)
    for precision:

        z_s = alpha_s / alpha_t (z_t - c sigma_t eps_hat(z_t, t)) + sigma_s sqrt(c) noise

    With `clip_sample` > 0 the predicted x = (z_t - sigma_t eps_hat) / alpha_t is clipped to
    [-clip_sample, clip_sample] first (as the discrete samplers' clip_sample), and the same mean is
    written in it: alpha_s ((1 - c) z_t / alpha_t + c x).
    """
    gamma_t, gamma_s = per_coordinate(schedule(t), z), per_coordinate(schedule(s), z)
    alpha_t, sigma_t = alpha_sigma(gamma_t)
    alpha_s, sigma_s = alpha_sigma(gamma_s)
    c = -torch.expm1(gamma_s - gamma_t)
    if clip_sample > 0:
        x = ((z - sigma_t * noise_model(z, t)) / alpha_t).clamp(-clip_sample, clip_sample)
        return alpha_s * ((1 - c) * z / alpha_t + c * x) + sigma_s * c.sqrt() * noise
    return alpha_s / alpha_t * (z - c * sigma_t * noise_model(z, t)) + sigma_s * c.sqrt() * noise


def sample(schedule: Schedule, noise_model: NoiseModel, num_samples: int, steps: int,
           generator: torch.Generator | None = None, dims: int = 2, dtype: torch.dtype = torch.float32,
           device: torch.device | str = "cpu", callback: Callable[[int, Tensor], None] | None = None,
           clip_sample: float = 0.0) -> Tensor:
    """`(num_samples, dims)` points by ancestral sampling with `steps` equal steps from t = 1 to 0:
    z_1 ~ N(0, I), `steps` reverse steps, then the decoder's mean x = z_0 / alpha_0. Any number of
    steps samples the same model; more steps follow its continuous-time limit more closely.
    `callback(i, z)` sees z_1 (i = `steps`) and each step's z at time (i - 1) / steps (i = steps..1);
    `clip_sample` clips each step's predicted x (`reverse_step`)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    z = torch.randn((num_samples, dims), generator=generator, dtype=dtype, device=device)
    if callback is not None:
        callback(steps, z)
    with torch.no_grad():
        for i in range(steps, 0, -1):
            t = torch.full((num_samples,), i / steps, dtype=dtype, device=device)
            noise = torch.randn(z.shape, generator=generator, dtype=dtype, device=device)
            z = reverse_step(schedule, noise_model, z, t, t - 1 / steps, noise, clip_sample)
            if callback is not None:
                callback(i - 1, z)
        alpha_0, _ = alpha_sigma(end_values(schedule.ends[0], z))
    return z / alpha_0


def discrete_betas(schedule: LogSNRSchedule, num_timesteps: int) -> Tensor:
    """The betas `(T,)` (float64) of a discrete DDPM on this schedule's log-SNR at T equally spaced
    times: abar_k = sigmoid(-gamma(k / (T - 1))), k = 0..T-1, so its first latent is at gamma_0 and
    its last at gamma_1 (for `NoiseSchedule(T, trained_betas=...)`). As T grows, that DDPM's bound
    steps (Ho et al. eq. 5) tend to L_diffusion (VDM eq. 16); its prior term is this one's; its decoder
    N(x0_hat(z_0), sigma_0^2 I) is not the continuous N(z_0 / alpha_0, sigma_0^2 / alpha_0^2 I)."""
    t = torch.linspace(0, 1, num_timesteps, dtype=torch.float64)
    with torch.no_grad():
        abar = torch.sigmoid(-copy.deepcopy(schedule).double()(t))
    return 1 - abar / torch.cat([abar.new_ones(1), abar[:-1]])


def gaussian_diffusion_term(gamma_0: float, gamma_1: float, scale: float, dims: int = 2) -> float:
    """L_diffusion in expectation for data N(0, scale^2 I) and its optimal denoiser: with SNR e^{-gamma},
    E ||eps - E[eps | z_t]||^2 = dims s^2 e^{-gamma} / (1 + s^2 e^{-gamma}), whose integral over
    gamma from gamma_0 to gamma_1 depends on nothing else (VDM eq. 19's invariance, in closed form)."""
    s2 = scale ** 2
    return 0.5 * dims * (math.log1p(s2 * math.exp(-gamma_0)) - math.log1p(s2 * math.exp(-gamma_1)))
