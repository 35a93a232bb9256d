"""Conformance checks for adaptations: what every built-in adaptation passes, in one function a
plug-in author runs (e.g. in a test: `check_adaptation(MyAdaptation)`).

The checks, on a small instance (T = 8 timesteps, a 3x3 and a 4x4 grid by default):

1. **All-ones grids are plain DDPM.** A fresh adaptation (grids at 1) noises a batch exactly as
   `add_noise` does, gives the denoiser g = 1 (or nothing), leaves the reverse step's noise alone,
   adds no penalty, and samples exactly what plain DDPM samples with the same network and noise.
2. **`state_dict` round trip.** Random grids saved and loaded into a fresh instance behave the same.
3. **The same lookup in training and sampling**, where the class says so (`same_lookup`): the g
   the denoiser sees for (x_t, t) in training is the g it sees for the same (x_t, t) in sampling.
4. **The sampler-support attribute is honoured.** Every sampler in `supported_samplers` draws
   finite samples; every other one is refused with a `SamplerError`.
5. **Shapes.** `grids()` holds `(T, n, n)` tensors; `penalty()` and any auxiliary loss are finite scalars.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gridnoise.adaptation import NoiseAdaptation, OriginalGridAdaptation
from gridnoise.config import AdaptationConfig, DiffusionConfig, SamplerConfig
from gridnoise.diffusion import NoiseSchedule
from gridnoise.errors import SamplerError
from gridnoise.model import MLPDenoiser
from gridnoise.sampling import sample
from gridnoise.schedulers import SCHEDULERS, make_scheduler

T = 8  # timesteps of the instance under test
BATCH = 64
CHECKED_SAMPLERS = (SamplerConfig("ddpm"), SamplerConfig("ddim", steps=T // 2))


class _IgnoresNoiseScale(nn.Module):
    """A denoiser that takes g and ignores it, so any two adaptations can share one network."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.network = MLPDenoiser()

    def forward(self, x: Tensor, timesteps: Tensor, noise_scale: Tensor | None = None) -> Tensor:
        return self.network(x, timesteps)


def _randomised(adaptation: NoiseAdaptation, seed: int = 0) -> NoiseAdaptation:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adaptation.parameters():
            p.copy_(0.5 + torch.rand(p.shape, generator=gen))
    return adaptation


def _same(a: Tensor | None, b: Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def check_adaptation(cls: type[NoiseAdaptation], config: AdaptationConfig | None = None) -> None:
    """Raise AssertionError listing every conformance check `cls` fails (see the module docstring).

    `config` gives the grids to build it with (default: a 3x3 `coarse` and a 4x4 `fine` grid over
    [-2, 2]^2); its `kind` is not used.
    """
    failures: list[str] = []

    def check(ok: bool, message: str) -> None:
        if not ok:
            failures.append(message)

    if not (isinstance(cls, type) and issubclass(cls, NoiseAdaptation)):
        raise AssertionError(f"{cls!r} is not a subclass of gridnoise.adaptation.NoiseAdaptation")
    config = config or AdaptationConfig(grids={"coarse": 3, "fine": 4}, extent=[-2.0, 2.0, -2.0, 2.0])
    name = cls.__name__

    def build() -> NoiseAdaptation:
        return cls.from_config(config, T)

    supported = tuple(cls.supported_samplers)
    known = set(SCHEDULERS) | ({"cell"} if issubclass(cls, OriginalGridAdaptation) else set())
    check(bool(supported) and set(supported) <= known,
          f"supported_samplers must be a non-empty subset of {sorted(known)} (got {supported})")
    schedule = NoiseSchedule(T)
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(BATCH, 2, generator=gen) * 2, torch.randn(BATCH, 2, generator=gen)
    t = torch.randint(0, T, (BATCH,), generator=gen)

    # 1. all-ones grids are plain DDPM
    ones = build()
    check(all(torch.equal(p, torch.ones_like(p)) for p in ones.parameters()), "a fresh instance's grids are not all 1")
    with torch.no_grad():
        x_t, g = ones.training_inputs(schedule, x0, eps, t)
        check(torch.equal(x_t, schedule.add_noise(x0, eps, t)), "all-ones grids must noise exactly as add_noise does")
        check((g is None) != cls.conditions_model,
              f"training_inputs must give the denoiser g exactly when conditions_model is {cls.conditions_model}")
        check(g is None or torch.equal(g, torch.ones(BATCH)), "all-ones grids must give g = 1 in training")
        g_sample = ones.sampling_noise_scale(x_t, t)
        check((g_sample is None) != cls.conditions_model, "sampling_noise_scale must match conditions_model")
        check(g_sample is None or torch.equal(g_sample, torch.ones(BATCH)),
              "all-ones grids must give g = 1 in sampling")
        scale = ones.reverse_std_scale(x_t, t)
        check(scale is None or torch.equal(scale, torch.ones(BATCH)),
              "all-ones grids must leave the reverse noise alone")
        check(float(ones.penalty()) == 0.0, "all-ones grids must add no penalty")
        network = _IgnoresNoiseScale()
        for sampler in CHECKED_SAMPLERS:
            if sampler.sampler not in supported:
                continue
            scheduler = make_scheduler(DiffusionConfig(num_timesteps=T), sampler)
            ours = sample(network, ones, scheduler, BATCH, torch.Generator().manual_seed(2))
            plain = sample(network, NoiseAdaptation(), scheduler, BATCH, torch.Generator().manual_seed(2))
            check(torch.equal(ours, plain), f"all-ones grids must sample exactly as plain DDPM ({sampler.sampler})")

    # 2. state_dict round trip
    trained = _randomised(build())
    restored = build()
    restored.load_state_dict(trained.state_dict())
    with torch.no_grad():
        a, b = trained.training_inputs(schedule, x0, eps, t), restored.training_inputs(schedule, x0, eps, t)
        check(torch.equal(a[0], b[0]) and _same(a[1], b[1]), "training_inputs differ after a state_dict round trip")
        check(_same(trained.sampling_noise_scale(x_t, t), restored.sampling_noise_scale(x_t, t))
              and _same(trained.reverse_std_scale(x_t, t), restored.reverse_std_scale(x_t, t)),
              "sampling differs after a state_dict round trip")

        # 3. the same lookup in training and sampling
        if cls.same_lookup:
            noised, g_train = trained.training_inputs(schedule, x0, eps, t)
            check(_same(trained.sampling_noise_scale(noised, t), g_train),
                  "same_lookup is True, but the denoiser sees another g for the same (x_t, t) in sampling")

    # 4. the sampler-support attribute
    denoiser = MLPDenoiser(noise_scale_input=cls.conditions_model)
    for sampler in CHECKED_SAMPLERS:
        scheduler = make_scheduler(DiffusionConfig(num_timesteps=T), sampler)
        if sampler.sampler in supported:
            drawn = sample(denoiser, trained, scheduler, BATCH, torch.Generator().manual_seed(3))
            check(drawn.shape == (BATCH, 2) and bool(torch.isfinite(drawn).all()),
                  f"sampling with {sampler.sampler} gave non-finite samples")
        else:
            try:
                sample(denoiser, trained, scheduler, BATCH, torch.Generator().manual_seed(3))
                check(False, f"{sampler.sampler} is not in supported_samplers but sampling with it was not refused")
            except SamplerError:
                pass

    # 5. shapes
    for grid_name, values in trained.grids().items():
        check(values.dim() == 3 and values.shape[0] == T,
              f"grid '{grid_name}' must be (T, n, n), got {tuple(values.shape)}")
    penalty = trained.penalty()
    check(penalty.dim() == 0 and bool(torch.isfinite(penalty)), "penalty() must be a finite scalar")
    x_t, _ = trained.training_inputs(schedule, x0, eps, t)
    auxiliary = trained.auxiliary_loss(schedule, x0, x_t, t, eps)
    check(auxiliary is None or (auxiliary.dim() == 0 and bool(torch.isfinite(auxiliary))),
          "auxiliary_loss must return None or a finite scalar")

    if failures:
        raise AssertionError(f"check_adaptation({name}): " + "; ".join(failures))
