"""Input-adaptive multivariate noise as a valid model (Sahoo et al. 2024, "Diffusion Models With
Learned Adaptive Noise", MuLAN), on the continuous-time process of `vdm.py`.

An auxiliary latent z, with an encoder q(z | x) and a prior p(z) in the generative model, sets a
per-coordinate schedule gamma(t, z) (`PolynomialSchedule.conditioned`) and conditions the denoiser.
The bound (MuLAN eq. 5):

    -log p(x) <= E_{q(z | x)} [L(x | z)] + KL(q(z | x) || p(z))

with L(x | z) VDM's bound (`vdm.continuous_bound`) under gamma(t, z). The latent is either continuous
(`gaussian_latent_bound`) or a category such as a grid cell (`categorical_latent_bound`): the
original study's idea, a cell that decides the noise, made a valid model. For independent
coordinates the continuous-time invariance holds coordinate by coordinate, so what such a schedule
can change is the ends, or what the coordinates share.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class PolynomialSchedule(nn.Module):
    """MuLAN's multivariate schedule (Sahoo et al. 2024): in each coordinate i,

        gamma_i(t) = gamma_min + (gamma_max - gamma_min) p_i(t) / p_i(1),
        p_i(t) = int_0^t (a_i s^2 + b_i s + c_i)^2 ds + EPS t,

    increasing in t whatever the coefficients (a, b, c), which an input sets: `conditioned(coefficients
    (B, D, 3))` is the schedule of a batch, each point's coordinates with their own shape between the
    shared ends (learned scalars when `learn_ends`, else fixed). Coefficients (0, 0, 1) give the
    linear schedule, VDM's fixed one."""

    EPS = 1e-6  # keeps p strictly increasing where (a s^2 + b s + c) vanishes
    LINEAR = (0.0, 0.0, 1.0)  # the coefficients (a, b, c) of the linear schedule

    def __init__(self, gamma_min: float = -10.0, gamma_max: float = 10.0, learn_ends: bool = False):
        super().__init__()
        if not gamma_min < gamma_max:
            raise ValueError(f"gamma_min must be below gamma_max (got {gamma_min}, {gamma_max})")
        self.ends = nn.Parameter(torch.tensor([gamma_min, gamma_max]), requires_grad=learn_ends)

    def conditioned(self, coefficients: Tensor) -> ConditionedSchedule:
        return ConditionedSchedule(self.ends, coefficients)


class ConditionedSchedule:
    """A `PolynomialSchedule` with one set of coefficients `(B, D, 3)` per point: gamma(t) `(B, D)`."""

    def __init__(self, ends: Tensor, coefficients: Tensor):
        self.ends, self.coefficients = ends, coefficients

    def _p(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """p(t) and p'(t), each `(B, D)`, for times `(B,)`."""
        a, b, c = self.coefficients.to(t.dtype).unbind(-1)
        t = t[:, None]
        p = (a * a * t ** 5 / 5 + a * b * t ** 4 / 2 + (b * b + 2 * a * c) * t ** 3 / 3 + b * c * t ** 2 + c * c * t
             + PolynomialSchedule.EPS * t)
        return p, (a * t * t + b * t + c) ** 2 + PolynomialSchedule.EPS

    def __call__(self, t: Tensor) -> Tensor:
        return self.with_derivative(t)[0]

    def with_derivative(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """gamma(t) and gamma'(t), each `(B, D)`, in closed form."""
        g0, g1 = self.ends.to(t.dtype)
        p, slope = self._p(t)
        p1, _ = self._p(torch.ones_like(t))
        return g0 + (g1 - g0) * p / p1, (g1 - g0) * slope / p1


# (x (B, D), z (B, ...) or categories (K B,)) -> the bound's terms of each point given its z, each (B,), or of
# every point under each category, each (K B,) category by category (`vdm.continuous_bound`'s `copies`)
BoundGiven = Callable[[Tensor, Tensor], dict[str, Tensor]]


def gaussian_latent_bound(x: Tensor, mean: Tensor, log_std: Tensor, bound_given: BoundGiven,
                          generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The bound of a model with a continuous latent z `(B, K)`: encoder q(z | x) = N(mean, diag(e^{2
    log_std})) `(B, K)` each, prior p(z) = N(0, I). One reparameterised z per point, so the estimate is
    unbiased and trains the encoder; `bound_given(x, z)` is the diffusion bound with the schedule and
    the denoiser conditioned on z (`vdm.continuous_bound`). Terms: those given z, `latent_kl`, and `nll`."""
    z = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    terms = dict(bound_given(x, z))
    terms["latent_kl"] = 0.5 * (mean ** 2 + (2 * log_std).exp() - 1 - 2 * log_std).sum(-1)
    terms["nll"] = terms["nll"] + terms["latent_kl"]
    return terms


def categorical_latent_bound(x: Tensor, logits: Tensor, prior_logits: Tensor,
                             bound_given: BoundGiven) -> dict[str, Tensor]:
    """The bound of a model with a categorical latent c in {0..K-1} (e.g. a grid cell): encoder
    q(c | x) = softmax(`logits` `(B, K)`), prior p(c) = softmax(`prior_logits` `(K,)`), both learned.
    Exact in c: sum_c q(c | x) L(x | c) + KL(q || p), with one `bound_given` call on the B points
    under all K categories (c `(K B,)`, category by category: one network pass of K B rows, faster than
    K of B), each point's draws of t and noise shared by its categories. Terms: each term given c
    averaged under q, `latent_kl`, and `nll`."""
    log_q, log_p = torch.log_softmax(logits, -1), torch.log_softmax(prior_logits, -1)
    q = log_q.exp()
    k, n = logits.shape[-1], len(x)
    given = bound_given(x, torch.arange(k, device=x.device).repeat_interleave(n))
    terms = {name: (q.T * value.view(k, n)).sum(0) for name, value in given.items()}
    terms["latent_kl"] = (q * (log_q - log_p)).sum(-1)
    terms["nll"] = terms["nll"] + terms["latent_kl"]
    return terms
