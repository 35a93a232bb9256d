"""One run end to end: train with checkpoints, evaluate, sample, and write every result.

A run directory holds:
  config.toml        the resolved config
  checkpoint.pt      network, EMA, grids, optimiser, LR schedule, RNG, step, losses, config
  train_losses.npz   per-step training loss (`loss`, with penalty) and `mse`
  grids/grids_step_K.npz   every grid (T, n, n) each `grid_snapshot_every` steps, and the
                     timestep `t` the seed drew its heatmap at
  heatmaps/<dataset>_<grid>_step_K.png   drawn from those arrays
  samples.npz        `samples` (num_samples, 2) from the EMA network
  kl_history.json    KL at intermediate steps, when `eval.kl_every` asks for it
  metrics.json       the seed's metric names
Every file is written atomically; `metrics.json` is written last and marks a finished run.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from gridnoise import data as datasets
from gridnoise.adaptation import grid_label
from gridnoise.config import (RunConfig, SamplerConfig, check_sampler, comparable_dict, dumps_toml, from_dict,
                              load_run_config)
from gridnoise.errors import CheckpointError, OutputExistsError
from gridnoise.evaluate import eval_loss
from gridnoise.files import write_json, write_npz, write_text
from gridnoise.metrics import SAMPLE_METRICS, KLEstimator, grid_variance, sample_metrics, wasserstein2
from gridnoise.precision import with_precision
from gridnoise.sampling import sample
from gridnoise.seeding import generator
from gridnoise.train import Trainer, load_checkpoint, resolve_device

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
LOSSES_FILE = "train_losses.npz"
SAMPLES_FILE = "samples.npz"
METRICS_FILE = "metrics.json"
KL_HISTORY_FILE = "kl_history.json"
TASK_FILE = "task.json"  # written by the study executor beside a task's results
GRIDS_DIR = "grids"
HEATMAPS_DIR = "heatmaps"
ANIMATION_FILE = "reverse_process.gif"  # `gridnoise animate` writes it beside the results
RUN_ENTRIES = {CONFIG_FILE, CHECKPOINT_FILE, LOSSES_FILE, SAMPLES_FILE, METRICS_FILE, KL_HISTORY_FILE, TASK_FILE,
               ANIMATION_FILE, GRIDS_DIR, HEATMAPS_DIR}


def prepare_output(cfg: RunConfig, out: Path, overwrite: bool, resume: bool) -> None:
    """Make `out` ready; never clobber results unless asked, never touch foreign files."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output path {out} is a file: choose a directory with --out")
    entries = {p.name for p in out.iterdir() if not p.name.startswith(".")} if out.is_dir() else set()
    foreign = entries - RUN_ENTRIES
    if resume and (out / CONFIG_FILE).is_file():
        saved, wanted = comparable_dict(read_config(out)), comparable_dict(cfg)
        if saved != wanted:
            diff = sorted(k for k in wanted if wanted[k] != saved[k])
            raise OutputExistsError(
                f"{out} holds a run with a different config (differs in {', '.join(diff)}): "
                "resume with the same settings, or use another --out"
            )
    elif foreign and (resume or overwrite):
        raise OutputExistsError(
            f"{out} holds files gridnoise did not write ({', '.join(sorted(foreign)[:3])}): "
            "refusing to touch it - choose another --out"
        )
    elif entries and overwrite:
        for name in entries:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif entries and not resume:
        raise OutputExistsError(
            f"output directory {out} is not empty: pass --resume to continue it, --overwrite to replace it, "
            "or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / CONFIG_FILE, dumps_toml(cfg))


def read_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}: it is not a gridnoise run directory")
    return load_run_config(path)


def read_metrics(run_dir: str | Path) -> dict | None:
    """The metrics of a finished run, or None if it has not finished."""
    import json

    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError):
        raise CheckpointError(f"{path} is corrupt: delete it and resume the run with --resume") from None


def save_grid_snapshot(trainer: Trainer, out: Path, first_t: torch.Tensor) -> None:
    arrays = {grid_label(name): g.detach().cpu().numpy() for name, g in trainer.adaptation.grids().items()}
    extent = next(iter(trainer.adaptation.grid_modules.values())).extent.cpu().numpy()
    write_npz(out / GRIDS_DIR / f"grids_step_{trainer.step}.npz", t=np.int64(first_t), extent=extent, **arrays)


def read_grid_snapshot(path: Path, cfg: RunConfig) -> tuple[int, dict[str, np.ndarray], list[float]]:
    """(heatmap timestep, grids by label, extent) of a snapshot; the extent is the one the grids
    really covered (saved with it), else the config's (snapshots from before it was saved)."""
    with np.load(path, allow_pickle=False) as snap:
        grids = {k: snap[k] for k in snap.files if k not in ("t", "extent")}
        extent = snap["extent"].tolist() if "extent" in snap.files else list(cfg.adaptation.extent)
        return int(snap["t"]), grids, extent


def draw_heatmaps(run_dir: str | Path) -> list[Path]:
    """Draw every saved grid snapshot as the seed's heatmap files (at its recorded timestep)."""
    from gridnoise.plots import grid_heatmap, save_figure

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    written = []
    for path in sorted((run_dir / GRIDS_DIR).glob("grids_step_*.npz")):
        step = int(path.stem.rsplit("_", 1)[1])
        t, grids, extent = read_grid_snapshot(path, cfg)
        for label, values in grids.items():
            fig = grid_heatmap(values[t], extent, title=f"{cfg.dataset} {label.replace('_', ' ')}, t={t}, step {step}")
            name = f"{cfg.dataset}_{label}_step_{step}.png"
            written.append(save_figure(fig, run_dir / HEATMAPS_DIR / name))
    return written


def train_run(cfg: RunConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
              progress: bool = True) -> dict:
    """Train, evaluate and sample one run into `out`; returns its metrics.

    With `resume`, a finished run is left as it is and an interrupted one continues from its
    checkpoint, ending with the same numbers as an uninterrupted run.
    """
    cfg.validate()
    out = Path(out)
    device = resolve_device(cfg.device)
    points = datasets.load(cfg.dataset, cfg.n_points, seed=cfg.data_seed)
    prepare_output(cfg, out, overwrite, resume)
    if resume and (metrics := read_metrics(out)) is not None:
        return metrics

    trainer = Trainer(cfg, points, device)
    if resume and (out / CHECKPOINT_FILE).exists():
        trainer.load_state_dict(load_checkpoint(out / CHECKPOINT_FILE, device))
    tc = cfg.train

    history = read_kl_history(out) if resume else {"step": [], "kl_divergence": []}
    kl_every = cfg.eval.kl_every
    kl = KLEstimator(points, cfg.eval.kl_k)  # the data's neighbour distances, computed once

    def on_step(tr: Trainer, first_t: torch.Tensor) -> None:
        if tr.adaptation.grids() and (tr.step % tc.grid_snapshot_every == 0 or tr.step == tc.steps):
            save_grid_snapshot(tr, out, first_t)
        if kl_every and (tr.step % kl_every == 0 or tr.step == tc.steps) and tr.step not in history["step"]:
            history["step"].append(tr.step)
            history["kl_divergence"].append(intermediate_kl(tr, kl))
            write_json(out / KL_HISTORY_FILE, history)
        if tr.step % tc.checkpoint_every == 0 and tr.step < tc.steps:
            tr.save_checkpoint(out / CHECKPOINT_FILE)

    trainer.fit(on_step, progress=progress)
    trainer.save_checkpoint(out / CHECKPOINT_FILE)
    write_npz(out / LOSSES_FILE, loss=trainer.losses.numpy(), mse=trainer.mse.numpy())
    metrics = evaluate_trainer(trainer, out, kl)
    if trainer.adaptation.grids():
        draw_heatmaps(out)
    write_json(out / METRICS_FILE, metrics)
    return metrics


def read_kl_history(run_dir: Path) -> dict:
    """KL estimates taken during training so far (empty if none)."""
    import json

    path = run_dir / KL_HISTORY_FILE
    if not path.is_file():
        return {"step": [], "kl_divergence": []}
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise CheckpointError(f"{path} is corrupt: delete it and resume with --resume") from None


def intermediate_kl(trainer: Trainer, kl: KLEstimator) -> float:
    """KL of the current EMA model from `eval.kl_every_samples` samples (its own random stream)."""
    cfg = trainer.cfg
    model, adaptation = trainer.sampling_modules()
    samples = sample(model, adaptation, trainer.scheduler, cfg.eval.kl_every_samples,
                     generator(cfg.seed, f"kl{trainer.step}", trainer.device)).cpu().numpy()
    return kl(samples) if np.isfinite(samples).all() else float("nan")


def evaluate_trainer(trainer: Trainer, out: Path, kl: KLEstimator) -> dict:
    """Eval loss, samples and sample metrics of a trained run, under the seed's names."""
    cfg = trainer.cfg
    metrics = {"training_time": trainer.elapsed}
    network = with_precision(trainer.model, cfg.precision)
    metrics["eval_loss"] = eval_loss(network, trainer.adaptation, trainer.scheduler, trainer.data,
                                     cfg.train.batch_size, generator(cfg.seed, "eval", trainer.device))
    model, adaptation = trainer.sampling_modules()
    start = time.perf_counter()
    samples = sample(model, adaptation, trainer.scheduler, cfg.eval.num_samples,
                     generator(cfg.seed, "sample", trainer.device))
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    metrics["inference_time"] = time.perf_counter() - start
    samples = samples.cpu().numpy()
    write_npz(out / SAMPLES_FILE, samples=samples)
    finite = bool(np.isfinite(samples).all())
    metrics["kl_divergence"] = kl(samples) if finite else float("nan")
    # Metrics that compare across variants (issue 5); seeded per run so they are reproducible.
    data = trainer.data.cpu().numpy()
    extra = sample_metrics(samples, data, seed=cfg.seed) if finite else dict.fromkeys(SAMPLE_METRICS, float("nan"))
    metrics.update(extra)
    for name, grid in trainer.adaptation.grids().items():
        metrics[f"{grid_label(name)}_variance"] = grid_variance(grid.detach().cpu())
    metrics["abar_T"] = float(trainer.scheduler.alphas_cumprod[-1])  # signal left where sampling starts
    for name, sampler in cfg.eval.extra_samplers.items():
        start = time.perf_counter()
        other = sample(model, adaptation, trainer.scheduler, cfg.eval.num_samples,
                       generator(cfg.seed, "sample", trainer.device), sampler).cpu().numpy()
        metrics[f"{name}_inference_time"] = time.perf_counter() - start
        ok = bool(np.isfinite(other).all())
        metrics[f"{name}_kl_divergence"] = kl(other) if ok else float("nan")
        metrics[f"{name}_w2"] = wasserstein2(other, data, seed=cfg.seed) if ok else float("nan")
    return metrics


def sample_run(run_dir: str | Path, num_samples: int, seed: int, device: str = "auto",
               sampler: SamplerConfig | None = None, callback=None) -> np.ndarray:
    """Draw samples from a saved run's EMA network and grids with `seed`'s sampling stream
    (with `sampler`, default DDPM; `callback(t, x)` sees every intermediate state)."""
    from gridnoise.train import sampling_components

    dev = resolve_device(device)
    state = load_checkpoint(Path(run_dir) / CHECKPOINT_FILE, dev)
    cfg = from_dict(RunConfig, state["config"])
    if int(state["step"]) < cfg.train.steps:
        raise CheckpointError(
            f"{run_dir} stopped at step {int(state['step'])} of {cfg.train.steps}: finish it with "
            "`gridnoise train --out RUN_DIR --resume` first")
    if sampler is not None:
        check_sampler(sampler, cfg.diffusion.num_timesteps, cfg.adaptation.kind)
    scheduler, model, adaptation = sampling_components(state, dev)
    return sample(model, adaptation, scheduler, num_samples, generator(seed, "sample", dev), sampler,
                  callback).cpu().numpy()
