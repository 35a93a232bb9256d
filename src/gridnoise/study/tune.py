"""`gridnoise tune`: every (run, data set) of an experiment tuned with the same Optuna budget.

Each *arm* (a run on a data set) is an Optuna study, all of them in one journal file in the
tuning directory (`tuning.journal`), so a killed tuning resumes where it stopped and `--trials`
can grow later. Trials are asked and told here (Optuna's ask-and-tell); their training runs as
Dask tasks (`trials.trial_segment`), every arm's at once.

Reproducible whatever the number of workers and wherever it was interrupted:
- an arm asks `concurrent_trials` trials at a time and asks again only when all of them have
  ended, its sampler seeded from (tune.seed, arm, trial number), so what it suggests depends only
  on the trials before;
- trials train in lockstep rounds: all trials of a batch train to the next report step, then
  all report their value there (in trial order), then the pruner judges each. Every arm uses the
  same pruner and report steps, so pruning treats every arm alike;
- a trial's run pauses at each report step and resumes from its checkpoint with the numbers of
  an uninterrupted run.

On resume the trials left running form the current batch: those behind the furthest report step
train up to it, and the round's report and pruning are done again (a pruner's decision depends
only on the trials before, so it comes out the same).

When every arm has its trials, the best trial of each (lowest objective on the validation draw)
goes into `tuned.toml`: the experiment with each run's chosen settings per data set
(`[runs.<name>.per_dataset.<data set>]`), for `gridnoise run` to measure on the experiment's own
seeds and a fresh held-out draw. `tuning.json` records each arm's trials, their outcome and the
settings it won with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from distributed import wait

from gridnoise.adaptation import ode_skip_reason
from gridnoise.config import RunConfig, merge_tables, override, to_dict
from gridnoise.data.densities import has_density
from gridnoise.errors import ConfigError, OutputExistsError
from gridnoise.files import write_json, write_text
from gridnoise.plugins import adaptation_class
from gridnoise.rundir import JOURNAL_FILE, TUNED_FILE, TUNING_FILE, read_json
from gridnoise.seeding import derive_seed
from gridnoise.study.cluster import Cluster, client_for, task_device, task_resources
from gridnoise.study.executor import REFRESH_SECONDS, SweepProgress, error_line
from gridnoise.study.experiment import Experiment, RunSpec
from gridnoise.study.search import direction, objective_for, optuna_class, study_summary, tables_of, trial_settings
from gridnoise.study.trials import trial_segment

TRIALS_DIR = "trials"
ARM_COUNTS = ("trials", "complete", "pruned", "fail", "best_value")  # what tuned.toml records of each arm
REPORTS_PER_RUN = 4  # report steps when `tune.report_every` is 0: a quarter of training apart


@dataclass
class TuneOutcome:
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm -> its summary (see `arm_summary`)
    tuned_file: Path | None = None  # written when every arm has a finished trial
    incomplete: list[str] = field(default_factory=list)  # arms without a finished trial


def report_steps(steps: int, report_every: int, pruning: bool) -> list[int]:
    """The training steps where a trial reports its value: every `report_every` steps (0: four per
    run) and the last; only the last without a pruner."""
    if not pruning:
        return [steps]
    every = report_every or max(1, steps // REPORTS_PER_RUN)
    return [*range(every, steps, every), steps]


def tuning_identity(exp: Experiment) -> str:
    """What makes a tuning directory's trials this tuning's: the experiment's runs and defaults, each
    run's search space and the [tune] settings (not how many trials, nor which data sets)."""
    body = {"experiment": exp.identity(), "tune": exp.tune.identity(),
            "search": {r.name: {p: repr(v) for p, v in sorted(r.search.items())} for r in exp.runs}}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def check_tunable(exp: Experiment, objective: str) -> None:
    """Refuse, before anything is written, what no trial could do: a run without a search space, an
    objective that needs a density or an ODE likelihood where there is none."""
    empty = [r.name for r in exp.runs if not r.search]
    if empty:
        raise ConfigError(f"run(s) {', '.join(empty)} have no search space: give each run a [runs.<name>.search] "
                          "table (or every run one in [defaults.search])")
    if objective in ("kl_exact", "kl_bound"):
        missing = [d for d in exp.datasets if not has_density(d)]
        if missing:
            raise ConfigError(f"tune.objective {objective} needs a known density, which {', '.join(missing)} lack: "
                              "tune on nll_elbo, or drop those data sets")
    if objective in ("kl_exact", "nll_ode"):
        for run in exp.runs:
            kind = exp.config(run, exp.datasets[0], exp.tune.seeds[0]).adaptation.kind
            reason = ode_skip_reason(adaptation_class(kind))
            if reason is not None:
                raise ConfigError(f"tune.objective {objective} cannot score run {run.name} ({kind}: {reason}): tune "
                                  "on nll_elbo")


class Arm:
    """One (run, data set) under tuning: its Optuna study and the batch of trials in flight."""

    def __init__(self, exp: Experiment, run: RunSpec, dataset: str, storage, out: Path, objective: str):
        import optuna

        self.exp, self.run, self.dataset, self.out = exp, run, dataset, out
        self.name = f"{run.name}/{dataset}"
        settings = exp.tune
        pruner = optuna_class("pruners", settings.pruner)(**settings.pruner_options)
        self.study = optuna.create_study(storage=storage, study_name=self.name, direction=direction(objective),
                                         pruner=pruner, load_if_exists=True)
        self.bases = {s: exp.config(run, dataset, s) for s in settings.seeds}
        self.steps = report_steps(self.bases[settings.seeds[0]].train.steps, settings.report_every,
                                  settings.pruner != "none")
        self.batch: list[int] = []  # trial numbers in flight
        self.round = 0  # index into self.steps the batch is training towards
        self.values: dict[tuple[int, int], float] = {}  # (trial, seed) -> value at this round's step
        self.errors: dict[int, str] = {}  # trial -> why one of its segments failed this round

    # -- trials ----------------------------------------------------------------------------------
    def trials(self) -> list:
        return self.study.get_trials(deepcopy=False)

    def config(self, number: int, seed: int) -> RunConfig:
        """The run config of trial `number` on tuning seed `seed`: the task's, with the trial's settings."""
        base = self.bases[seed]
        return override(base, tables_of(trial_settings(self.trials()[number]), base))

    def directory(self, number: int, seed: int) -> Path:
        return self.out / TRIALS_DIR / self.run.name / self.dataset / f"trial_{number}" / f"seed_{seed}"

    def ask(self, budget: int) -> None:
        """Start a new batch: up to `concurrent_trials` trials, within `budget` trials in all."""
        self.batch, self.round = [], 0
        self.top_up(budget)

    def top_up(self, budget: int) -> None:
        """Ask trials into the batch until it has `concurrent_trials` (or the arm its `budget`)."""
        distributions = {p: param.distribution() for p, param in self.run.search.items()}
        while len(self.batch) < self.exp.tune.concurrent_trials and len(self.trials()) < budget:
            self.study.sampler = sampler_for(self.exp, self.name, len(self.trials()))
            self.batch.append(self.study.ask(fixed_distributions=distributions).number)

    def resume(self, budget: int) -> None:
        """Take up the trials a killed tuning left running as the current batch (see the module's
        docstring); a batch killed while it was being asked (none has reported yet) is completed."""
        from optuna.trial import TrialState

        running = [t for t in self.trials() if t.state == TrialState.RUNNING]
        self.batch = [t.number for t in running]
        furthest = max((max(t.intermediate_values, default=0) for t in running), default=0)
        self.round = next(i for i, s in enumerate(self.steps) if s >= furthest) if furthest else 0
        if running and not furthest and self.batch[-1] == len(self.trials()) - 1:
            self.top_up(budget)

    def segments(self) -> list[tuple[int, int]]:
        """(trial, seed) pairs still to train to this round's step."""
        step = self.steps[self.round]
        trials = {t.number: t for t in self.trials()}
        return [(n, s) for n in self.batch for s in self.exp.tune.seeds
                if step not in trials[n].intermediate_values and (n, s) not in self.values and n not in self.errors]

    def finish_round(self) -> list[int]:
        """Report this round's values, judge each trial, tell the finished ones; returns the trials that
        ended (completed, pruned or failed)."""
        from optuna.trial import Trial, TrialState

        step, last = self.steps[self.round], self.round == len(self.steps) - 1
        trials = {t.number: t for t in self.trials()}
        ended = []
        for n in self.batch:  # every report first, in trial order, then every judgement
            trial = Trial(self.study, trials[n]._trial_id)
            if n in self.errors:
                trial.set_user_attr("error", self.errors[n])
                self.study.tell(n, state=TrialState.FAIL)
                ended.append(n)
            elif step not in trials[n].intermediate_values:
                value = sum(self.values[(n, s)] for s in self.exp.tune.seeds) / len(self.exp.tune.seeds)
                if not math.isfinite(value):
                    trial.set_user_attr("error", f"the objective is {value} at step {step}")
                    self.study.tell(n, state=TrialState.FAIL)
                    ended.append(n)
                else:
                    trial.report(value, step)
        reported = {t.number: t for t in self.trials()}  # with this round's reports
        for n in [n for n in self.batch if n not in ended]:
            trial = Trial(self.study, reported[n]._trial_id)
            if last:
                self.study.tell(n, reported[n].intermediate_values[step])
                ended.append(n)
            elif trial.should_prune():
                self.study.tell(n, state=TrialState.PRUNED)
                ended.append(n)
        self.batch = [n for n in self.batch if n not in ended]
        self.values, self.errors = {}, {}
        self.round += 1
        return ended


def sampler_for(exp: Experiment, arm: str, number: int):
    """The arm's sampler for trial `number`, seeded from (tune.seed, arm, number): a fresh one per
    trial, so its suggestion depends on the trials before and not on what this process asked."""
    cls = optuna_class("samplers", exp.tune.sampler)
    seed = derive_seed(exp.tune.seed, f"tune:{arm}:{number}") % 2**32
    return cls(**{**exp.tune.sampler_options, "seed": seed})


def tuning_record(exp: Experiment, out: Path) -> dict:
    """What `out`'s tuning.json is to hold, refusing a directory that holds anything else; writes nothing."""
    identity = tuning_identity(exp)
    if (out / TUNING_FILE).is_file():
        saved = read_json(out / TUNING_FILE, TUNING_FILE)
        if saved.get("identity") != identity:
            raise OutputExistsError(f"{out} holds the tuning of another experiment ('{saved.get('experiment')}', "
                                    "other runs, search spaces or [tune] settings): choose another --out")
        datasets = saved["datasets"] + [d for d in exp.datasets if d not in saved["datasets"]]
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise OutputExistsError(f"{out} exists and is not a gridnoise tuning directory: choose another --out")
        saved, datasets = {}, list(exp.datasets)
    return {**saved, "experiment": exp.name, "identity": identity, "datasets": datasets,
            "runs": [r.name for r in exp.runs], "variants": {r.name: r.variant for r in exp.runs},
            "baseline": exp.baseline, "tune": dataclasses.asdict(exp.tune)}


def tune(exp: Experiment, out: str | Path, *, trials: int | None = None, cluster: Cluster | None = None,
         progress: bool = True) -> TuneOutcome:
    """Tune every (run, data set) of `exp` to `trials` trials (default `[tune] trials`) into `out`, on a
    `cluster` (default: a local one, a worker process per core), then write `tuned.toml`."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    budget = exp.tune.trials if trials is None else trials
    if not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"--trials must be >= 1 (got {budget})")
    cluster = cluster or Cluster()
    objective = objective_for(exp.tune, exp.primary)
    check_tunable(exp, objective)
    out = Path(out).resolve()
    record = tuning_record(exp, out)
    with contextlib.ExitStack() as stack:  # a remote cluster is reached before anything is written
        remote = stack.enter_context(client_for(cluster)) if cluster.remote else None
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / TUNING_FILE, {**record, "objective": objective, "budget": budget})
        quiet_optuna()
        storage = JournalStorage(JournalFileBackend(str(out / JOURNAL_FILE)))
        arms = [Arm(exp, run, d, storage, out, objective) for run in exp.runs for d in exp.datasets]
        clock = WallClock(out / TUNING_FILE)
        _drive(arms, remote or stack.enter_context(client_for(cluster)), cluster, budget, objective, progress,
               clock.tick)
    return finish(exp, arms, out, objective, budget, clock.total())


class WallClock:
    """The tuning's wall time summed over the sessions it took: this session's time so far added to what
    tuning.json held when it began, written back there whenever a round of trials ends, so a session
    that is killed still counts (up to its last round)."""

    def __init__(self, record: Path):
        self.record, self.start = record, time.perf_counter()
        self.before = read_json(record, TUNING_FILE).get("wall_time", 0.0)

    def total(self) -> float:
        return self.before + time.perf_counter() - self.start

    def tick(self) -> None:
        write_json(self.record, {**read_json(self.record, TUNING_FILE), "wall_time": self.total()})


def _drive(arms: list[Arm], client, cluster: Cluster, budget: int, objective: str, progress: bool,
           tick: Callable[[], None]) -> None:
    """Run every arm's trials to the budget: submit each round's segments, and when an arm's round
    is complete, report, judge and start its next round or batch; `tick` is called as each round ends."""
    points = arms[0].exp.tune.validation_points
    done = sum(1 for a in arms for t in a.trials() if t.state.is_finished())
    display = SweepProgress(budget * len(arms), done, client, enabled=progress, desc="tune")
    futures: dict[Any, tuple[Arm, int, int]] = {}

    def advance(arm: Arm) -> None:
        """Submit the arm's next segments, finishing rounds and asking batches until some are in flight
        or the arm has its budget."""
        nonlocal done
        while True:
            if not arm.batch:
                arm.ask(budget)
                if not arm.batch:
                    return
            todo = arm.segments()
            if todo:
                step = arm.steps[arm.round]
                for n, seed in todo:
                    cfg = to_dict(arm.config(n, seed))
                    cfg["device"] = task_device(cluster, cfg["device"])
                    future = client.submit(trial_segment, cfg, str(arm.directory(n, seed)), step, objective,
                                           points, key=f"gridnoise-tune-{arm.name}-trial{n}-seed{seed}-step{step}",
                                           pure=False, resources=task_resources(cluster))
                    futures[future] = (arm, n, seed)
                return
            done += len(arm.finish_round())
            display.update(done, 0)
            tick()

    for arm in arms:
        arm.resume(budget)
        advance(arm)
    while futures:
        try:
            finished = wait(list(futures), timeout=REFRESH_SECONDS, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            finished = set()
        touched = []
        for future in finished:
            arm, n, seed = futures.pop(future)
            if future.status == "finished":
                arm.values[(n, seed)] = future.result()
            else:
                arm.errors[n] = error_line(future.exception())
            touched.append(arm)
        for arm in dict.fromkeys(touched):
            if not any(a is arm for a, _, _ in futures.values()):
                advance(arm)
        display.update(done, 0)
    display.close()


def arm_summary(arm: Arm) -> dict[str, Any]:
    """An arm's trials: how many ended which way, its best trial's value and settings."""
    return {"run": arm.run.name, "dataset": arm.dataset, **study_summary(arm.study)}


def finish(exp: Experiment, arms: list[Arm], out: Path, objective: str, budget: int, wall_time: float) -> TuneOutcome:
    """Record every arm's summary and the tuning's `wall_time` (all sessions) in tuning.json and, when each
    arm has a finished trial, write tuned.toml."""
    outcome = TuneOutcome(arms={a.name: arm_summary(a) for a in arms})
    outcome.incomplete = [name for name, s in outcome.arms.items() if "best_params" not in s]
    record = read_json(out / TUNING_FILE, TUNING_FILE)
    record.update(arms=outcome.arms, budget=budget, wall_time=wall_time)
    write_json(out / TUNING_FILE, record)
    if not outcome.incomplete:
        outcome.tuned_file = write_text(out / TUNED_FILE, tuned_experiment(exp, arms, objective, budget))
    return outcome


def tuned_experiment(exp: Experiment, arms: list[Arm], objective: str, budget: int) -> str:
    """The experiment file of the final comparison: `exp` with each run's best settings per data set."""
    head: dict[str, Any] = {"name": exp.name, "description": exp.description, "datasets": exp.datasets,
                            "seeds": exp.seeds, "baseline": exp.baseline}
    head.update({k: v for k, v in (("primary", exp.primary), ("question", exp.question)) if v})
    head["tuned"] = {"objective": objective, "trials": budget, "seeds": exp.tune.seeds,
                     "validation_points": exp.tune.validation_points, "sampler": exp.tune.sampler,
                     "pruner": exp.tune.pruner,
                     "arms": {a.name: {k: v for k, v in arm_summary(a).items() if k in ARM_COUNTS}
                              for a in arms}}
    runs: dict[str, Any] = {}
    for run in exp.runs:
        table: dict[str, Any] = {"label": run.label, "variant": run.variant, **run.overrides}
        per_dataset = {}
        for arm in (a for a in arms if a.run is run):
            per_dataset[arm.dataset] = merge_tables(run.per_dataset.get(arm.dataset, {}),
                                                    tables_of(trial_settings(arm.study.best_trial),
                                                              arm.bases[exp.tune.seeds[0]]))
        table["per_dataset"] = per_dataset
        runs[run.name] = table
    header = (f"# Written by `gridnoise tune` from the experiment '{exp.name}': each run's settings on each data set\n"
              f"# are its best of {budget} trials by {objective} on a validation draw (tuning seeds "
              f"{', '.join(map(str, exp.tune.seeds))}).\n"
              "# Measure them on the experiment's own seeds and a fresh held-out draw:\n"
              "#     gridnoise run tuned.toml --out DIR\n")
    return header + tomli_w.dumps({"experiment": head, "defaults": exp.defaults, "runs": runs})


def quiet_optuna() -> None:
    """Optuna logs a line per trial; gridnoise shows its own progress."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
