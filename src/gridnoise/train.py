"""Training: the `Trainer` owns the model, grids, optimiser, EMA, seeding and checkpoints.

The loop itself is `Trainer.fit`; one optimisation step is `Trainer.train_step`. Every source
of randomness is a generator seeded from `cfg.seed`, so a run resumed from a checkpoint ends
with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gridnoise.adaptation import GridAdaptation, NoiseAdaptation, build_adaptation, data_extent
from gridnoise.config import RunConfig, to_dict
from gridnoise.diffusion import DDPMScheduler
from gridnoise.ema import EMA
from gridnoise.errors import CheckpointError, DivergedError
from gridnoise.files import save_torch
from gridnoise.model import MLPDenoiser
from gridnoise.precision import autocast, with_precision
from gridnoise.seeding import derive_seed, generator


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; an unavailable CUDA request is a config error."""
    from gridnoise.config import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available: use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}': use auto, cpu or cuda") from None


def build_components(cfg: RunConfig, device: torch.device) -> tuple[DDPMScheduler, NoiseAdaptation, MLPDenoiser]:
    """Scheduler, adaptation and network of a run, initialised from `cfg.seed`."""
    d = cfg.diffusion
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        scheduler = DDPMScheduler(d.num_timesteps, d.beta_schedule, d.beta_start, d.beta_end, d.zero_terminal_snr)
        adaptation = build_adaptation(cfg.adaptation, d.num_timesteps)
        model = MLPDenoiser(cfg.model, noise_level_input=adaptation.conditions_model)
    return scheduler.to(device), adaptation.to(device), model.to(device)


class Trainer:
    """Trains one model on one data set as SYSTEM.md section 3 describes."""

    def __init__(self, cfg: RunConfig, data: np.ndarray, device: torch.device | str = "cpu"):
        self.cfg, tc = cfg, cfg.train
        self.device = torch.device(device)
        self.scheduler, self.adaptation, self.model = build_components(cfg, self.device)
        self.data = torch.as_tensor(data, dtype=torch.float32, device=self.device)
        if cfg.adaptation.extent_from_data and isinstance(self.adaptation, GridAdaptation):
            self.adaptation.set_extent(data_extent(self.data))
        ema_kwargs = dict(max_decay=tc.ema_decay, update_every=tc.ema_update_every,
                          warmup_steps=tc.ema_warmup_steps, power=tc.ema_power)
        self.ema = EMA(self.model, **ema_kwargs)
        self.ema_adaptation = EMA(self.adaptation, **ema_kwargs) if tc.ema_grids else None
        self.grid_params = list(self.adaptation.parameters())
        # One AdamW over network and grids, as the seed did (its weight decay pulls grids to 0).
        # The fused kernel does the whole update in one pass (about 15% of a CPU step saved).
        self.optimizer = torch.optim.AdamW(
            list(self.model.parameters()) + self.grid_params, lr=tc.lr, weight_decay=tc.weight_decay, fused=True
        )
        self.lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=tc.steps)
        self.generator = generator(cfg.seed, "train", self.device)
        self.batches_per_epoch = math.ceil(len(self.data) / tc.batch_size)
        self._epoch, self._shuffled = -1, self.data
        self.step = 0
        self.losses = torch.full((tc.steps,), float("nan"))
        self.mse = torch.full((tc.steps,), float("nan"))
        self.elapsed = 0.0  # seconds spent in the training loop, summed over resumed segments

    # -- data -------------------------------------------------------------------------------
    def batch(self, step: int) -> Tensor:
        """The batch of `step`: shuffled epochs, each with its own seeded permutation."""
        epoch, index = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            perm = torch.randperm(len(self.data), generator=generator(self.cfg.seed, f"epoch{epoch}"))
            perm = perm.to(self.device)
            self._epoch, self._shuffled = epoch, self.data[perm]
        bs = self.cfg.train.batch_size
        return self._shuffled[index * bs:(index + 1) * bs]

    # -- one step ---------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        """One optimisation step; returns the first timestep of the batch (the seed's heatmap t)."""
        tc = self.cfg.train
        x_start = self.batch(self.step)
        noise = torch.randn(x_start.shape, generator=self.generator, device=self.device)
        timesteps = torch.randint(0, len(self.scheduler), (len(x_start),), generator=self.generator,
                                  device=self.device)
        x_t, level = self.adaptation.training_inputs(self.scheduler, x_start, noise, timesteps)
        with autocast(self.cfg.precision, self.device):
            prediction = self.model(x_t, timesteps, level)
        prediction = prediction.float()
        mse = F.mse_loss(prediction, noise)
        loss = mse + self.adaptation.penalty()
        auxiliary = self.adaptation.auxiliary_loss(self.scheduler, x_start, x_t, timesteps, prediction)
        if auxiliary is not None:
            loss = loss + auxiliary

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        if self.grid_params:
            nn.utils.clip_grad_norm_(self.grid_params, tc.grid_grad_clip)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.ema.update(self.model)
        if self.ema_adaptation is not None:
            self.ema_adaptation.update(self.adaptation)

        self.losses[self.step] = loss.detach()
        self.mse[self.step] = mse.detach()
        self.step += 1
        return timesteps[0]

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, on_step: Callable[["Trainer", Tensor], None] | None = None,
            progress: bool = False) -> None:
        """Train until `cfg.train.steps`; `on_step(trainer, first_t)` runs after every step."""
        from tqdm.auto import tqdm

        tc = self.cfg.train
        bar = tqdm(total=tc.steps, initial=self.step, disable=not progress, desc=self.cfg.variant,
                   dynamic_ncols=True, leave=False)
        try:
            while self.step < tc.steps:
                start = time.perf_counter()
                first_t = self.train_step()
                if self.step % tc.log_every == 0 or self.step == tc.steps:
                    self.check_finite()
                    bar.set_postfix(loss=f"{self.losses[self.step - 1].item():.4f}")
                    bar.update(self.step - bar.n)
                # training_time counts the loop itself, not what on_step adds (snapshots, evaluations)
                self.elapsed += time.perf_counter() - start
                if on_step is not None:
                    on_step(self, first_t)
        finally:
            bar.close()

    def check_finite(self) -> None:
        """Raise DivergedError if a recorded loss or a weight is not finite."""
        recorded = self.losses[: self.step]
        if not torch.isfinite(recorded).all():
            bad = int(torch.nonzero(~torch.isfinite(recorded))[0])
            raise DivergedError(
                f"training diverged: non-finite loss at step {bad + 1}; the last good checkpoint is kept "
                "- lower train.lr or train.grad_clip and resume with --resume"
            )
        for module in (self.model, self.adaptation):
            for p in module.parameters():
                if not torch.isfinite(p).all():
                    raise DivergedError(
                        f"training diverged: non-finite weights after step {self.step}; the last good "
                        "checkpoint is kept - lower train.lr and resume with --resume"
                    )

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {
            "config": to_dict(self.cfg),
            "step": self.step,
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "adaptation": self.adaptation.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "losses": self.losses,
            "mse": self.mse,
        }
        if self.ema_adaptation is not None:
            state["ema_adaptation"] = self.ema_adaptation.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.adaptation.load_state_dict(state["adaptation"])
        self.ema.load_state_dict(state["ema"])
        if self.ema_adaptation is not None:
            self.ema_adaptation.load_state_dict(state["ema_adaptation"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        self.generator.set_state(state["generator"].cpu())
        self.losses.copy_(state["losses"])
        self.mse.copy_(state["mse"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])

    def save_checkpoint(self, path: str | Path) -> None:
        """Write a checkpoint atomically, only if everything in it is finite."""
        self.check_finite()
        save_torch(path, self.state_dict())

    def sampling_modules(self) -> tuple[nn.Module, NoiseAdaptation]:
        """The network and grids sampling uses: the EMA network (at the run's precision); EMA
        grids only if configured."""
        adaptation = self.ema_adaptation.averaged if self.ema_adaptation is not None else self.adaptation
        return with_precision(self.ema.averaged, self.cfg.precision), adaptation


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint without unpickling arbitrary objects; corrupt files raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} - train the run first or check the path")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a gridnoise checkpoint ({type(e).__name__}): "
            "delete it and retrain, or restore it from a copy"
        ) from None
    missing = {"config", "step", "model", "adaptation", "ema", "optimizer"} - set(state if isinstance(state, dict) else ())
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}: it is not a gridnoise checkpoint")
    return state


def sampling_components(state: dict, device: torch.device) -> tuple[DDPMScheduler, nn.Module, NoiseAdaptation]:
    """Scheduler, EMA network and grids of a checkpoint, as the run itself sampled with them."""
    from gridnoise.config import from_dict

    cfg = from_dict(RunConfig, state["config"])
    scheduler, adaptation, model = build_components(cfg, device)
    prefix = "averaged."
    model.load_state_dict({k[len(prefix):]: v for k, v in state["ema"].items() if k.startswith(prefix)})
    if "ema_adaptation" in state:
        adaptation.load_state_dict(
            {k[len(prefix):]: v for k, v in state["ema_adaptation"].items() if k.startswith(prefix)})
    else:
        adaptation.load_state_dict(state["adaptation"])
    return scheduler, with_precision(model.eval(), cfg.precision), adaptation.eval()
