"""Saved results of a study: reading them back, and the summaries written beside them.

A study directory holds `experiment.json`, one run directory per task at
`<run>/<dataset>/seed_<s>/` (see `gridnoise.rundir`), and the summaries made here:
`<run>/final_info.json` in the original study's schema and a tidy `results.csv`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gridnoise.errors import CheckpointError, ConfigError
from gridnoise.files import write_json, write_text
from gridnoise.registry import METRICS, PRIMARY_CHOICES
from gridnoise.rundir import EVALUATION_FILE, EXPERIMENT_FILE, METRICS_FILE, TASK_FILE, read_json, task_dir

RESULTS_CSV = "results.csv"
EVALUATION_FIX = "delete it and run `gridnoise evaluate` again"  # what to do about a corrupt evaluation.json
FINAL_INFO = "final_info.json"


@dataclass
class StudyResults:
    """Metrics of every finished task of a study, keyed by (run, dataset, seed)."""

    out: Path
    experiment: dict  # experiment.json: name, baseline, runs [{name, label, variant}], datasets, seeds
    metrics: dict[tuple[str, str, int], dict[str, float]] = field(default_factory=dict)
    tasks: dict[tuple[str, str, int], dict] = field(default_factory=dict)  # task.json of each

    @property
    def runs(self) -> list[dict]:
        return self.experiment["runs"]

    @property
    def datasets(self) -> list[str]:
        return self.experiment["datasets"]

    @property
    def baseline(self) -> str:
        return self.experiment["baseline"]

    def against(self, baseline: str) -> StudyResults:
        """The same results with another of its runs as the baseline every run is compared with."""
        names = [r["name"] for r in self.runs]
        if baseline not in names:
            raise ConfigError(f"--baseline {baseline} is not a run of this study: choose one of {', '.join(names)}")
        return dataclasses.replace(self, experiment={**self.experiment, "baseline": baseline})

    def judged_by(self, primary: str) -> StudyResults:
        """The same results with another primary metric than the experiment file declares, for one
        report (e.g. the bound, where the baseline has no ODE likelihood); the report says so."""
        if primary not in PRIMARY_CHOICES:
            raise ConfigError(f"--primary {primary} is not a metric a report can be judged by: choose one of "
                              f"{', '.join(PRIMARY_CHOICES)}")
        declared = self.experiment.get("primary") or "none"
        return dataclasses.replace(self, experiment={**self.experiment, "primary": primary,
                                                     "primary_declared": declared})

    def label(self, run: str) -> str:
        return next(r["label"] for r in self.runs if r["name"] == run)

    def run_dir(self, run: str, dataset: str, seed: int) -> Path:
        return task_dir(self.out, run, dataset, seed)

    def seeds(self, run: str, dataset: str) -> list[int]:
        return sorted(s for (r, d, s) in self.metrics if r == run and d == dataset)

    def values(self, run: str, dataset: str, metric: str) -> dict[int, float]:
        """seed -> value of `metric` for finished tasks that report it; none of a metric from the ODE
        likelihood (`Metric.from_ode`) where the run's flow slides on some seed (`sliding`), so no table,
        test or plot summarises the seeds that happen to have one. `results.csv` keeps every value."""
        if metric in METRICS and METRICS[metric].from_ode and self.sliding(run, dataset):
            return {}
        return {s: m[metric] for (r, d, s), m in self.metrics.items()
                if r == run and d == dataset and metric in m}

    def sliding(self, run: str, dataset: str) -> list[float]:
        """Shares of held-out points whose probability-flow ODE slides along a grid cell edge, for the
        seeds where some do (`gridnoise evaluate`'s nll_ode_nontransversal). The ODE gives those points
        no density, so a (run, data set) with any such seed has no ODE likelihood (`values`): the
        seeds that have one are not a fair sample of it."""
        return [v for v in self.values(run, dataset, "nll_ode_nontransversal").values() if v > 0]

    def max_seeds(self) -> int:
        """The largest number of finished seeds of any (run, data set)."""
        return max((len(self.seeds(r["name"], d)) for r in self.runs for d in self.datasets), default=0)

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for m in self.metrics.values():
            names += [k for k in m if k not in names]
        return names


def load_results(out: str | Path) -> StudyResults:
    """Read a study directory; tasks without `metrics.json` are simply not finished."""
    out = Path(out)
    if not out.is_dir():
        raise CheckpointError(f"no study directory at {out}: run `gridnoise run` or `reproduce` first")
    experiment = read_experiment_record(out)
    results = StudyResults(out, experiment)
    for run in experiment["runs"]:
        for dataset in experiment["datasets"]:
            for seed in experiment["seeds"]:
                d = task_dir(out, run["name"], dataset, seed)
                if (d / METRICS_FILE).is_file():
                    key = (run["name"], dataset, seed)
                    results.metrics[key] = {**read_run_metrics(d), **added_metrics(d)}
                    if (d / TASK_FILE).is_file():
                        results.tasks[key] = read_json(d / TASK_FILE, TASK_FILE)
    return results


# experiment.json's keys and what each holds; a record without them was not written by gridnoise
RECORD_KEYS = {"name": str, "baseline": str, "runs": list, "datasets": list, "seeds": list}


def read_experiment_record(out: Path) -> dict:
    """A study's `experiment.json`, checked to hold what `executor.study_record` writes."""
    path = out / EXPERIMENT_FILE
    record = read_json(path, f"{EXPERIMENT_FILE} (not a gridnoise study directory?)",
                       "restore it, or run the study into a new --out")

    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a gridnoise study record ({what}): restore it, or run the study "
                               "into a new --out")

    for key, kind in RECORD_KEYS.items():
        if not isinstance(record.get(key), kind):
            raise bad(f"'{key}' is {record.get(key)!r}, not a {kind.__name__}")
    for run in record["runs"]:
        if not isinstance(run, dict) or not all(isinstance(run.get(k), str) for k in ("name", "label", "variant")):
            raise bad(f"a run is {run!r}, not a name, label and variant")
    if not all(isinstance(d, str) for d in record["datasets"]):
        raise bad(f"'datasets' is {record['datasets']!r}, not a list of names")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in record["seeds"]):
        raise bad(f"'seeds' is {record['seeds']!r}, not a list of integers")
    if record.get("primary", "") not in ("", *PRIMARY_CHOICES):
        raise bad(f"'primary' is {record['primary']!r}, not one of {', '.join(PRIMARY_CHOICES)}")
    if not isinstance(record.get("question", ""), str):
        raise bad(f"'question' is {record['question']!r}, not a text")
    return record


def read_run_metrics(run_dir: Path) -> dict[str, float]:
    """A finished task's `metrics.json`, every value a number (NaN where a metric had none: JSON's
    NaN, or null)."""
    path = run_dir / METRICS_FILE
    fix = "delete it and resume the run (gridnoise train --out RUN_DIR --resume) to recompute it"
    metrics = read_json(path, METRICS_FILE, fix)
    for name, value in metrics.items():
        if value is None:
            metrics[name] = math.nan
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise CheckpointError(f"{path} is corrupt: metric '{name}' is {value!r}, not a number - {fix}")
    return metrics


NOT_METRICS = ("_time", "_evaluations", "_solver_tolerance", "_points")  # costs and settings in evaluation.json


def added_metrics(run_dir: Path) -> dict[str, float]:
    """The numbers `gridnoise evaluate` added to a finished run (`evaluation.json`), beside its own."""
    path = run_dir / EVALUATION_FILE
    if not path.is_file():
        return {}
    added = read_json(path, EVALUATION_FILE, EVALUATION_FIX)
    return {k: float(v) for k, v in added.items() if isinstance(v, int | float) and not isinstance(v, bool)
            and not k.endswith(NOT_METRICS)}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan with fewer than two values)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def write_summaries(results: StudyResults) -> list[Path]:
    """`<run>/final_info.json` ({dataset: {"means", "stds", "n_seeds"}}) and `results.csv`."""
    written = []
    for run in results.runs:
        info = {}
        for dataset in results.datasets:
            seeds = results.seeds(run["name"], dataset)
            if not seeds:
                continue
            means, stds = {}, {}
            for metric in results.metric_names():
                vals = list(results.values(run["name"], dataset, metric).values())
                if vals:
                    means[metric], stds[metric] = mean_std(vals)
            info[dataset] = {"means": means, "stds": stds, "n_seeds": len(seeds), "seeds": seeds}
        if info:
            written.append(write_json(results.out / run["name"] / FINAL_INFO, finite_or_none(info)))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "label", "variant", "dataset", "seed", "metric", "value"])
    for run in results.runs:
        for dataset in results.datasets:
            for seed in results.seeds(run["name"], dataset):
                for metric, value in results.metrics[(run["name"], dataset, seed)].items():
                    writer.writerow([run["name"], run["label"], run["variant"], dataset, seed, metric, repr(value)])
    written.append(write_text(results.out / RESULTS_CSV, buf.getvalue()))
    return written


def finite_or_none(obj):
    """JSON has no NaN: write null instead."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
