"""The layout of a run directory and of a study directory: file names, and reading and writing them.

A run directory holds:

    config.toml        the resolved config (every hyper-parameter)
    checkpoint.pt      network, EMA, grids, optimiser, LR schedule, RNG, step, losses, config
    train_losses.npz   per-step training loss (`loss`, with penalty) and `mse`
    grids/grids_step_K.npz   every grid (T, n, n) each `grid_snapshot_every` steps, the grids'
                       extent and the timestep `t` their heatmaps are drawn at: saved as data while
                       training, never drawn there
    heatmaps/<dataset>_<grid>_step_K.png   drawn from those arrays on demand (`gridnoise plot`)
    samples.npz        `samples` (num_samples, 2) from the EMA network
    kl_history.json    KL at intermediate steps, when `eval.kl_every` asks for it
    training_segments.json   each training session of the run: the step it started from (0, or the
                       checkpoint's step it resumed from), the step it ended at and its process id
    metrics.json       the original study's metric names; written last, it marks a finished run
    timings.json       seconds the last training segment spent in all, training, evaluating (eval
                       loss, sampling, sample metrics) and drawing figures
    task.json          in a study: the task's config hash, run, data set, seed, peak memory, and
                       where its wall time went (`gridnoise.study.executor.task_phases`)
    provenance.json    the software and hardware that trained it (`gridnoise.provenance`)
    data.npy           the training points, when the run was given an array (Python API)
    reverse_process.gif   written by `gridnoise animate`
    samples.png, loss.png, grids.png   the run's figures, drawn once when training ends
                       (`gridnoise.report.run_figures.draw_run_figures`)
    tensorboard/, tracking.json, mlflow.db, mlartifacts/   with --log (`gridnoise.tracking`)
    evaluation.json, likelihood_terms.npz   metrics added later by `gridnoise evaluate`
    likelihood.png        the variational bound per timestep, drawn from them

A study directory holds `experiment.json` and one run directory per task at
`<run>/<dataset>/seed_<s>/`, plus the summaries of `gridnoise.study.results`. Every file is written
atomically. Nothing here imports torch until a checkpoint is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gridnoise.config import RunConfig, dumps_toml, from_dict, load_toml, naming
from gridnoise.errors import CheckpointError, ConfigError, GridnoiseError
from gridnoise.files import write_json, write_npz, write_text

CONFIG_FILE = "config.toml"
CHECKPOINT_FILE = "checkpoint.pt"
LOSSES_FILE = "train_losses.npz"
SAMPLES_FILE = "samples.npz"
METRICS_FILE = "metrics.json"
TIMINGS_FILE = "timings.json"  # where the last training segment's time went (`write_timings`)
KL_HISTORY_FILE = "kl_history.json"
SEGMENTS_FILE = "training_segments.json"  # where each training session of the run started and ended
TASK_FILE = "task.json"
PROVENANCE_FILE = "provenance.json"
GRIDS_DIR = "grids"
HEATMAPS_DIR = "heatmaps"
ANIMATION_FILE = "reverse_process.gif"
SAMPLES_FIGURE = "samples.png"
LOSS_FIGURE = "loss.png"
GRIDS_FIGURE = "grids.png"
TENSORBOARD_DIR = "tensorboard"  # event files, with --log tensorboard (`gridnoise.tracking`)
TRACKING_FILE = "tracking.json"  # the MLflow run of a run logged with --log mlflow
MLFLOW_DB, MLFLOW_ARTIFACTS = "mlflow.db", "mlartifacts"  # a single run's local MLflow store
EVALUATION_FILE = "evaluation.json"  # metrics added to a finished run by `gridnoise evaluate`
LIKELIHOOD_TERMS_FILE = "likelihood_terms.npz"  # the bound's per-timestep terms, the ODE's per-point values
LIKELIHOOD_FIGURE = "likelihood.png"  # the bound per timestep, drawn from LIKELIHOOD_TERMS_FILE
SCHEDULE_FILE = "schedule.npz"  # a continuous-time model's learned gamma (`continuous.schedule_arrays`)
SCHEDULE_FIGURE = "schedule.png"  # drawn from SCHEDULE_FILE
DATA_FILE = "data.npy"  # the points of a run trained on an array (the Python API saves them here)
RUN_ENTRIES = {CONFIG_FILE, CHECKPOINT_FILE, LOSSES_FILE, SAMPLES_FILE, METRICS_FILE, KL_HISTORY_FILE, SEGMENTS_FILE,
               TASK_FILE, ANIMATION_FILE, GRIDS_DIR, HEATMAPS_DIR, DATA_FILE, PROVENANCE_FILE, SAMPLES_FIGURE,
               LOSS_FIGURE, GRIDS_FIGURE, TENSORBOARD_DIR, TRACKING_FILE, MLFLOW_DB, MLFLOW_ARTIFACTS, EVALUATION_FILE,
               LIKELIHOOD_TERMS_FILE, LIKELIHOOD_FIGURE, SCHEDULE_FILE, SCHEDULE_FIGURE,
               TIMINGS_FILE}
EXPERIMENT_FILE = "experiment.json"  # in a study directory: the experiment it holds
TUNING_FILE = "tuning.json"  # a tuning directory's record (`gridnoise tune`)
JOURNAL_FILE = "tuning.journal"  # its Optuna journal: every arm's trials
TUNED_FILE = "tuned.toml"  # the experiment file of its chosen settings


def file_stem(name: str) -> str:
    """A data set name as one file-name component (a data file's path loses its separators)."""
    return name.replace("/", "_").replace("\\", "_")


def task_dir(out: str | Path, run: str, dataset: str, seed: int) -> Path:
    """The run directory of one (run, data set, seed) task of a study in `out`."""
    return Path(out) / run / file_stem(dataset) / f"seed_{seed}"


def read_json(path: Path, what: str, fix: str = "delete it (its task reruns) or restore it") -> dict:
    """A JSON object (every gridnoise JSON file holds one), with one-line errors for a missing,
    unreadable or corrupt file (`what` names it, `fix` says what to do about a corrupt one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{what} not found: {path}") from None
    except (ValueError, OSError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path} is corrupt: {fix}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object (it holds a {type(data).__name__}): {fix}")
    return data


# -- config, metrics, losses, samples -----------------------------------------------------------

def write_config(run_dir: Path, cfg: RunConfig) -> Path:
    return write_text(run_dir / CONFIG_FILE, dumps_toml(cfg))


def read_config(run_dir: str | Path) -> RunConfig:
    """The run's config, as validated when the run started (read without importing its plug-ins
    or reading its data file); a directory without one is not a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {CONFIG_FILE}: it is not a gridnoise run directory")
    with naming(path):
        return from_dict(RunConfig, load_toml(path, "run config"))


def write_metrics(run_dir: Path, metrics: dict[str, float]) -> Path:
    return write_json(run_dir / METRICS_FILE, metrics)


def read_metrics(run_dir: str | Path) -> dict | None:
    """The metrics of a finished run, or None if it has not finished."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return None
    return read_json(path, METRICS_FILE, "delete it and resume the run with --resume")


def write_losses(run_dir: Path, loss: np.ndarray, mse: np.ndarray) -> Path:
    return write_npz(run_dir / LOSSES_FILE, loss=loss, mse=mse)


def read_losses(run_dir: Path) -> np.ndarray:
    """Per-step training loss `(steps,)` (with the penalty)."""
    return read_arrays(Path(run_dir) / LOSSES_FILE, "loss")["loss"]


def write_samples(run_dir: Path, samples: np.ndarray) -> Path:
    return write_npz(run_dir / SAMPLES_FILE, samples=samples)


def read_samples(run_dir: Path) -> np.ndarray:
    """The run's samples `(num_samples, 2)`."""
    return read_arrays(Path(run_dir) / SAMPLES_FILE, "samples")["samples"]


# what numpy and zipfile raise for a truncated, foreign or damaged .npz file
NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def read_arrays(path: Path, *keys: str, fix: str = "restore it from a copy, or retrain the run") -> dict:
    """Every array of one of the run's .npz files, which must hold `keys`; a missing, corrupt or
    foreign file is a one-line CheckpointError."""
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} not found: {path}") from None
    except NPZ_ERRORS as e:
        raise CheckpointError(f"{path} is corrupt ({type(e).__name__}): {fix}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a single .npy array
        raise CheckpointError(f"{path} is not an .npz archive: {fix}")
    try:
        with archive:
            arrays = {k: archive[k] for k in archive.files}
    except NPZ_ERRORS as e:  # a damaged member
        raise CheckpointError(f"{path} is corrupt ({type(e).__name__}): {fix}") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: {fix}")
    return arrays


def read_kl_history(run_dir: Path) -> dict:
    """KL estimates taken during training so far: {"step": [...], "kl_divergence": [...]} (empty if none)."""
    path = Path(run_dir) / KL_HISTORY_FILE
    if not path.is_file():
        return {"step": [], "kl_divergence": []}
    return read_json(path, KL_HISTORY_FILE, "delete it and resume with --resume")


def write_kl_history(run_dir: Path, history: dict) -> Path:
    return write_json(run_dir / KL_HISTORY_FILE, history)


def write_timings(run_dir: Path, timings: dict[str, float]) -> Path:
    """Seconds of the run's last training segment: `wall_time` (all of `train_run`), `training_time`
    (the loop), `evaluation_time` (eval loss, sampling, sample metrics) and `figures_time`; and
    `load_average_max`, the machine's largest one-minute load average seen while it trained, with
    `cores`, the cores it could use: a run whose load exceeded its cores shared them with other work."""
    return write_json(run_dir / TIMINGS_FILE, timings)


def read_timings(run_dir: str | Path) -> dict[str, float]:
    """What `write_timings` wrote."""
    return read_json(Path(run_dir) / TIMINGS_FILE, TIMINGS_FILE)


def read_segments(run_dir: str | Path) -> list[dict]:
    """The run's training sessions so far, oldest first, each {"start_step", "end_step", "pid"}:
    the step it started from (0, or the step of the checkpoint it resumed from), the step it
    ended at (absent for a session that was interrupted) and the process that trained it.
    Empty for a run not started yet, or one from before sessions were recorded."""
    path = Path(run_dir) / SEGMENTS_FILE
    if not path.is_file():
        return []
    fix = "delete it (it only records where training sessions started) and resume with --resume"
    segments = read_json(path, SEGMENTS_FILE, fix).get("segments")
    if not isinstance(segments, list):
        raise CheckpointError(f"{path} is corrupt: {fix}")
    return segments


def start_segment(run_dir: Path, step: int) -> Path:
    """Record that a training session of this process starts at `step`."""
    segments = [*read_segments(run_dir), {"start_step": int(step), "pid": os.getpid()}]
    return write_json(Path(run_dir) / SEGMENTS_FILE, {"segments": segments})


def end_segment(run_dir: Path, step: int) -> Path:
    """Record that the current training session (the last one started) ended at `step`."""
    segments = read_segments(run_dir)
    segments[-1]["end_step"] = int(step)
    return write_json(Path(run_dir) / SEGMENTS_FILE, {"segments": segments})


def write_provenance(run_dir: Path, record: dict) -> Path:
    return write_json(run_dir / PROVENANCE_FILE, record)


def read_provenance(run_dir: str | Path) -> dict | None:
    """What trained the run (`gridnoise.provenance.provenance`), or None for a run from before it was kept."""
    path = Path(run_dir) / PROVENANCE_FILE
    return read_json(path, PROVENANCE_FILE) if path.is_file() else None


# -- a continuous-time model's schedule ----------------------------------------------------------

def write_schedule(run_dir: Path, arrays: dict[str, Any], extent) -> Path:
    """A continuous-time model's gamma curves and planes (`continuous.schedule_arrays`), with the
    planes' extent in the data's units."""
    return write_npz(run_dir / SCHEDULE_FILE, extent=np.asarray(extent, dtype=np.float64),
                     **{k: np.asarray(v) for k, v in arrays.items()})


def read_schedule(run_dir: Path) -> dict[str, np.ndarray] | None:
    """What `write_schedule` wrote, or None for a run without one (a discrete model's)."""
    path = Path(run_dir) / SCHEDULE_FILE
    return read_arrays(path, "t", "gamma", "extent") if path.is_file() else None


# -- grid snapshots -------------------------------------------------------------------------------

def write_grid_snapshot(run_dir: Path, step: int, t: int, grids: dict[str, np.ndarray], extent) -> Path:
    """Grids `(T, n, n)` by label at training step `step`, their extent and the heatmaps' timestep `t`."""
    return write_npz(run_dir / GRIDS_DIR / f"grids_step_{step}.npz", t=np.int64(t), extent=np.asarray(extent),
                     **grids)


def snapshot_step(path: Path) -> int:
    """Training step of `grids/grids_step_K.npz`."""
    return int(path.stem.rsplit("_", 1)[1])


def grid_snapshots(run_dir: Path) -> list[Path]:
    """Every grid snapshot of a run, in training order (empty for a run without grids)."""
    return sorted((Path(run_dir) / GRIDS_DIR).glob("grids_step_*.npz"), key=snapshot_step)


def final_snapshot(run_dir: Path) -> Path | None:
    """The last grid snapshot of a run (its final grids), or None for a run without grids."""
    snapshots = grid_snapshots(run_dir)
    return snapshots[-1] if snapshots else None


def read_grid_snapshot(path: Path, cfg: RunConfig) -> tuple[int, dict[str, np.ndarray], list[float]]:
    """(heatmap timestep, grids by label, extent) of a snapshot; the extent is the one the grids
    really covered (saved with it), else the config's (snapshots from before it was saved)."""
    snap = read_arrays(path, "t")
    grids = {k: v for k, v in snap.items() if k not in ("t", "extent")}
    extent = snap["extent"].tolist() if "extent" in snap else list(cfg.adaptation.extent)
    return int(snap["t"]), grids, extent


def heatmap_path(run_dir: Path, dataset: str, label: str, step: int) -> Path:
    return Path(run_dir) / HEATMAPS_DIR / f"{file_stem(dataset)}_{label}_step_{step}.png"


# -- checkpoints ----------------------------------------------------------------------------------

CHECKPOINT_KEYS = {"config", "step", "model", "adaptation", "ema", "optimizer"}
WEIGHT_KEYS = ("model", "adaptation", "ema", "ema_adaptation")  # state dicts of modules: finite in a good checkpoint


def load_checkpoint(path: str | Path, device: Any = "cpu") -> dict:
    """Read a checkpoint without unpickling arbitrary objects; a file that is corrupt, not a
    gridnoise checkpoint, or holds a bad config, step or non-finite weights raises CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} - train the run first or check the path")
    retrain = "delete it and retrain, or restore it from a copy"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a gridnoise checkpoint ({type(e).__name__}): "
                              f"{retrain}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a gridnoise checkpoint (it holds a {type(state).__name__}): "
                              f"{retrain}")
    missing = CHECKPOINT_KEYS - set(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}: it is not a gridnoise checkpoint")
    try:
        from_dict(RunConfig, state["config"])
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path} holds an invalid config ({e}): {retrain}") from None
    if isinstance(state["step"], bool) or not isinstance(state["step"], int) or state["step"] < 0:
        raise CheckpointError(f"checkpoint {path} holds step {state['step']!r}, not a step count: {retrain}")
    for key in WEIGHT_KEYS:
        weights = state.get(key, {})
        if not isinstance(weights, dict) or not all(isinstance(w, torch.Tensor) for w in weights.values()):
            raise CheckpointError(f"checkpoint {path}: '{key}' is not a state dict of tensors: {retrain}")
        bad = next((name for name, w in weights.items() if w.is_floating_point() and not torch.isfinite(w).all()), None)
        if bad is not None:  # a checkpoint is only ever written with finite weights
            raise CheckpointError(f"checkpoint {path}: weights '{key}.{bad}' are not finite: {retrain}")
    return state


@contextlib.contextmanager
def checkpoint_fits(path: str | Path) -> Iterator[None]:
    """Where a checkpoint's tensors are loaded into the modules its config builds: a mismatch
    (missing or extra weights, other shapes, a wrong type) is a one-line CheckpointError."""
    try:
        yield
    except GridnoiseError:
        raise
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as e:
        what = " ".join(str(e).split())[:200]  # torch's first line only names the module
        raise CheckpointError(f"checkpoint {path} does not fit the network its config builds ({type(e).__name__}: "
                              f"{what}): it is corrupt or from another run - delete it and retrain, or restore "
                              "it from a copy") from None
