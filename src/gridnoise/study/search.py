"""Search spaces as data: what `gridnoise tune` varies for each run, and how it tunes.

An experiment file gives every run (the baseline included) a table of settings to search,
each a dotted `RunConfig` path and an Optuna distribution; `[defaults.search]` gives every run
the same ones, and a run's own `[runs.<name>.search]` adds to or replaces them:

```toml
[defaults.search]
"train.lr" = { low = 1e-4, high = 3e-3, log = true }       # float, log-uniform
"train.ema_decay" = { low = 0.99, high = 0.999 }            # float, uniform
"diffusion.beta_schedule" = { choices = ["linear", "cosine"] }

[runs.grid20.search]
"adaptation.grids.grid" = { low = 5, high = 40, step = 5 }  # integers (both bounds integers)
"adaptation.grids" = { choices = [{ coarse = 5, fine = 20 }, { coarse = 4, fine = 16 }] }

[tune]
trials = 20                   # per (run, data set): every arm gets the same budget
seeds = [100]                 # tuning seeds, never the experiment's own seeds
objective = "nll_elbo"        # default: the experiment's primary metric (or the bound, see below)
validation_points = 2000      # of a validation draw, neither the training nor the held-out one
report_every = 2500           # steps between the intermediate values pruning judges
pruner = "MedianPruner"       # an optuna.pruners class, or "none"; pruner_options = { ... }
sampler = "TPESampler"        # an optuna.samplers class; sampler_options = { ... }
seed = 0                      # the sampler's seed
concurrent_trials = 1         # trials of one arm asked together (each arm runs in parallel anyway)
```

Choices may be any TOML value; tables and lists reach Optuna as their JSON text (what Optuna's
figures and `tuning.json` show) and go back into the config as they were written.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from gridnoise.config import RunConfig, override, to_dict
from gridnoise.errors import ConfigError
from gridnoise.registry import LOWER_IS_BETTER

# Objectives a trial can be scored by on its validation draw (lower is better unless named in
# `HIGHER_OBJECTIVES`). The likelihoods are measured on the validation points; the sample metrics
# compare as many samples with them.
OBJECTIVES = ("nll_elbo", "kl_bound", "nll_ode", "kl_exact", "kl_divergence", "w2", "sliced_w2", "mmd",
              "precision", "recall")
TUNE_KEYS = {"trials", "seeds", "objective", "validation_points", "report_every", "pruner", "pruner_options",
             "sampler", "sampler_options", "seed", "concurrent_trials"}


@dataclass(frozen=True)
class Param:
    """One searched setting: `path` a dotted RunConfig path; either `choices`, or a range
    [low, high] (integers when both bounds are, `step` apart when step > 0; `log`-uniform)."""

    path: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def distribution(self):
        """The Optuna distribution of this setting (choices that are tables or lists as JSON text)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution([encode(c) for c in self.choices])
        if self.is_int:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))  # type: ignore[arg-type]
        return FloatDistribution(float(self.low), float(self.high), log=self.log,  # type: ignore[arg-type]
                                 step=None if self.step is None else float(self.step))


def encode(choice: Any) -> Any:
    """A choice as Optuna takes it: a table or list as its JSON text, anything else as is."""
    return json.dumps(choice, sort_keys=True) if isinstance(choice, (dict, list)) else choice


def decode(value: Any) -> Any:
    """A parameter value as the config takes it: `encode`'s JSON text back to its table or list."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def trial_settings(trial) -> dict[str, Any]:
    """A trial's searched settings as the config takes them ({"train.lr": 1e-3, ...})."""
    return {p: decode(v) for p, v in trial.params.items()}


def study_summary(study) -> dict[str, Any]:
    """One arm's Optuna study in numbers: its trials, how many ended which way (`complete`, `pruned`,
    `fail`; the rest are still running, or were when a tuning was killed), and, once a trial has
    finished, the best one's number, value and settings as the config takes them."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    summary: dict[str, Any] = {"trials": len(trials)}
    summary.update({state.name.lower(): sum(t.state == state for t in trials)
                    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)})
    if summary["complete"]:
        best = study.best_trial
        summary.update(best_trial=best.number, best_value=best.value,
                       best_params=trial_settings(best))
    return summary


@dataclass
class TuneSettings:
    """The `[tune]` table of an experiment file (the module's docstring has an example)."""

    trials: int = 20  # per (run, data set): every arm gets the same budget
    seeds: list[int] = field(default_factory=lambda: [100])  # tuning seeds, never the experiment's own seeds
    objective: str = ""  # empty: the experiment's primary metric where a trial can afford it, else nll_elbo
    validation_points: int = 2000  # of a validation draw, neither the training nor the held-out one
    report_every: int = 0  # steps between the intermediate values pruning judges (0: a quarter of the steps)
    pruner: str = "MedianPruner"  # an optuna.pruners class, or "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the pruner
    sampler: str = "TPESampler"  # an optuna.samplers class
    sampler_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the sampler
    seed: int = 0  # each trial's sampler is seeded from (seed, arm, trial)
    concurrent_trials: int = 1  # trials of one arm asked together (each arm runs in parallel anyway)

    def identity(self) -> dict[str, Any]:
        """What makes two tunings' trials the same ones: everything but the number of trials."""
        return {k: v for k, v in self.__dict__.items() if k != "trials"}


def objective_for(settings: TuneSettings, primary: str) -> str:
    """The metric trials are scored by: the declared objective, else the experiment's primary metric,
    else the variational bound (cheap, and defined for every variant)."""
    name = settings.objective or (primary if primary in OBJECTIVES else "nll_elbo")
    return name


def direction(objective: str) -> Literal["minimize", "maximize"]:
    """How Optuna optimises `objective`."""
    return "minimize" if objective in LOWER_IS_BETTER else "maximize"


def parse_tune(table: Any, source: str, experiment_seeds: list[int]) -> TuneSettings:
    """Validate a `[tune]` table (absent: the defaults)."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [tune] must be a table of tuning settings")
    unknown = set(table) - TUNE_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)} in [tune]: valid keys are {sorted(TUNE_KEYS)}")
    s = TuneSettings(**table)
    ints = {"trials": s.trials, "validation_points": s.validation_points, "report_every": s.report_every,
            "seed": s.seed, "concurrent_trials": s.concurrent_trials}
    for key, value in ints.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{source}: tune.{key} must be an integer >= 0 (got {value!r})")
    if s.trials < 1 or s.concurrent_trials < 1 or s.validation_points < 2:
        raise ConfigError(f"{source}: tune.trials and tune.concurrent_trials must be >= 1 and tune.validation_points "
                          ">= 2")
    if not isinstance(s.seeds, list) or not s.seeds or \
            any(not isinstance(x, int) or isinstance(x, bool) or x < 0 for x in s.seeds) or \
            len(set(s.seeds)) != len(s.seeds):
        raise ConfigError(f"{source}: tune.seeds must be a non-empty list of distinct integers >= 0 (got {s.seeds!r})")
    shared = sorted(set(s.seeds) & set(experiment_seeds))
    if shared:
        raise ConfigError(f"{source}: tune.seeds {shared} are also the experiment's seeds: tune with other seeds, so "
                          "the final comparison is measured on seeds the tuning never saw")
    if s.objective and s.objective not in OBJECTIVES:
        raise ConfigError(f"{source}: tune.objective {s.objective!r} is not one a trial can be scored by: choose "
                          f"from {', '.join(OBJECTIVES)}")
    for kind, name, options in (("samplers", s.sampler, s.sampler_options), ("pruners", s.pruner, s.pruner_options)):
        if not isinstance(name, str):
            raise ConfigError(f"{source}: tune.{kind[:-1]} must be the name of an Optuna {kind[:-1]} (got {name!r})")
        if not isinstance(options, dict):
            raise ConfigError(f"{source}: tune.{kind[:-1]}_options must be a table of keyword arguments")
        cls = optuna_class(kind, name, source)
        try:  # options it does not take fail here, not after the first trials
            cls(**options, **({"seed": 0} if kind == "samplers" else {}))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: tune.{kind[:-1]}_options do not fit {name} ({e})") from None
    return s


def optuna_class(kind: str, name: str, source: str = "tune"):
    """The class `optuna.<kind>.<name>` ("none" for the pruner: no pruning), or a ConfigError."""
    import optuna

    if kind == "pruners" and name == "none":
        return optuna.pruners.NopPruner
    module = getattr(optuna, kind)
    cls = getattr(module, name, None)
    base = optuna.samplers.BaseSampler if kind == "samplers" else optuna.pruners.BasePruner
    if not (isinstance(cls, type) and issubclass(cls, base)) or name.startswith("Base"):
        choices = sorted(n for n in dir(module) if n.endswith(kind[:-1].capitalize()) and not n.startswith("Base"))
        raise ConfigError(f"{source}: tune.{kind[:-1]} {name!r} is not an Optuna {kind[:-1]}: choose from "
                          f"{', '.join(choices)}" + (" or none" if kind == "pruners" else ""))
    return cls


def parse_space(table: Any, where: str) -> dict[str, Param]:
    """A `search` table as {path: Param}, each range and choice list checked on its own."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of settings to search, e.g. \"train.lr\" = "
                          "{ low = 1e-4, high = 1e-2, log = true }")
    space = {}
    for path, spec in table.items():
        name = f"{where}.\"{path}\""
        if not isinstance(spec, dict):
            raise ConfigError(f"{name} must be a range {{ low, high }} or {{ choices = [...] }} (got {spec!r})")
        unknown = set(spec) - {"low", "high", "log", "step", "choices"}
        if unknown:
            raise ConfigError(f"{name}: unknown key(s) {sorted(unknown)}: use low, high, log, step, or choices")
        if "choices" in spec:
            choices = spec["choices"]
            if set(spec) != {"choices"}:
                raise ConfigError(f"{name}: give either choices or a range (low, high), not both")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{name}: choices must be a non-empty list")
            if len({encode(c) if not isinstance(c, float) else c for c in choices}) != len(choices):
                raise ConfigError(f"{name}: choices repeat: {choices}")
            space[path] = Param(path, choices=tuple(choices))
            continue
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"{name}: a range needs low and high (or give choices = [...])")
        low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
        numbers = [v for v in (low, high, step) if v is not None]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers) or not isinstance(log, bool):
            raise ConfigError(f"{name}: low, high and step must be numbers and log true or false")
        if not low < high:
            raise ConfigError(f"{name}: the range [{low}, {high}] is empty or inverted: give low < high")
        if log and low <= 0:
            raise ConfigError(f"{name}: a log range needs low > 0 (got {low})")
        if step is not None and (step <= 0 or log):
            raise ConfigError(f"{name}: step must be > 0, and a log range takes no step")
        if isinstance(low, int) and isinstance(high, int) and step is not None and not isinstance(step, int):
            raise ConfigError(f"{name}: an integer range takes an integer step (got {step})")
        space[path] = Param(path, low, high, log, step)
    return space


def check_space(space: dict[str, Param], base: RunConfig, where: str) -> None:
    """Check that every searched setting exists in the run's config `base` and that each bound and
    choice makes a valid config (so a trial never fails on its settings)."""
    resolved = to_dict(base)
    for path, param in space.items():
        node: Any = resolved
        for i, key in enumerate(path.split(".")):
            if not isinstance(node, dict) or key not in node:
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "none: it is a value"
                raise ConfigError(f"{where}: \"{path}\" is not a setting of this run ('{key}' unknown at "
                                  f"{'.'.join(path.split('.')[:i]) or 'the top'}; its keys: {known})")
            node = node[key]
        values = list(param.choices) if param.choices is not None else [param.low, param.high]
        for value in values:
            try:
                override(base, tables_of({path: value}, base))
            except ConfigError as e:
                raise ConfigError(f"{where}: \"{path}\" = {value!r} does not make a valid config ({e})") from None


def tables_of(values: dict[str, Any], base: RunConfig) -> dict[str, Any]:
    """Searched values {"train.lr": 1e-3, "adaptation.grids.fine": 10, ...} as the config tables that
    set them on `base`, e.g. {"train": {"lr": 1e-3}, "adaptation": {"grids": {"coarse": 5, "fine": 10}}}:
    a path into a table-valued setting (a grid's size) sets that one key and keeps the others."""
    resolved = to_dict(base)
    roots = []
    for path, value in values.items():
        keys = path.split(".")
        node = resolved
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = copy.deepcopy(value)
        roots.append(setting_path(keys))
    tables: dict[str, Any] = {}
    for root in roots:
        value, table = resolved, tables
        for key in root:
            value = value[key]
        for key in root[:-1]:
            table = table.setdefault(key, {})
        table[root[-1]] = copy.deepcopy(value)
    return tables


def settings_of(tables: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """Config tables as dotted settings, the inverse of `tables_of`: {"train": {"lr": 1e-3}} ->
    {"train.lr": 1e-3}; a table-valued setting (`adaptation.grids`) stays one value."""
    flat: dict[str, Any] = {}
    for key, value in tables.items():
        keys = [*prefix, key]
        if isinstance(value, dict) and len(setting_path([*keys, ""])) > len(keys):
            flat.update(settings_of(value, tuple(keys)))  # a config table: its settings one by one
        else:
            flat[".".join(keys)] = value
    return flat


def setting_path(keys: list[str]) -> list[str]:
    """The part of a dotted path that names a config setting (the rest are keys inside its value)."""
    cls: Any = RunConfig
    for i, key in enumerate(keys):
        hint = typing.get_type_hints(cls).get(key)
        if not (isinstance(hint, type) and dataclasses.is_dataclass(hint)):
            return keys[:i + 1]
        cls = hint
    return keys
