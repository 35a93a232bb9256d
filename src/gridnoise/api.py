"""The Python API: what a notebook needs, without reaching into submodules.

    import gridnoise

    cfg = gridnoise.make_config("grid10", dataset="moons", train={"steps": 500})
    run = gridnoise.train(cfg)                     # a Run; into a temporary directory unless out= is given
    samples = run.sample(2000, sampler="ddim", steps=20)
    gridnoise.sample_metrics(samples, run.data())  # every sample metric, in the data's units
    study = gridnoise.run_experiment("experiments/original.toml", "results/x", steps=200, seeds=[0])
    study.to_dataframe()                           # one row per (run, data set, seed), a column per metric

Everything here is built on the modules the command line uses, so a notebook and `gridnoise train`
compute the same numbers for the same settings.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridnoise import rundir
from gridnoise.config import RunConfig, SamplerConfig, override
from gridnoise.data import load, run_points
from gridnoise.data.datafile import check_points, extent_to_data
from gridnoise.errors import ConfigError, GridnoiseError, OutputExistsError
from gridnoise.metrics import KLEstimator, sample_quality
from gridnoise.registry import SAMPLERS
from gridnoise.report.outputs import write_study_outputs
from gridnoise.report.run_figures import grids_figure, samples_figure
from gridnoise.report.tuning import write_tuning_outputs
from gridnoise.run import train_run
from gridnoise.sampling import sample_run
from gridnoise.study.cluster import Cluster, make_cluster
from gridnoise.study.executor import run_tasks
from gridnoise.study.experiment import bundled, load_experiment
from gridnoise.study.results import load_results
from gridnoise.study.tune import tune


def make_config(variant: str = "baseline", **overrides: Any) -> RunConfig:
    """A validated `RunConfig` of a named variant, with any settings on top.

    Top-level settings are keywords (`dataset="rings"`, `seed=3`); a table takes a dict whose keys
    replace the variant's one by one (`train={"steps": 500, "lr": 1e-3}`, `adaptation={"grids":
    {"grid": 5}}`). Unknown keys and wrong types raise a one-line `ConfigError`.
    """
    return override(None, {"variant": variant, **overrides})


def load_data(source: str | Path | np.ndarray, n: int = 100_000, *, seed: int = 42, key: str = "",
              columns: list[str] | None = None) -> np.ndarray:
    """Points as a float32 `(N, 2)` array: a data set's name (`n` points, `seed`), a data file's
    path (every row; `key` for .npz, `columns` for CSV/TSV), or an array (checked)."""
    if isinstance(source, np.ndarray) or not isinstance(source, (str, Path)):
        return check_points(np.asarray(source)).astype(np.float32)
    return load(str(source), n, seed=seed, key=key, columns=columns)


def train(config: RunConfig | None = None, data: np.ndarray | None = None, out: str | Path | None = None, *,
          overwrite: bool = False, resume: bool = False, progress: bool = True) -> Run:
    """Train, evaluate and sample one run; returns it as a `Run`.

    `data` (an `(N, 2)` array) trains on your own points instead of `config.dataset`; they are
    saved with the run as `data.npy`. Without `out` the run goes to a new temporary directory.
    """
    cfg = copy.deepcopy(config) if config is not None else make_config()
    path = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="gridnoise-run-"))
    if data is not None:
        points = load_data(data)
        path.mkdir(parents=True, exist_ok=True)
        if any(p for p in path.iterdir() if p.name != rundir.DATA_FILE) and not (overwrite or resume):
            raise OutputExistsError(f"output directory {path} is not empty: pass overwrite=True or resume=True, "
                                    "or choose another out")
        np.save(path / rundir.DATA_FILE, points)
        cfg.dataset = str(path / rundir.DATA_FILE)
    train_run(cfg, path, overwrite=overwrite, resume=resume, progress=progress)
    return Run(path)


def load_run(path: str | Path) -> Run:
    """A finished (or interrupted) run from its directory."""
    return Run(Path(path))


@dataclass(frozen=True)
class Run:
    """A run directory: its config, metrics, losses, grids and samples, and sampling from it."""

    path: Path

    def __post_init__(self):
        rundir.read_config(self.path)  # a one-line error for anything that is not a run directory

    @property
    def config(self) -> RunConfig:
        """The run's resolved configuration (its config.toml)."""
        return rundir.read_config(self.path)

    @property
    def metrics(self) -> dict[str, float]:
        """metrics.json: empty while the run has not finished."""
        return rundir.read_metrics(self.path) or {}

    @property
    def losses(self) -> np.ndarray:
        """Per-step training loss `(steps,)`."""
        return rundir.read_losses(self.path)

    @property
    def samples(self) -> np.ndarray:
        """The samples the run drew when it finished `(num_samples, 2)`, in the data's units."""
        return rundir.read_samples(self.path)

    def data(self) -> np.ndarray:
        """The points the run trained on, in their own units `(N, 2)`."""
        return run_points(self.config)

    def grids(self, step: int | None = None) -> dict[str, np.ndarray]:
        """Grids `(T, n, n)` by label ("grid", "coarse_grid", ...) at training step `step` (default:
        the last snapshot); empty for a run without grids."""
        path = self._snapshot(step)
        return rundir.read_grid_snapshot(path, self.config)[1] if path is not None else {}

    def grid_extent(self, step: int | None = None) -> list[float] | None:
        """The rectangle (xmin, xmax, ymin, ymax) the grids cover, in the data's units."""
        path = self._snapshot(step)
        if path is None:
            return None
        cfg = self.config
        return extent_to_data(rundir.read_grid_snapshot(path, cfg)[2], cfg.data.shift, cfg.data.scale)

    def sample(self, n: int = 10_000, *, seed: int | None = None, sampler: str = "ddpm", steps: int = 0,
               eta: float = 0.0, clip_sample: float = 0.0, device: str = "auto") -> np.ndarray:
        """Draw `(n, 2)` points in the data's units with any sampler (`seed` None: the run's own)."""
        if sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler '{sampler}': use {', '.join(SAMPLERS)}")
        return sample_run(self.path, n, seed, device,
                          SamplerConfig(sampler, steps, eta, clip_sample))

    def plot_samples(self, samples: np.ndarray | None = None, max_data: int = 5000):
        """A matplotlib Figure of `samples` (default: the run's own) over its data, in the data's units."""
        data = self.data()
        data = data[np.random.default_rng(0).permutation(len(data))[:max_data]]
        cfg = self.config
        return _detached(samples_figure(self.samples if samples is None else samples, data,
                                        title=f"{cfg.variant} on {Path(cfg.dataset).name}"))

    def plot_grids(self, timesteps: tuple[int, ...] | None = None, step: int | None = None, max_data: int = 3000):
        """A matplotlib Figure of the grids at several timesteps (default: 0, T/4, T/2, 3T/4, T-1) over
        their real extent, the data drawn over them; a ConfigError for a run without grids."""
        grids = self.grids(step)
        if not grids:
            raise ConfigError(f"{self.path} has no grids: its adaptation is '{self.config.adaptation.kind}'")
        T = next(iter(grids.values())).shape[0]
        timesteps = timesteps or (0, T // 4, T // 2, 3 * T // 4, T - 1)
        data = self.data()
        data = data[np.random.default_rng(0).permutation(len(data))[:max_data]]
        return _detached(grids_figure(grids, self.grid_extent(step), timesteps, points=data,
                                            title=f"{self.config.variant}: learned noise scales g"))

    def _snapshot(self, step: int | None) -> Path | None:
        snapshots = rundir.grid_snapshots(self.path)
        if step is None:
            return snapshots[-1] if snapshots else None
        found = [p for p in snapshots if rundir.snapshot_step(p) == step]
        if not found:
            steps = ", ".join(str(rundir.snapshot_step(p)) for p in snapshots) or "none"
            raise ConfigError(f"{self.path} has no grid snapshot at step {step}: it has {steps}")
        return found[0]


def _detached(fig):
    """`fig`, released by pyplot: a notebook shows it once, as the cell's value, and nothing piles up."""
    import matplotlib.pyplot as plt

    plt.close(fig)
    return fig


def sample_metrics(samples: np.ndarray, data: np.ndarray, *, seed: int = 0, k: int = 5) -> dict[str, float]:
    """Every sample metric of `samples` against `data` (both `(N, 2)`): the k-NN KL divergence in
    bits, W2, sliced W2, MMD, precision and recall (docs/reference/metrics.md says what each measures)."""
    samples, data = np.asarray(samples), np.asarray(data)
    return {"kl_divergence": KLEstimator(data, k)(samples), **sample_quality(samples, data, seed=seed)}


evaluate = sample_metrics  # its name before `gridnoise evaluate` (likelihoods) took the word; kept for users' code


@dataclass(frozen=True)
class Study:
    """A study directory: its experiment and the metrics of every finished task."""

    path: Path

    @property
    def results(self):
        """The `gridnoise.study.results.StudyResults` of the study."""
        return load_results(self.path)

    def run(self, run: str, dataset: str, seed: int) -> Run:
        """One task's run directory."""
        return Run(rundir.task_dir(self.path, run, dataset, seed))

    def to_dataframe(self):
        """A pandas DataFrame: one row per finished (run, data set, seed), a column per metric,
        plus `label` and `variant`."""
        import pandas as pd

        results = self.results
        rows = []
        for (run, dataset, seed), metrics in sorted(results.metrics.items()):
            spec = next(r for r in results.runs if r["name"] == run)
            rows.append({"run": run, "label": spec["label"], "variant": spec["variant"], "dataset": dataset,
                         "seed": seed, **metrics})
        return pd.DataFrame(rows)


def run_experiment(experiment: str | Path, out: str | Path, *, seeds: list[int] | None = None,
                   datasets: list[str] | None = None, steps: int | None = None, workers: int | None = None,
                   address: str | None = None, progress: bool = False, scheduler: str | None = None,
                   cluster: str | Cluster = "local", cluster_settings: dict[str, Any] | None = None,
                   scheduler_file: str | Path | None = None) -> Study:
    """Run an experiment file (or a bundled one by name: "original", "improved", "schedules") into
    `out`, then write its summaries, figures and report; finished tasks are skipped. Failed tasks
    raise one `GridnoiseError` naming them.

    Where: a local Dask cluster (`workers` processes), an existing one (its scheduler's `address`,
    or its `scheduler_file`), or `cluster="slurm"`: Slurm jobs with the file's `[cluster]` settings,
    `cluster_settings` (the same keys) on top. `scheduler` is `address`'s former spelling."""
    exp = _experiment(experiment).restricted(seeds=seeds, datasets=datasets, steps=steps)
    where = make_cluster(cluster, workers=workers, address=address or scheduler, scheduler_file=scheduler_file,
                         settings=exp.cluster, overrides=cluster_settings)
    outcome = run_tasks(exp, out, where, progress=progress)
    if outcome.failed:
        first = next(iter(outcome.failed.items()))
        raise GridnoiseError(f"{len(outcome.failed)} task(s) failed, e.g. {first[0]}: {first[1]}")

    write_study_outputs(out)
    return Study(Path(out))


def tune_experiment(experiment: str | Path, out: str | Path, *, trials: int | None = None,
                    datasets: list[str] | None = None, steps: int | None = None, workers: int | None = None,
                    address: str | None = None, progress: bool = False, cluster: str | Cluster = "local",
                    cluster_settings: dict[str, Any] | None = None, scheduler_file: str | Path | None = None):
    """Tune every run of an experiment file (or a bundled one by name, e.g. "tuned") on every data set
    with the same budget (`gridnoise tune`), into `out`, wherever `run_experiment` would run it;
    writes the tuning's report and, when every arm finished a trial, `out/tuned.toml` for
    `run_experiment`. Returns the `TuneOutcome`: each arm's summary (`.arms`) and the tuned file's path
    (`.tuned_file`)."""
    exp = _experiment(experiment).restricted(datasets=datasets, steps=steps)
    where = make_cluster(cluster, workers=workers, address=address, scheduler_file=scheduler_file,
                         settings=exp.cluster, overrides=cluster_settings)
    outcome = tune(exp, out, trials=trials, cluster=where, progress=progress)
    write_tuning_outputs(out)
    return outcome


def _experiment(experiment: str | Path):
    """An experiment file, or a bundled one by name."""
    path = Path(experiment)
    if not path.suffix and not path.exists():
        path = bundled(str(experiment))
    return load_experiment(path)


def load_study(path: str | Path) -> Study:
    """A study directory written by `run_experiment`, `gridnoise run` or `gridnoise reproduce`."""
    load_results(path)  # a one-line error for anything that is not a study directory
    return Study(Path(path))
