"""Likelihood of a trained model: the variational bound and the probability-flow ODE.

Both give -log p(x) of held-out points `(N, 2)` in nats per point (model units; `bits_per_dim`
converts, in the data's units). The network and grids are the run's own, read as the sampler
reads them; the process they are measured against is always the standard forward process
q(z_t | x) = N(sqrt(abar_t) x, (1 - abar_t) I).

**The variational bound** (Ho et al. 2020, eq. 5; Nichol & Dhariwal 2021, eq. 4). In code
timesteps t = 0..T-1 (the paper's 1..T), latents z_0..z_{T-1}, data x:

    -log p(x) <= L_prior + sum_{t=1}^{T-1} L_t + L_decoder
    L_prior   = KL(q(z_{T-1} | x) || N(0, I))                       where sampling starts
    L_t       = E_q KL(q(z_{t-1} | z_t, x) || p(z_{t-1} | z_t))     the reverse step as it samples
    L_decoder = E_q -log p(x | z_0)

p(z_{t-1} | z_t) = N(mu(z_t), s_t^2 I) is the sampler's step: mu the posterior mean at the
predicted x_0 (clipped if the sampler clips), s_t^2 the posterior variance beta~_t, times g^2 for a
learned reverse variance; the denoiser sees the noise scale g the adaptation gives at z_t (for the
original mechanism: g looked up at z_t, as it samples). So the bound is valid for every variant.
The decoder: the sampler returns the mean of its last step, a point mass no density can be
measured against; for continuous data gridnoise uses p(x | z_0) = N(mu(z_0), beta_0 I), the
forward process's first variance (Ho et al.'s sigma_t^2 = beta_t choice at the one step where
beta~ is 0). Every term is estimated with one z_t ~ q(z_t | x) per point and timestep, so the
bound is an unbiased Monte Carlo estimate with a per-point spread that gives its standard error.

**The probability-flow ODE** (Song et al. 2021, eq. 13) of a variance-preserving process. The
discrete network is read in continuous time u in [0, T-1]: log abar(u) is linear between the
integer timesteps (so the marginals at integer u are exactly the discrete ones, and beta(u) =
-d log abar / du is constant on each [t, t+1]), and the network is evaluated at the real-valued u
(its sinusoidal time embedding is defined there and agrees at integers). With eps(z, u),

    dz/du = f(z, u) = -1/2 beta(u) (z - eps(z, u) / sqrt(1 - abar(u)))
    log p_0(z(0)) = log N(z(T-1); 0, I) + integral_0^{T-1} div f(z(u), u) du

integrated from the held-out point at u = 0 (noise level sqrt(1 - abar_0), 0.01 for the default
schedule) to T-1, segment by segment with scipy's adaptive Runge-Kutta (`solve_ivp`), and the
divergence exact: two gradient calls in 2-D, no Hutchinson noise.
A continuous-time schedule (`vdm.LogSNRSchedule`) runs the same ODE on [0, 1] in one segment, with
abar = sigmoid(-gamma) and beta = gamma'(t) sigmoid(gamma) (`OdeClock` says which); a per-coordinate
one (`mulan.ConditionedSchedule`) has them per coordinate, f_i = -1/2 beta_i (z_i - eps_i / sigma_i) and
div f = -1/2 sum_i beta_i (1 - d eps_i / d z_i / sigma_i).

**Grids make the field jump.** A grid's g is looked up at floor(u) and is constant on each cell,
so a grid-conditioned network's field jumps across every cell edge (the adaptation's
`field_edges`), and the instantaneous change of variables (Song et al. 2021, eq. 39) holds only
between edges. Across an edge with normal n, probability flux is conserved, p_A (f_A . n) =
p_B (f_B . n) for the sides A (before) and B (after) of a crossing, so the log-density jumps by
log(f_A . n / f_B . n) along the trajectory (and the flow map's Jacobian determinant gains the
factor f_B . n / f_A . n). So

    log p_0(z(0)) = log N(z(T-1); 0, I) + integral div f du + sum_crossings log(f_B . n / f_A . n)

Crossings are found between the solver's accepted steps (linear interpolation to the edge), and
f is evaluated just either side of the edge there. A crossing where the two normal components
differ in sign is not transversal (the flow slides along the edge and is not invertible there):
it is counted, with log |f_B . n / f_A . n|; a strip of data then maps onto the edge, so the ODE's
density is 0 there and `gridnoise evaluate` reports no ODE likelihood. Without the jump term the
original multi-scale grid's ODE "likelihood" on `line` came out below the data's entropy (a
negative KL).
A learned reverse variance changes the sampler, not the ODE, so its model has no ODE likelihood.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.continuous import ConditionalNoiseModel, ContinuousNoise
from gridnoise.diffusion import NoiseSchedule, gaussian_kl, gaussian_nll
from gridnoise.errors import MetricError
from gridnoise.model import input_dtype, predict_noise
from gridnoise.mulan import ConditionedSchedule
from gridnoise.vdm import LogSNRSchedule, Schedule, abar_beta

DIMENSIONS = 2
ODE_TOLERANCE = 1e-5  # rtol = atol of the ODE solver; `ode_nll` also reports the result at half of it
ODE_METHOD = "RK45"
EDGE_OFFSET = 1e-4  # f at a crossing is read this far either side of the edge (model units; cells are ~0.1)


@dataclass
class Likelihood:
    """-log p(x) per held-out point (nats, model units) with what it is made of."""

    nll: np.ndarray  # (N,)
    terms: dict[str, np.ndarray]  # named parts: (N,) or (N, T)

    def mean(self) -> float:
        return float(self.nll.mean())

    def stderr(self) -> float:
        return float(self.nll.std(ddof=1) / math.sqrt(len(self.nll))) if len(self.nll) > 1 else float("nan")


def bits_per_dim(nats: float, scale: float = 1.0, dims: int = DIMENSIONS) -> float:
    """nats per point in model units as bits per dimension in the data's units (x_data = scale x_model
    + shift: the density divides by scale^dims)."""
    return (nats + dims * math.log(scale)) / (dims * math.log(2))


SCHEDULE_KEYS = ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "zero_terminal_snr", "trained_betas")


def float64_schedule(schedule: NoiseSchedule) -> NoiseSchedule:
    """The same schedule (or a scheduler's) with float64 buffers, recomputed from its config rather
    than cast from float32."""
    config: dict[str, Any] = {k: schedule.config[k] for k in SCHEDULE_KEYS}
    return NoiseSchedule(**config, dtype=torch.float64).to(schedule.betas.device)


def prior_kl(schedule: NoiseSchedule, x: Tensor) -> Tensor:
    """KL(q(z_{T-1} | x) || N(0, I)) `(B,)`: what starting from pure noise costs where abar_T > 0."""
    abar = schedule.alphas_cumprod[-1]
    mean = abar.sqrt() * x
    return gaussian_kl(mean, (1 - abar).expand(len(x)), torch.zeros_like(x), torch.ones(len(x), dtype=x.dtype,
                                                                                         device=x.device))


def _noise_prediction(model: nn.Module, adaptation: NoiseAdaptation, z: Tensor, timesteps: Tensor) -> Tensor:
    """The network's eps `(B, 2)` (float64) at z_t `(B, 2)` and integer `timesteps` `(B,)`, seeing
    the noise scale g its adaptation gives there while sampling."""
    z = z.to(input_dtype(model))
    return predict_noise(model, z, timesteps, adaptation.sampling_noise_scale(z, timesteps)).double()


@torch.no_grad()
def variational_bound(model: nn.Module, adaptation: NoiseAdaptation, schedule: NoiseSchedule, x: Tensor,
                      generator: torch.Generator, clip_sample: float = 0.0) -> Likelihood:
    """The variational bound on -log p(x) of held-out points `x` `(N, 2)` (model units), in nats.

    terms: "prior" `(N,)`; "steps" `(N, T)`, column 0 the decoder term and column t >= 1 the
    KL term L_t; "decoder" `(N,)` (= steps[:, 0]).
    """
    s = float64_schedule(schedule)
    x = x.to(s.betas.device, torch.float64)
    n, T = len(x), len(s)
    steps = torch.empty((n, T), dtype=torch.float64, device=x.device)
    for t in range(T):
        timesteps = torch.full((n,), t, dtype=torch.long, device=x.device)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float64)
        z = s.add_noise(x, noise, timesteps)
        eps = _noise_prediction(model, adaptation, z, timesteps)
        x0 = s.predict_start_from_noise(z, timesteps, eps)
        if clip_sample > 0:
            x0 = x0.clamp(-clip_sample, clip_sample)
        mean_p = s.q_posterior_mean(x0, z, timesteps)
        scale = adaptation.reverse_std_scale(z.float(), timesteps)
        if t == 0:  # the decoder, N(mu(z_0), beta_0 I)
            steps[:, 0] = gaussian_nll(x, mean_p, s.betas[0].expand(n))
            continue
        var_q = s.posterior_variance[timesteps]
        var_p = var_q if scale is None else var_q * scale.double() ** 2
        steps[:, t] = gaussian_kl(s.q_posterior_mean(x, z, timesteps), var_q, mean_p, var_p)
    prior = prior_kl(s, x)
    terms = {"prior": prior, "steps": steps, "decoder": steps[:, 0]}
    return Likelihood((prior + steps.sum(1)).cpu().numpy(), {k: v.cpu().numpy() for k, v in terms.items()})


# -- the probability-flow ODE ---------------------------------------------------------------------

def continuous_alphas_cumprod(schedule: NoiseSchedule, u: Tensor, segment: int | None = None) -> tuple[Tensor, Tensor]:
    """(abar(u), beta(u)) at real times `u` in [0, T-1]: log abar linear between integer timesteps,
    beta(u) = -d log abar / du, constant on each segment [t, t+1]. `segment` t says which segment's
    line and constant to use (an ODE step on [t, t+1] evaluates at t+1 too); by default the one
    starting at floor(u) (the last one at T-1)."""
    log_abar = schedule.alphas_cumprod.double().log()
    T = len(log_abar)
    u = u.double().clamp(0, T - 1)
    lower = u.floor().long().clamp(max=T - 2) if segment is None else torch.full_like(u, segment, dtype=torch.long)
    frac = u - lower
    slope = log_abar[lower + 1] - log_abar[lower]
    return (log_abar[lower] + frac * slope).exp(), -slope


# (z (B, 2), u (B,) real time, step (B,) the integer timestep of u's segment) -> eps (B, 2)
NoiseModel = Callable[[Tensor, Tensor, Tensor], Tensor]


def network_noise_model(model: nn.Module, adaptation: NoiseAdaptation) -> NoiseModel:
    """The run's network as a continuous-time noise predictor eps(z, u): the network at real u, and
    a grid's g at the segment's timestep (g is defined at integer timesteps only)."""
    dtype = input_dtype(model)

    def eps(z: Tensor, u: Tensor, step: Tensor) -> Tensor:
        z = z.to(dtype)
        return predict_noise(model, z, u.to(dtype), adaptation.sampling_noise_scale(z, step)).double()
    return eps


@dataclass
class OdeClock:
    """The probability-flow ODE's time: the segments it is integrated over, on each of which
    beta is smooth, and `rates(u (B,), segment)` -> (abar(u), beta(u)), each `(B,)`, in float64."""

    segments: list[tuple[float, float]]
    rates: Callable[[Tensor, int], tuple[Tensor, Tensor]]


def ode_clock(schedule: NoiseSchedule | Schedule) -> OdeClock:
    """A discrete schedule read in continuous time u in [0, T-1] (one segment per step), or a
    continuous-time one (`vdm.LogSNRSchedule`, or a per-coordinate `mulan.ConditionedSchedule`, whose
    rates are `(B, D)`) on [0, 1]; a float64 copy either way."""
    if isinstance(schedule, NoiseSchedule):
        s = float64_schedule(schedule)
        return OdeClock([(float(t), float(t + 1)) for t in range(len(s) - 1)],
                        lambda u, segment: continuous_alphas_cumprod(s, u, segment))
    if isinstance(schedule, LogSNRSchedule):
        continuous: Schedule = copy.deepcopy(schedule).double()
    elif isinstance(schedule, ConditionedSchedule):
        continuous = ConditionedSchedule(schedule.ends.double(), schedule.coefficients.double())
    else:
        raise TypeError(f"no probability-flow ODE for a {type(schedule).__name__}")
    return OdeClock([(0.0, 1.0)], lambda u, _: abar_beta(continuous, u))


def _ode_time(clock: OdeClock, z: Tensor, u: float | Tensor,
              segment: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(times `(B,)`, the segment's index `(B,)`, beta(u) `(B,)`, sigma(u) `(B,)`) for `ode_field`."""
    times = torch.as_tensor(u, dtype=torch.float64, device=z.device).expand(len(z))
    abar, beta = clock.rates(times, segment)
    steps = torch.full((len(z),), segment, dtype=torch.long, device=z.device)
    return times, steps, beta, (1 - abar).sqrt()


def ode_field(noise_model: NoiseModel, clock: OdeClock, z: Tensor, u: float | Tensor,
              segment: int) -> tuple[Tensor, Tensor]:
    """(f(z, u) `(B, 2)`, div f `(B,)`) of the probability-flow ODE on the clock's `segment` at one
    time `u` or one per point `(B,)`, the divergence exact by autograd."""
    times, steps, beta, sigma = _ode_time(clock, z, u, segment)
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        eps = noise_model(z, times, steps)
        # each row depends on its own point only, so the gradient of a column's sum is that column's
        # derivative at every point: two calls give the exact divergence in 2-D
        diagonal = [torch.autograd.grad(eps[:, i].sum(), z, retain_graph=i + 1 < z.shape[1])[0][:, i]
                    for i in range(z.shape[1])]
    if beta.dim() == 2:  # a per-coordinate schedule: div f = -1/2 sum_i beta_i (1 - d eps_i / d z_i / sigma_i)
        jacobian = torch.stack(diagonal, 1).detach()
        f = -0.5 * beta * (z.detach() - eps.detach() / sigma)
        return f, -0.5 * (beta * (1 - jacobian / sigma)).sum(1)
    div_eps = torch.zeros(len(z), dtype=eps.dtype, device=z.device)
    for d in diagonal:
        div_eps = div_eps + d
    f = -0.5 * beta[:, None] * (z.detach() - eps.detach() / sigma[:, None])
    div = -0.5 * beta * (z.shape[1] - div_eps.detach() / sigma)
    return f, div


def ode_velocity(noise_model: NoiseModel, clock: OdeClock, z: Tensor, u: float | Tensor,
                 segment: int) -> Tensor:
    """f(z, u) `(B, 2)` of `ode_field` without its divergence (the field either side of a cell edge)."""
    times, steps, beta, sigma = _ode_time(clock, z, u, segment)
    with torch.no_grad():
        eps = noise_model(z, times, steps)
    if beta.dim() == 2:  # a per-coordinate schedule
        return -0.5 * beta * (z - eps / sigma)
    return -0.5 * beta[:, None] * (z - eps / sigma[:, None])


def ode_log_likelihood(noise_model: NoiseModel, schedule: NoiseSchedule | Schedule, x: Tensor,
                       tolerance: float = ODE_TOLERANCE, prior: Callable[[Tensor], Tensor] | None = None,
                       edges: Sequence[Tensor] = ()) -> Likelihood:
    """-log p_0(x) `(N,)` (nats) of the probability-flow ODE at held-out points `x` `(N, 2)`, taken as
    the process's state at its first time (u = 0; for a continuous-time schedule, z_0 = x).

    `schedule` a discrete one, read on [0, T-1], or a continuous-time `vdm.LogSNRSchedule` on [0, 1]
    (its noise model gets the segment index 0 as its step).
    `prior(z)` `(N,)` is the log-density at the last time (default N(0, I), where sampling starts).
    `edges`: per axis, sorted coordinates `(K,)` of lines where the field jumps (an adaptation's
    `field_edges()`); each crossing adds the density's jump there.
    terms: "prior" (-log prior at the end point), "divergence" (minus the divergence integral),
    "jumps" (minus the sum of the crossings' log-ratios), "crossings" and "nontransversal" (counts
    per point), "end" `(N, 2)` the end points z(T-1), "evaluations" the field evaluations used.
    A field that is not finite somewhere on the way, or a solver that gives up, raises MetricError.
    """
    clock = ode_clock(schedule)
    device = schedule.betas.device if isinstance(schedule, NoiseSchedule) else schedule.ends.device
    z = x.to(device, torch.float64)
    n = len(z)
    integral = torch.zeros(n, dtype=torch.float64)
    jumps, crossings, nontransversal = np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    evaluations = 0

    def rhs(u: float, state: np.ndarray, segment: int) -> np.ndarray:
        nonlocal evaluations
        evaluations += 1
        f, div = ode_field(noise_model, clock, torch.from_numpy(state[:2 * n].reshape(n, 2)).to(z.device), u, segment)
        out = np.concatenate([f.cpu().numpy().ravel(), div.cpu().numpy()])
        # stop here: a non-finite field makes RK45's step size NaN, and the next call's time with it
        if not np.isfinite(out).all():
            raise MetricError(f"the probability-flow field is not finite at u = {u:.4g} (the network predicts "
                              "NaN or infinite noise there), so the ODE has no solution to integrate")
        return out

    state = np.concatenate([z.cpu().numpy().ravel(), integral.numpy()])
    for t, (start, stop) in enumerate(clock.segments):  # beta is smooth on each: no jump inside a solver step
        solution = solve_ivp(rhs, (start, stop), state, method=ODE_METHOD, rtol=tolerance, atol=tolerance, args=(t,))
        if not solution.success:
            raise MetricError(f"the ODE solver failed on [{start:g}, {stop:g}]: {solution.message}")
        state = solution.y[:, -1]
        for axis, lines in enumerate(edges):
            found = edge_crossings(solution.t, solution.y[:2 * n].T.reshape(-1, n, 2), lines.cpu().numpy(), axis)
            if found is None:
                continue
            points, times, before, after = found
            when = torch.from_numpy(times)
            f_before = ode_velocity(noise_model, clock, torch.from_numpy(before).to(z.device), when, t)
            f_after = ode_velocity(noise_model, clock, torch.from_numpy(after).to(z.device), when, t)
            evaluations += 2
            ratio = (f_after[:, axis] / f_before[:, axis]).cpu().numpy()
            slides = ~(ratio > 0)  # the normal components disagree in sign (or one is 0: a tangent)
            usable = np.isfinite(ratio) & (ratio != 0)  # else no jump is defined; the point is flagged
            np.add.at(jumps, points, np.log(np.abs(np.where(usable, ratio, 1.0))))
            np.add.at(crossings, points, 1)
            np.add.at(nontransversal, points, slides.astype(np.int64))
    end = torch.from_numpy(state[:2 * n].reshape(n, 2))
    divergence = state[2 * n:]
    log_prior = (prior(end) if prior is not None else
                 -0.5 * (end**2).sum(1) - math.log(2 * math.pi) * end.shape[1] / 2).numpy()
    nll = -(log_prior + divergence + jumps)
    return Likelihood(nll, {"prior": -log_prior, "divergence": -divergence, "jumps": -jumps, "crossings": crossings,
                            "nontransversal": nontransversal, "end": end.numpy(),
                            "evaluations": np.array(evaluations)})


def edge_crossings(times: np.ndarray, paths: np.ndarray, lines: np.ndarray,
                   axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Where trajectories cross the lines {z[axis] = c for c in `lines`} between solver steps.

    `times` `(K,)` and `paths` `(K, N, 2)` are the accepted steps. Returns (point index `(C,)`,
    crossing time `(C,)`, the crossing point just before the line `(C, 2)` and just after it), each
    crossing located by linear interpolation within its step; None when there is none. A trajectory
    that crosses a line and comes back within one step is missed: its two jumps nearly cancel.
    """
    if not len(lines):
        return None
    side = np.searchsorted(lines, paths[..., axis], side="right")  # (K, N): lines at or below (the cell lookup's floor)
    steps, points = np.nonzero(side[1:] != side[:-1])
    if not len(steps):
        return None
    records = []
    for k, i in zip(steps, points):
        start, stop = paths[k, i], paths[k + 1, i]
        lo, hi = sorted((side[k, i], side[k + 1, i]))
        sign = 1.0 if side[k + 1, i] > side[k, i] else -1.0  # the way it crosses
        for c in lines[lo:hi]:
            frac = (c - start[axis]) / (stop[axis] - start[axis])
            where = start + frac * (stop - start)
            records.append((i, times[k] + frac * (times[k + 1] - times[k]), where[1 - axis], c, sign))
    index, when, other, line, signs = (np.array(col) for col in zip(*records))

    def at(offset: np.ndarray) -> np.ndarray:
        pts = np.empty((len(index), 2))
        pts[:, axis], pts[:, 1 - axis] = line + offset, other
        return pts
    return index, when, at(-signs * EDGE_OFFSET), at(signs * EDGE_OFFSET)


# -- continuous-time models (`gridnoise.continuous`) -------------------------------------------------

BOUND_DRAWS = 4  # draws of (t, noise) per held-out point in `continuous_bound_likelihood`
BOUND_BATCH = 2000  # points per pass


@torch.no_grad()
def continuous_bound_likelihood(adaptation: ContinuousNoise, noise_model: ConditionalNoiseModel, x: Tensor,
                                generator: torch.Generator, draws: int = BOUND_DRAWS) -> Likelihood:
    """A continuous-time model's bound on -log p(x) `(N,)` (nats) at points `x` `(N, D)` (float64), each
    point's the mean of `draws` independent estimates (so its spread over points, the standard error's,
    includes theirs). terms: "prior", "decoder" (the reconstruction term), "diffusion" and, for a
    latent model, "latent_kl", each `(N,)`."""
    x = x.double()
    parts: dict[str, list[Tensor]] = {}
    for start in range(0, len(x), BOUND_BATCH):
        batch = x[start:start + BOUND_BATCH]
        total: dict[str, Tensor] = {}
        for _ in range(draws):
            for name, value in adaptation.bound(noise_model, batch, generator).items():
                total[name] = total.get(name, 0) + value / draws
        for name, value in total.items():
            parts.setdefault(name, []).append(value)
    terms = {name: torch.cat(values).cpu().numpy() for name, values in parts.items()}
    terms["decoder"] = terms.pop("reconstruction")
    terms.pop("mse")
    return Likelihood(terms.pop("nll"), terms)


def _conditioned(noise_model: ConditionalNoiseModel, condition: Tensor | None) -> NoiseModel:
    """`noise_model` with its condition fixed, as `ode_log_likelihood` calls a noise model."""
    def eps(z: Tensor, u: Tensor, step: Tensor) -> Tensor:
        return noise_model(z, u, None if condition is None else condition.to(z.dtype))
    return eps


def continuous_ode_likelihood(adaptation: ContinuousNoise, noise_model: ConditionalNoiseModel, x: Tensor,
                              tolerance: float = ODE_TOLERANCE, generator: torch.Generator | None = None) -> Likelihood:
    """A continuous-time model's probability-flow ODE -log p(x) `(N,)` (nats) at points `x` `(N, D)`:
    log p(x) = log sum_k w_k p(x | latent_k) over its K `ode_latents`, every (point, latent) pair one
    row of a single solve (`ode_log_likelihood` of the K N points repeated, each under the schedule and
    condition its latent gives): one solver pass, not K. terms: the solve's field "evaluations",
    "latents" (K), and zero "crossings"/"nontransversal" (the field has no edges)."""
    x = x.double()
    pairs = adaptation.ode_latents(x, generator)
    k, n = len(pairs), len(x)
    latents = [latent for latent, _ in pairs]
    with torch.no_grad():  # the ODE differentiates the network in z only
        schedule, condition = adaptation.given(None if latents[0] is None else torch.cat(latents))
    ode = ode_log_likelihood(_conditioned(noise_model, condition), schedule, x.repeat(k, 1), tolerance)
    log_weight = torch.stack([weight.to(x) for _, weight in pairs])  # (K, N)
    nll = -torch.logsumexp(log_weight - torch.from_numpy(ode.nll).to(x).view(k, n), 0).cpu().numpy()
    zeros = np.zeros(n, dtype=np.int64)
    return Likelihood(nll, {"crossings": zeros, "nontransversal": zeros, "evaluations": ode.terms["evaluations"],
                            "latents": np.array(k)})
