"""Experiment files: a study declared as data, one TOML table per run.

```toml
[experiment]
name = "original"
datasets = ["circle", "dino", "line", "moons"]
seeds = [0]
baseline = "run_0"          # what the report compares every other run against
primary = "kl_exact"        # optional: the metric the verdict uses (default: see report.claims)
question = "..."            # optional: the question the report's first screen answers

[defaults.train]            # any RunConfig field, applied to every run
steps = 10000

[runs.run_0]
label = "Baseline"
variant = "baseline"        # a preset; further RunConfig tables override it

[runs.run_0.per_dataset.moons]  # RunConfig tables for one data set only (a tuned run's settings)
train = { lr = 1e-3 }
```

An experiment expands into tasks, one per (run, data set, seed), each a full `RunConfig`
with a hash that identifies its results on disk. `search` tables (in `[defaults]` and each run)
and a `[tune]` table say what `gridnoise tune` varies (`gridnoise.study.search`); `gridnoise run`
ignores them. A `[cluster]` table holds the Slurm jobs' settings for `--cluster slurm`
(`gridnoise.study.cluster`); like the seeds, it is not part of what makes results comparable.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gridnoise.config import (
    HASHED_AS,
    RunConfig,
    adaptation_for,
    comparable_dict,
    load_toml,
    merge_tables,
    naming,
    override,
)
from gridnoise.data import DATASETS, STUDY_DATASETS, check_dataset
from gridnoise.data.datafile import is_data_file, sha256
from gridnoise.errors import ConfigError
from gridnoise.registry import PRIMARY_CHOICES
from gridnoise.study.cluster import SlurmSettings, parse_cluster
from gridnoise.study.search import Param, TuneSettings, check_space, parse_space, parse_tune

EXPERIMENT_KEYS = {"name", "description", "datasets", "seeds", "baseline", "primary", "question", "tuned"}


@dataclass
class RunSpec:
    name: str  # directory name, e.g. "run_3"
    label: str  # legend label, e.g. "Multi-scale Grid"
    variant: str
    overrides: dict[str, Any] = field(default_factory=dict)  # RunConfig tables beyond the preset
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)  # data set -> tables for it alone
    search: dict[str, Param] = field(default_factory=dict)  # what `gridnoise tune` varies (defaults' included)


@dataclass
class Task:
    run: str
    dataset: str
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return f"{self.run}/{self.dataset}/seed_{self.seed}"

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


@dataclass
class Experiment:
    name: str
    datasets: list[str]
    seeds: list[int]
    runs: list[RunSpec]
    baseline: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    primary: str = ""  # the report's primary metric; empty: chosen from what the study measured
    question: str = ""  # what the report's first screen answers; empty: whether any run beats the baseline
    tune: TuneSettings = field(default_factory=TuneSettings)  # how `gridnoise tune` tunes it
    # in a file `gridnoise tune` wrote: how its per-data-set settings were chosen (objective, trials per arm)
    tuned: dict[str, Any] = field(default_factory=dict)
    # where it runs with --cluster slurm; not part of its identity (the same study runs anywhere)
    cluster: SlurmSettings = field(default_factory=SlurmSettings)

    def run(self, name: str) -> RunSpec:
        return next(r for r in self.runs if r.name == name)

    def config(self, run: RunSpec, dataset: str, seed: int) -> RunConfig:
        """The full config of one task: the variant's preset, then the defaults, then the run's tables,
        then its tables for this data set."""
        tables = merge_tables(self.defaults, {"dataset": dataset, "seed": seed, "variant": run.variant})
        tables = merge_tables(merge_tables(tables, run.overrides), run.per_dataset.get(dataset, {}))
        cfg = override(None, tables, where=f"runs.{run.name}")
        if is_data_file(dataset):  # the file's content is part of what the task computes
            cfg.data.sha256 = file_sha256(dataset)
        return cfg

    def tasks(self) -> list[Task]:
        return [Task(r.name, d, s, self.config(r, d, s)) for r in self.runs for d in self.datasets for s in self.seeds]

    def identity(self) -> str:
        """Hash of what makes results comparable: runs and defaults, not which seeds or data sets.

        Names renamed since studies were saved hash under their old spelling, so those studies'
        directories still belong to the renamed experiment.
        """
        body = {"name": HASHED_NAMES.get(self.name, self.name), "defaults": _hashed(self.defaults),
                "runs": [[r.name, r.variant, _hashed(r.overrides)] +
                         ([{d: _hashed(t) for d, t in r.per_dataset.items()}] if r.per_dataset else [])
                         for r in self.runs]}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    def restricted(self, *, seeds: list[int] | None = None, datasets: list[str] | None = None,
                   steps: int | None = None, precision: str | None = None,
                   settings: dict[str, Any] | None = None) -> Experiment:
        """A copy with the command line's --seeds, --datasets, --steps, --precision and --set (nested
        `settings` tables, laid over every run's defaults) applied."""
        exp = copy.deepcopy(self)
        exp.defaults = merge_tables(exp.defaults, settings or {})
        if seeds is not None:
            exp.seeds = _check_seeds(seeds)
        if datasets is not None:
            exp.datasets = _check_datasets(datasets)
        if steps is not None:
            exp.defaults.setdefault("train", {})["steps"] = steps
        if precision is not None:
            exp.defaults["precision"] = precision
        for run in exp.runs:  # fail now, not inside a worker
            exp.config(run, exp.datasets[0], exp.seeds[0])
        return exp


HASHED_NAMES = {"original": "seed"}  # experiment names renamed after studies were saved: new -> old


def _hashed(tables: dict) -> dict:
    """Config tables as they take part in the identity: without `log` (trackers change no result),
    renamed values (an adaptation kind) under their old spelling."""
    tables = {k: v for k, v in tables.items() if k != "log"}
    kind = tables.get("adaptation", {}).get("kind") if isinstance(tables.get("adaptation"), dict) else None
    if kind not in HASHED_AS:
        return tables
    return {**tables, "adaptation": {**tables["adaptation"], "kind": HASHED_AS[kind]}}


def file_sha256(path: str) -> str:
    """A data file's sha256, computed once per file version (path, size, modification time)."""
    try:
        stat = Path(path).stat()
    except OSError:
        raise ConfigError(f"data file not found: {path} - check the path (relative paths are from the "
                          "directory the command runs in)") from None
    return _cached_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256(path)


def config_hash(cfg: RunConfig) -> str:
    """Short hash of everything that determines a task's results."""
    return hashlib.sha256(json.dumps(comparable_dict(cfg), sort_keys=True).encode()).hexdigest()[:16]


def _check_seeds(seeds: list[int]) -> list[int]:
    if not isinstance(seeds, list) or not seeds or \
            any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds repeat: {seeds}")
    return list(seeds)


def _check_datasets(datasets: list[str]) -> list[str]:
    if not datasets:
        raise ConfigError(f"an experiment needs at least one data set: choose from {', '.join(DATASETS)}")
    for name in datasets:
        check_dataset(name)
    return list(datasets)


def _names(datasets: Any, source: str) -> list[str]:
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise ConfigError(f"{source}: datasets must be a list of data set names, e.g. [\"moons\"] (got {datasets!r})")
    return datasets


def parse_experiment(data: dict[str, Any], source: str = "experiment") -> Experiment:
    """Validate the dicts of an experiment file into an `Experiment`."""
    unknown = set(data) - {"experiment", "defaults", "runs", "tune", "cluster"}
    if unknown:
        raise ConfigError(f"{source}: unknown top-level table(s) {sorted(unknown)}: use experiment, defaults, runs, "
                          "tune, cluster")
    head = data.get("experiment")
    if not isinstance(head, dict) or "name" not in head:
        raise ConfigError(f"{source}: needs an [experiment] table with a name")
    bad = set(head) - EXPERIMENT_KEYS
    if bad:
        raise ConfigError(f"{source}: unknown key(s) {sorted(bad)} in [experiment]: valid keys are "
                          f"{sorted(EXPERIMENT_KEYS)}")
    runs_table = data.get("runs")
    if not isinstance(runs_table, dict) or not runs_table:
        raise ConfigError(f"{source}: needs at least one [runs.<name>] table")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: [defaults] must be a table of RunConfig settings, got {defaults!r}")
    defaults = dict(defaults)
    shared_space = parse_space(defaults.pop("search", {}), "[defaults.search]")
    datasets = _check_datasets(_names(head.get("datasets", list(STUDY_DATASETS)), source))
    runs = []
    for name, spec in runs_table.items():
        if not isinstance(spec, dict) or "variant" not in spec:
            raise ConfigError(f"{source}: [runs.{name}] needs a variant")
        spec = dict(spec)
        variant, label = spec.pop("variant"), spec.pop("label", name)
        adaptation_for(variant)  # unknown variant -> ConfigError naming the choices
        per_dataset = spec.pop("per_dataset", {})
        if not isinstance(per_dataset, dict) or not all(isinstance(t, dict) for t in per_dataset.values()):
            raise ConfigError(f"{source}: [runs.{name}.per_dataset] must hold one table of settings per data set")
        stray = sorted(set(per_dataset) - set(datasets))
        if stray:
            raise ConfigError(f"{source}: [runs.{name}.per_dataset] names {stray}, not data sets of this experiment "
                              f"({', '.join(datasets)})")
        space = {**shared_space, **parse_space(spec.pop("search", {}), f"[runs.{name}.search]")}
        runs.append(RunSpec(name, str(label), variant, spec, per_dataset, space))
    baseline = head.get("baseline", runs[0].name)
    if baseline not in runs_table:
        raise ConfigError(f"{source}: baseline '{baseline}' is not one of the runs {sorted(runs_table)}")
    primary = head.get("primary", "")
    if primary and primary not in PRIMARY_CHOICES:
        raise ConfigError(f"{source}: primary metric {primary!r} is not one a verdict can rest on: choose from "
                          f"{', '.join(PRIMARY_CHOICES)}")
    seeds = _check_seeds(head.get("seeds", [0]))
    exp = Experiment(
        name=str(head["name"]),
        description=str(head.get("description", "")),
        datasets=datasets,
        seeds=seeds,
        runs=runs,
        baseline=baseline,
        defaults=defaults,
        primary=str(primary),
        question=str(head.get("question", "")),
        tune=parse_tune(data.get("tune"), source, seeds),
        tuned=_tuned(head.get("tuned", {}), source),
        cluster=parse_cluster(data.get("cluster"), source),
    )
    for run in exp.runs:  # every run must build a valid config, on every data set it has tables for
        for dataset in [exp.datasets[0], *run.per_dataset]:
            base = exp.config(run, dataset, exp.seeds[0])
        check_space(run.search, base, f"[runs.{run.name}.search]")
    return exp


def _tuned(table: Any, source: str) -> dict[str, Any]:
    if not isinstance(table, dict) or not isinstance(table.get("arms", {}), dict):
        raise ConfigError(f"{source}: [experiment.tuned] is what `gridnoise tune` records of a tuning: restore it "
                          "from the tuned.toml it wrote, or delete the table")
    return table


def load_experiment(path: str | Path) -> Experiment:
    """An experiment file, validated; every error names the file."""
    with naming(path):
        return parse_experiment(load_toml(path, "experiment file"), source=str(path))


BUNDLED_ALIASES = {"seed": "original"}  # old names of bundled experiment files


def bundled(name: str = "original") -> Path:
    """Path of an experiment file shipped with gridnoise: "original", "improved" or "schedules"."""
    name = BUNDLED_ALIASES.get(name, name)
    return Path(str(resources.files("gridnoise") / "experiments" / f"{name}.toml"))
