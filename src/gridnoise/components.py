"""A run's modules built from its config: the training scheduler, the adaptation and the network.

The one place where a `RunConfig` becomes `nn.Module`s on a device, for training
(`build_components`) and for sampling a saved checkpoint (`sampling_components`).
"""

from __future__ import annotations

import torch
from torch import nn

from gridnoise.adaptation import NoiseAdaptation
from gridnoise.config import AdaptationConfig, DiffusionConfig, RunConfig, from_dict
from gridnoise.continuous import ContinuousNoise, log_snr_ends
from gridnoise.errors import ConfigError
from gridnoise.model import MLPDenoiser
from gridnoise.plugins import adaptation_class
from gridnoise.precision import with_precision
from gridnoise.schedulers import DDPMScheduler
from gridnoise.seeding import derive_seed


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; an unavailable CUDA request is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available: use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}': use auto, cpu or cuda") from None


def build_adaptation(cfg: AdaptationConfig, num_timesteps: int, diffusion: DiffusionConfig | None = None
                     ) -> NoiseAdaptation:
    """The adaptation a config describes, for T = `num_timesteps`: built in, or a plug-in
    (`gridnoise.plugins`); a continuous-time one between the log-SNR ends of the `diffusion` schedule
    (`continuous.log_snr_ends`; by default the default schedule's on T steps)."""
    cls: type[NoiseAdaptation] = adaptation_class(cfg.kind)
    if issubclass(cls, ContinuousNoise):
        ends = log_snr_ends(diffusion or DiffusionConfig(num_timesteps=num_timesteps))
        return cls.from_config(cfg, num_timesteps, ends=ends)
    return cls.from_config(cfg, num_timesteps)


def build_components(cfg: RunConfig, device: torch.device) -> tuple[DDPMScheduler, NoiseAdaptation, MLPDenoiser]:
    """Training scheduler, adaptation and network of a run, initialised from `cfg.seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        scheduler = DDPMScheduler.from_config(cfg.diffusion)
        adaptation = build_adaptation(cfg.adaptation, cfg.diffusion.num_timesteps, cfg.diffusion)
        model = MLPDenoiser(cfg.model, condition_dim=adaptation.condition_dim)
    return scheduler.to(device), adaptation.to(device), model.to(device)


def _averaged(ema_state: dict) -> dict:
    """The averaged module's weights inside an `EMA` state dict."""
    prefix = "averaged."
    return {k[len(prefix):]: v for k, v in ema_state.items() if k.startswith(prefix)}


def sampling_components(state: dict, device: torch.device) -> tuple[DDPMScheduler, nn.Module, NoiseAdaptation]:
    """Scheduler, EMA network (at the run's precision) and grids of a checkpoint, as the run sampled."""
    cfg = from_dict(RunConfig, state["config"])
    scheduler, adaptation, model = build_components(cfg, device)
    model.load_state_dict(_averaged(state["ema"]))
    adaptation.load_state_dict(_averaged(state["ema_adaptation"]) if "ema_adaptation" in state
                               else state["adaptation"])
    return scheduler, with_precision(model.eval(), cfg.precision), adaptation.eval()
