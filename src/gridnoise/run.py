"""One run end to end: train with checkpoints, evaluate, sample, and write every result.

The files of a run directory and how they are read are `gridnoise.rundir`'s; this module
decides when each is written. `metrics.json` is written last and marks a finished run.

Nothing is drawn while training: grid snapshots are saved as arrays, and the run's three
figures (samples.png, loss.png, grids.png) are drawn once at the end. The per-snapshot heatmaps
are drawn on demand (`gridnoise plot`): drawn at each of a study task's ten snapshots, they took
8 % of its time. `timings.json` records where a run's time went.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch

from gridnoise import data as datasets
from gridnoise import rundir
from gridnoise.adaptation import GridAdaptation, data_extent, grid_label
from gridnoise.components import resolve_device
from gridnoise.config import RunConfig, SamplerConfig, comparable_dict
from gridnoise.continuous import ContinuousNoise, schedule_arrays
from gridnoise.data.datafile import extent_to_data, is_data_file, sha256, standardization, to_data, to_model
from gridnoise.errors import DataError, OutputExistsError
from gridnoise.eval_loss import eval_loss
from gridnoise.metrics import KLEstimator, grid_variance, sample_quality, wasserstein2
from gridnoise.precision import with_precision
from gridnoise.provenance import provenance
from gridnoise.registry import SAMPLE_QUALITY
from gridnoise.report.run_figures import draw_run_figures
from gridnoise.rundir import CHECKPOINT_FILE, CONFIG_FILE, RUN_ENTRIES, read_config, read_metrics
from gridnoise.sampling import draw
from gridnoise.schedulers import make_scheduler
from gridnoise.seeding import generator
from gridnoise.threads import load_average, usable_cores
from gridnoise.tracking import RunLog
from gridnoise.trainer import Trainer, TrainHooks


def check_output(cfg: RunConfig, out: Path, overwrite: bool, resume: bool) -> set[str]:
    """Whether `out` may take this run: never clobber results unless asked, never touch foreign
    files. Returns the entries `--overwrite` is to clear; writes nothing."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output path {out} is a file: choose a directory with --out")
    # the run's own input data (an array saved by the Python API) is not a result to protect or clear
    entries = {p.name for p in out.iterdir() if not p.name.startswith(".")} - {rundir.DATA_FILE} \
        if out.is_dir() else set()
    foreign = entries - RUN_ENTRIES
    if resume and (out / CONFIG_FILE).is_file():
        saved, wanted = comparable_dict(read_config(out)), comparable_dict(cfg)
        if saved != wanted:
            diff = sorted(k for k in wanted if wanted[k] != saved.get(k))
            raise OutputExistsError(
                f"{out} holds a run with a different config (differs in {', '.join(diff)}): "
                "resume with the same settings, or use another --out"
            )
    elif foreign and (resume or overwrite):
        raise OutputExistsError(
            f"{out} holds files gridnoise did not write ({', '.join(sorted(foreign)[:3])}): "
            "refusing to touch it - choose another --out"
        )
    elif entries and not resume and not overwrite:
        raise OutputExistsError(
            f"output directory {out} is not empty: pass --resume to continue it, --overwrite to replace it, "
            "or choose another --out"
        )
    return entries if overwrite else set()


def prepare_output(cfg: RunConfig, out: Path, cleared: set[str]) -> None:
    """Clear the `cleared` entries of `out` (`check_output`'s), create it and write the run's config."""
    for name in cleared:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_config(out, cfg)


class RunHooks(TrainHooks):
    """Writes a run's files while it trains (grid snapshots, the KL history and checkpoints) and
    logs to its trackers (`log`)."""

    def __init__(self, out: Path, kl: KLEstimator, history: dict, log: RunLog):
        self.out, self.kl, self.history, self.log = out, kl, history, log
        self.peak_load = load_average()  # the largest load average seen while training

    def on_log(self, trainer: Trainer) -> None:
        self.peak_load = max(self.peak_load, load_average())
        self.log.training(trainer)

    def on_grid_snapshot(self, trainer: Trainer) -> None:
        """Save every grid `(T, n, n)` with its extent, and the heatmaps' timestep: the first of the
        last batch, as the original study drew its heatmaps (drawn later, from this file)."""
        adaptation = cast(GridAdaptation, trainer.adaptation)  # called only for runs with grids
        grids = {grid_label(name): g.detach().cpu().numpy() for name, g in adaptation.grids().items()}
        extent = next(iter(adaptation.named_grids().values())).extent.cpu().numpy()
        assert trainer.last_timesteps is not None  # a step has been taken
        rundir.write_grid_snapshot(self.out, trainer.step, int(trainer.last_timesteps[0]), grids, extent)
        if self.log.trackers:
            cfg = trainer.cfg
            self.log.grids(trainer.step, grids, extent_to_data(extent, cfg.data.shift, cfg.data.scale))

    def on_kl_estimate(self, trainer: Trainer) -> None:
        """KL of the current EMA model, once per step (a resumed run keeps its earlier estimates)."""
        if trainer.step not in self.history["step"]:
            self.history["step"].append(trainer.step)
            self.history["kl_divergence"].append(intermediate_kl(trainer, self.kl))
            rundir.write_kl_history(self.out, self.history)
            self.log.kl(trainer.step, self.history["kl_divergence"][-1])

    def on_checkpoint(self, trainer: Trainer) -> None:
        trainer.save_checkpoint(self.out / CHECKPOINT_FILE)


def train_run(cfg: RunConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
              progress: bool = True, until: int | None = None, figures: bool = True) -> dict:
    """Train, evaluate and sample one run into `out`; returns its metrics.

    With `resume`, a finished run is left as it is and an interrupted one continues from its
    checkpoint, ending with the same numbers as an uninterrupted run. With `until` below
    `train.steps` it pauses there instead: it saves its checkpoint and returns {} (a tuning trial's
    intermediate value is measured at the pause; `resume` goes on). After evaluation it draws
    samples.png, loss.png and grids.png, not the per-snapshot heatmaps (none with `figures=False`:
    a tuning trial is scored, not viewed, and `gridnoise plot` draws them later from its files), and
    records where this call's time went in `timings.json`.
    """
    start = time.perf_counter()
    cfg.validate()
    out = Path(out)
    device = resolve_device(cfg.device)
    points = datasets.run_points(cfg)  # in the data's own units
    resolve_data(cfg, points)
    # Everything the run reads is checked before its first file is written: the data (the KL
    # estimate must measure it), the output directory and, on --resume, its metrics and checkpoint.
    kl = KLEstimator(points, cfg.eval.kl_k)  # the data's neighbour distances, computed once
    cleared = check_output(cfg, out, overwrite, resume)
    if resume and (metrics := read_metrics(out)) is not None:
        return metrics
    trainer = Trainer(cfg, to_model(points, cfg.data.shift, cfg.data.scale), device)
    history: dict = {"step": [], "kl_divergence": []}
    if resume:
        if (out / CHECKPOINT_FILE).exists():
            state = rundir.load_checkpoint(out / CHECKPOINT_FILE, device)
            with rundir.checkpoint_fits(out / CHECKPOINT_FILE):
                trainer.load_state_dict(state)
        history = rundir.read_kl_history(out)
    prepare_output(cfg, out, cleared)
    rundir.start_segment(out, trainer.step)  # a resumed run's session starts at its checkpoint's step
    log = RunLog(cfg, out, trainer.step, points)
    status = "FAILED"
    trained_before = trainer.elapsed  # a resumed run's earlier segments
    hooks = RunHooks(out, kl, history, log)
    try:
        trainer.fit(hooks, progress=progress, until=until)
        trainer.save_checkpoint(out / CHECKPOINT_FILE)
        rundir.end_segment(out, trainer.step)
        if trainer.step < cfg.train.steps:
            status = "SCHEDULED"  # paused: a later call resumes it
            return {}
        rundir.write_losses(out, trainer.losses.numpy(), trainer.mse.numpy())
        if trainer.continuous:  # its learned gamma, for schedule.png
            write_schedule(trainer, out)
        evaluating = time.perf_counter()
        metrics = evaluate_trainer(trainer, out, kl, points)
        evaluated = time.perf_counter()
        rundir.write_provenance(out, provenance(device))
        drawing = time.perf_counter()
        if figures:  # samples.png, loss.png, grids.png: once, from the saved files
            draw_run_figures(out, heatmaps=False)
        drawn = time.perf_counter()
        log.finish(metrics, trainer.step)
        rundir.write_timings(out, {"wall_time": time.perf_counter() - start,
                                   "training_time": trainer.elapsed - trained_before,
                                   "evaluation_time": evaluated - evaluating, "figures_time": drawn - drawing,
                                   "load_average_max": max(hooks.peak_load, load_average()),
                                   "cores": usable_cores()})
        rundir.write_metrics(out, metrics)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        log.close(status)
    return metrics


def write_schedule(trainer: Trainer, out: Path) -> None:
    """Save a continuous-time model's gamma curves and, for an adaptive one, gamma over the data's
    bounding box (+5%) (`continuous.schedule_arrays`), as it samples."""
    cfg = trainer.cfg
    _, adaptation = trainer.sampling_modules()
    extent = data_extent(trainer.data)
    arrays = schedule_arrays(cast(ContinuousNoise, adaptation), extent, cfg.seed)
    rundir.write_schedule(out, arrays, extent_to_data(extent, cfg.data.shift, cfg.data.scale))


def resolve_data(cfg: RunConfig, points: np.ndarray) -> None:
    """Record a data file's sha256 and the transform to the model's scale in `cfg.data`.

    A config that already names a sha256 (a study's task) must find the same file.
    """
    if is_data_file(cfg.dataset):
        digest = sha256(cfg.dataset)
        if cfg.data.sha256 and cfg.data.sha256 != digest:
            raise DataError(f"{cfg.dataset} changed since this run's study started (sha256 {digest[:12]}..., "
                            f"expected {cfg.data.sha256[:12]}...): restore it, or run the study into another --out")
        cfg.data.sha256 = digest
    cfg.data.shift, cfg.data.scale = standardization(points, cfg.data.standardize)


def to_data_units(trainer: Trainer, samples: torch.Tensor) -> np.ndarray:
    """Samples from the model's units to the data's, as a numpy array."""
    return to_data(samples.cpu().numpy(), trainer.cfg.data.shift, trainer.cfg.data.scale)


def intermediate_kl(trainer: Trainer, kl: KLEstimator) -> float:
    """KL of the current EMA model from `eval.kl_every_samples` samples (its own random stream)."""
    cfg = trainer.cfg
    model, adaptation = trainer.sampling_modules()
    samples = to_data_units(trainer, draw(model, adaptation, trainer.noise_scheduler, SamplerConfig(),
                                          cfg.eval.kl_every_samples, cfg.seed, stream=f"kl{trainer.step}"))
    return kl(samples) if np.isfinite(samples).all() else float("nan")


def evaluate_trainer(trainer: Trainer, out: Path, kl: KLEstimator, data: np.ndarray) -> dict:
    """Eval loss, samples and sample metrics of a trained run, under the original study's names.

    Samples and metrics are in the data's own units (`data` `(N, 2)`); the eval loss is the model's.
    """
    cfg = trainer.cfg
    metrics = {"training_time": trainer.elapsed}
    network = with_precision(trainer.model, cfg.precision)
    metrics["eval_loss"] = eval_loss(network, trainer.adaptation, trainer.noise_scheduler, trainer.data,
                                     cfg.train.batch_size, generator(cfg.seed, "eval", trainer.device))
    model, adaptation = trainer.sampling_modules()
    start = time.perf_counter()
    scheduler = make_scheduler(cfg.diffusion, cfg.sampler).to(trainer.device)
    drawn = draw(model, adaptation, scheduler, cfg.sampler, cfg.eval.num_samples, cfg.seed, trainer.data)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    metrics["inference_time"] = time.perf_counter() - start
    samples = to_data_units(trainer, drawn)
    rundir.write_samples(out, samples)
    finite = bool(np.isfinite(samples).all())
    metrics["kl_divergence"] = kl(samples) if finite else float("nan")
    # Metrics that compare across variants; seeded per run so they are reproducible.
    extra = sample_quality(samples, data, seed=cfg.seed) if finite else dict.fromkeys(SAMPLE_QUALITY, float("nan"))
    metrics.update(extra)
    for name, grid in trainer.adaptation.grids().items():
        metrics[f"{grid_label(name)}_variance"] = grid_variance(grid.detach().cpu())
    metrics["abar_T"] = adaptation.terminal_signal(trainer.noise_scheduler)  # signal left where sampling starts
    for name, sampler in cfg.eval.extra_samplers.items():
        scheduler = make_scheduler(cfg.diffusion, sampler).to(trainer.device)
        start = time.perf_counter()
        other = to_data_units(trainer, draw(model, adaptation, scheduler, sampler, cfg.eval.num_samples,
                                            cfg.seed, trainer.data))
        metrics[f"{name}_inference_time"] = time.perf_counter() - start
        ok = bool(np.isfinite(other).all())
        metrics[f"{name}_kl_divergence"] = kl(other) if ok else float("nan")
        metrics[f"{name}_w2"] = wasserstein2(other, data, seed=cfg.seed) if ok else float("nan")
    return metrics
