"""Estimator floors: what each sample metric gives a perfect model, at a study's sample sizes.

A sample metric compares a run's `eval.num_samples` samples with its training points. A model
that had learnt the data exactly would still not score 0: its samples are a finite draw, and the
k-NN KL can even go below 0. So each data set's floor is the metric of a *fresh draw of the data
itself* (`eval.num_samples` points, as many as a run samples) against the training points, over
`FLOOR_DRAWS` independent draws: their mean is where a perfect model lands, their standard deviation
how far two perfect models differ by chance. A report shows the floor beside the values and
claims no difference smaller than that spread (`gridnoise.report.claims`).

Floors depend only on the data and the sizes, not on any run, so a study computes them once and
keeps them in `estimator_floors.json` (recomputed when the data or sizes change). A data file has
no fresh draw: it gets no floor, and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridnoise.config import RunConfig
from gridnoise.data import load, run_points
from gridnoise.data.datafile import is_data_file
from gridnoise.files import write_json
from gridnoise.metrics import KLEstimator, sample_quality
from gridnoise.registry import metrics_where
from gridnoise.rundir import read_config, read_json
from gridnoise.study.results import StudyResults

FLOORS_FILE = "estimator_floors.json"
FLOOR_DRAWS = 5  # fresh draws per data set: enough for a spread, cheap (about 1.5 s each at 10000 points)
FLOOR_STREAM = 2  # fresh draws use seeds derived from (data seed, draw, this): never a training or held-out draw
SAMPLE_METRICS = metrics_where(kind=("sample",))


@dataclass(frozen=True)
class Floor:
    """One sample metric's floor on one data set: the mean and standard deviation over the fresh draws."""

    mean: float
    spread: float  # standard deviation over FLOOR_DRAWS draws
    draws: int


def floor_settings(cfg: RunConfig) -> dict:
    """What a data set's floors depend on: the data, its draw, and the sizes the metrics see."""
    return {"dataset": cfg.dataset, "n_points": cfg.n_points, "data_seed": cfg.training_data_seed,
            "num_samples": cfg.eval.num_samples, "kl_k": cfg.eval.kl_k, "draws": FLOOR_DRAWS}


def compute_floors(cfg: RunConfig) -> dict[str, list[float]]:
    """metric -> its value on each of FLOOR_DRAWS fresh draws of `cfg`'s data set against its training points."""
    data = run_points(cfg)
    kl = KLEstimator(data, cfg.eval.kl_k)
    values: dict[str, list[float]] = {m: [] for m in SAMPLE_METRICS}
    for draw in range(FLOOR_DRAWS):
        seed = int(np.random.SeedSequence([cfg.data_seed, draw, FLOOR_STREAM]).generate_state(1)[0])
        fresh = load(cfg.dataset, cfg.eval.num_samples, seed=seed)
        values["kl_divergence"].append(kl(fresh))
        for name, value in sample_quality(fresh, data, seed=draw).items():
            values[name].append(value)
    return values


def _dataset_config(results: StudyResults, dataset: str) -> RunConfig | None:
    """The config of the baseline's first finished task on `dataset` (any run's without one)."""
    keys = sorted(k for k in results.metrics if k[1] == dataset)
    key = next((k for k in keys if k[0] == results.baseline), keys[0] if keys else None)
    return read_config(results.run_dir(*key)) if key else None


def update_floors(results: StudyResults) -> Path:
    """Compute the floors of each data set of a study that lacks them (or whose settings changed)
    and write `estimator_floors.json`: {dataset: {"settings", "values": {metric: [per draw]}}} or
    {dataset: {"skipped": why}}."""
    path = results.out / FLOORS_FILE
    saved = read_json(path, FLOORS_FILE, "delete it: the next report recomputes it") if path.is_file() else {}
    floors: dict[str, dict] = {}
    for dataset in results.datasets:
        cfg = _dataset_config(results, dataset)
        if cfg is None:
            continue
        if is_data_file(dataset):
            floors[dataset] = {"skipped": "a data file has no fresh draw to compare it with"}
            continue
        settings = floor_settings(cfg)
        old = saved.get(dataset, {})
        floors[dataset] = old if old.get("settings") == settings else \
            {"settings": settings, "values": compute_floors(cfg)}
    if floors != saved:
        write_json(path, floors)
    return path


def read_floors(results: StudyResults) -> dict[str, dict[str, Floor] | str]:
    """dataset -> {metric: Floor}, or the reason it has none; empty before `update_floors`."""
    path = results.out / FLOORS_FILE
    if not path.is_file():
        return {}
    out: dict[str, dict[str, Floor] | str] = {}
    for dataset, entry in read_json(path, FLOORS_FILE, "delete it: the next report recomputes it").items():
        if "skipped" in entry:
            out[dataset] = str(entry["skipped"])
            continue
        out[dataset] = {m: Floor(float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else math.nan, len(v))
                        for m, v in entry["values"].items()}
    return out
