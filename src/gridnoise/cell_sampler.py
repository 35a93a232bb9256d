"""A consistent sampler for the original grid mechanism: the clean point's cell as a latent variable.

**What training implies.** The original mechanism trains on x_t = sqrt(abar_t) x_0 + g(c, t)
sqrt(1 - abar_t) eps, with c the cell of x_0 and g(c, t) the product of the grids there: given
its cell, a point is diffused by its own Gaussian process with noise variance

    sigma_t^2(c) = g(c, t)^2 (1 - abar_t),        q_c(z_t | x) = N(sqrt(abar_t) x, sigma_t^2 I),

and the network learns eps from (z_t, t, g(c, t)). The standard sampler instead looks g up at the
noisy point and takes the standard posterior step, a process training never saw. Treating c as a
latent variable gives the sampler training implies: draw c from the training data's cell
frequencies pi_c, start from N(0, g(c, T-1)^2 I) (the standard N(0, I) when g = 1), and take at
every step the exact posterior of the per-cell process, feeding the network g(c, t).

**The per-cell posterior.** q_c has Markov transitions z_t = sqrt(alpha_t) z_{t-1} + N(0, s_t^2 I)
with s_t^2 = sigma_t^2 - alpha_t sigma_{t-1}^2, which exist only where s_t^2 >= 0, that is where
the per-cell signal-to-noise ratio abar_t / sigma_t^2 does not rise with t. Bayes' rule for the
Gaussian pair (z_{t-1} | x, z_t | z_{t-1}) then gives (cf. Ho et al. 2020, eqs. 6-7, the case g = 1)

    q_c(z_{t-1} | z_t, x) = N(a_t x + b_t z_t, v_t I)
    a_t = s_t^2 sqrt(abar_{t-1}) / sigma_t^2,   b_t = sqrt(alpha_t) sigma_{t-1}^2 / sigma_t^2,
    v_t = sigma_{t-1}^2 s_t^2 / sigma_t^2,

with sigma_{-1} = 0 and abar_{-1} = 1 at t = 0 (a = 1, b = 0, v = 0: the last step returns x0_hat).
The sampler uses x0_hat = (z_t - sigma_t eps_hat) / sqrt(abar_t). With g = 1, s_t^2 = beta_t and
these are the standard coefficients: all-ones grids give exactly the standard sampler.

**Where a learned grid's SNR rises with t** (it does: grids are trained per timestep with no such
constraint) the per-cell process does not exist. gridnoise then uses the nearest process that
does, raising sigma_t^2 to alpha_t sigma_{t-1}^2 (s_t = 0) and giving the network the matching
g' = sigma_t / sqrt(1 - abar_t) >= g; `adjusted_share` reports how much of the grids that touched.

**Its variational bound** takes q(c | x) = [c = cell of x] (the nearest cell with training data
where x's has none): -log p(x) <= -log pi_c + L_c(x), with
L_c the per-cell process's bound (prior KL to N(0, g'(c, T-1)^2 I), the steps' KL terms, and the
decoder N(x0_hat(z_0), sigma_0^2 I), which is N(., beta_0 I) at g = 1 as in `likelihood`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gridnoise.adaptation import GridAdaptation
from gridnoise.diffusion import NoiseSchedule, gaussian_kl, gaussian_nll
from gridnoise.likelihood import Likelihood, float64_schedule
from gridnoise.model import input_dtype, predict_noise


@dataclass
class CellPrior:
    """The cells of the training data and what the grids say there."""

    cells: Tensor  # (K, G) long: for each of the G grids the flat cell index i * n + j
    probs: Tensor  # (K,) float64: the share of training points in each cell
    noise_scales: Tensor  # (K, T) float64: g(c, t), the product of the grids' values

    def lookup(self, cells: Tensor) -> Tensor:
        """Row `(N,)` of each cell `(N, G)` in `cells`, -1 where the training data has none."""
        match = (cells[:, None, :] == self.cells[None]).all(-1)  # (N, K)
        return torch.where(match.any(1), match.float().argmax(1), torch.full_like(match[:, 0], -1, dtype=torch.long))


def point_cells(adaptation: GridAdaptation, points: Tensor) -> Tensor:
    """The flat cell index of `points` `(N, 2)` in each grid: `(N, G)` long."""
    columns = []
    for grid in adaptation.named_grids().values():
        i, j = grid.cell_index(points.float())
        columns.append(i * grid.size + j)
    return torch.stack(columns, 1)


def nearest_cell(adaptation: GridAdaptation, prior: CellPrior, points: Tensor) -> Tensor:
    """Row `(N,)` of the prior's cell whose centre (in its finest grid) is nearest each point."""
    grids = list(adaptation.named_grids().values())
    k = max(range(len(grids)), key=lambda i: grids[i].size)
    grid = grids[k]
    xmin, xmax, ymin, ymax = grid.extent.double().tolist()
    i, j = prior.cells[:, k] // grid.size, prior.cells[:, k] % grid.size
    centres = torch.stack([xmin + (i.double() + 0.5) * (xmax - xmin) / grid.size,
                           ymin + (j.double() + 0.5) * (ymax - ymin) / grid.size], 1).to(points.device)
    return torch.cdist(points.double(), centres).argmin(1)


@torch.no_grad()
def cell_prior(adaptation: GridAdaptation, points: Tensor) -> CellPrior:
    """The training data's cell frequencies and each cell's g(c, t), from the points `(N, 2)` (model units)."""
    cells, counts = torch.unique(point_cells(adaptation, points), dim=0, return_counts=True)
    T = next(iter(adaptation.grids().values())).shape[0]
    scales = torch.ones((len(cells), T), dtype=torch.float64, device=cells.device)
    for k, grid in enumerate(adaptation.named_grids().values()):
        i, j = cells[:, k] // grid.size, cells[:, k] % grid.size
        scales = scales * grid.values.detach()[:, i, j].T.double()
    return CellPrior(cells, counts.double() / counts.sum(), scales)


def cell_variances(noise_scales: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """(sigma_t^2 `(K, T)`, adjusted `(K, T)` bool): each cell's noise variances g^2 (1 - abar_t),
    raised where needed so the per-cell SNR never rises with t (s_t^2 >= 0)."""
    wanted = noise_scales**2 * (1 - schedule.alphas_cumprod.double())
    sigma2 = wanted.clone()
    for t in range(1, sigma2.shape[1]):
        sigma2[:, t] = torch.maximum(sigma2[:, t], schedule.alphas[t].double() * sigma2[:, t - 1])
    return sigma2, sigma2 > wanted


def posterior_coefficients(sigma2: Tensor, schedule: NoiseSchedule, t: int) -> tuple[Tensor, Tensor, Tensor]:
    """(a_t, b_t, v_t), each `(B,)`, of q_c(z_{t-1} | z_t, x) = N(a x + b z_t, v I) for noise
    variances `sigma2` `(B, T)` (see the module's docstring)."""
    now = sigma2[:, t]
    if t == 0:
        return torch.ones_like(now), torch.zeros_like(now), torch.zeros_like(now)
    alpha, abar_prev = schedule.alphas[t].double(), schedule.alphas_cumprod[t - 1].double()
    before = sigma2[:, t - 1]
    s2 = (now - alpha * before).clamp(min=0)
    return s2 * abar_prev.sqrt() / now, alpha.sqrt() * before / now, before * s2 / now


def _denoise(model: nn.Module, z: Tensor, t: int, sigma2: Tensor, schedule: NoiseSchedule,
             clip_sample: float) -> Tensor:
    """x0_hat `(B, 2)` (float64) from the network given g' = sigma_t / sqrt(1 - abar_t) at z_t."""
    abar = schedule.alphas_cumprod[t].double()
    g = (sigma2[:, t] / (1 - abar)).sqrt()
    dtype = input_dtype(model)
    timesteps = torch.full((len(z),), t, dtype=torch.long, device=z.device)
    eps = predict_noise(model, z.to(dtype), timesteps, g.to(dtype)).double()
    x0 = (z.double() - sigma2[:, t].sqrt()[:, None] * eps) / abar.sqrt()
    return x0.clamp(-clip_sample, clip_sample) if clip_sample > 0 else x0


@torch.no_grad()
def sample_cells(model: nn.Module, prior: CellPrior, schedule: NoiseSchedule, num_samples: int,
                 generator: torch.Generator, cell_generator: torch.Generator | None = None, clip_sample: float = 0.0,
                 noise: Tensor | None = None, callback=None) -> Tensor:
    """Draw `(num_samples, 2)` points: cells c ~ pi (from `cell_generator`, default `generator`),
    z_{T-1} ~ N(0, g'(c, T-1)^2 I) (`noise` scaled, or drawn), then the per-cell posterior steps.

    `generator` gives the starting noise and one draw per step (t = 0 included), in the standard
    sampler's order, so all-ones grids reproduce its samples.
    """
    s = float64_schedule(schedule)
    device = s.betas.device
    rows = torch.multinomial(prior.probs.float(), num_samples, replacement=True,
                             generator=cell_generator or generator).to(device)
    sigma2, _ = cell_variances(prior.noise_scales.to(device), s)
    sigma2 = sigma2[rows]
    T = len(s)
    start = torch.randn((num_samples, 2), generator=generator, device=device) if noise is None else noise.to(device)
    z = start.double() * (sigma2[:, -1] / (1 - s.alphas_cumprod[-1])).sqrt()[:, None]
    dtype = input_dtype(model)
    if callback is not None:
        callback(T, z.to(dtype))
    for t in range(T - 1, -1, -1):
        x0 = _denoise(model, z, t, sigma2, s, clip_sample)
        a, b, v = posterior_coefficients(sigma2, s, t)
        step_noise = torch.randn((num_samples, 2), generator=generator, device=device, dtype=dtype)
        z = a[:, None] * x0 + b[:, None] * z + v.sqrt()[:, None] * step_noise.double()
        if callback is not None:
            callback(t, z.to(dtype))
    return z.to(dtype)


@torch.no_grad()
def cell_variational_bound(model: nn.Module, adaptation: GridAdaptation, prior: CellPrior, schedule: NoiseSchedule,
                           x: Tensor, generator: torch.Generator, clip_sample: float = 0.0) -> Likelihood:
    """-log pi_c + the per-cell process's variational bound at held-out points `x` `(N, 2)` (model
    units, nats), c the cell of x, or where the training data had no point in it the nearest cell
    that had (any q(c | x) gives a bound; this one keeps it finite). terms: "cell" (-log pi_c),
    "prior", "steps" `(N, T)` (column 0 the decoder), "decoder", "adjusted" (the share of c's
    timesteps whose noise was raised), "neighbour" (1 where c is a neighbouring cell)."""
    s = float64_schedule(schedule)
    x = x.to(s.betas.device, torch.float64)
    rows = prior.lookup(point_cells(adaptation, x))
    known = rows >= 0
    safe = torch.where(known, rows, nearest_cell(adaptation, prior, x))
    all_sigma2, adjusted = cell_variances(prior.noise_scales.to(x.device), s)
    sigma2 = all_sigma2[safe]
    n, T = len(x), len(s)
    steps = torch.empty((n, T), dtype=torch.float64, device=x.device)
    for t in range(T):
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float64)
        z = s.alphas_cumprod[t].sqrt() * x + sigma2[:, t].sqrt()[:, None] * noise
        x0 = _denoise(model, z, t, sigma2, s, clip_sample)
        a, b, v = posterior_coefficients(sigma2, s, t)
        if t == 0:
            steps[:, 0] = gaussian_nll(x, x0, sigma2[:, 0])
        else:  # equal variances; where the noise was raised to s_t = 0 both steps are the same point mass
            kl = gaussian_kl(a[:, None] * x + b[:, None] * z, v.clamp(min=1e-300), a[:, None] * x0 + b[:, None] * z,
                             v.clamp(min=1e-300))
            steps[:, t] = torch.where(v > 0, kl, torch.zeros_like(kl))
    start_var = sigma2[:, -1] / (1 - s.alphas_cumprod[-1])
    prior_term = gaussian_kl(s.alphas_cumprod[-1].sqrt() * x, sigma2[:, -1], torch.zeros_like(x), start_var)
    cell = -prior.probs.to(x.device)[safe].log()
    total = cell + prior_term + steps.sum(1)
    terms = {"cell": cell, "prior": prior_term, "steps": steps, "decoder": steps[:, 0],
             "adjusted": adjusted[safe].double().mean(1), "neighbour": (~known).double()}
    return Likelihood(total.cpu().numpy(), {k: v.cpu().numpy() for k, v in terms.items()})
