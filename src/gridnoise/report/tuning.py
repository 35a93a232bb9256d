"""A tuning directory's report: how each arm's search went and which settings it chose.

Read from what `gridnoise tune` saved (`tuning.json` and the Optuna journal), so a tuning still
running, or killed, shows its trials so far; never trains.
Figures: each arm's best-so-far objective against trials, all runs of a data set on one axis
(`tuning_progress.png`), and each arm's parameter importances, a runs x settings table of colours
per data set (`tuning_importances.png`, Optuna's fANOVA with a fixed seed). report.md and
report.html say, per arm, how many trials ran, how many were pruned or failed, the best
validation value and the settings it won with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from gridnoise.errors import CheckpointError
from gridnoise.files import write_text
from gridnoise.report import html, markdown
from gridnoise.report.blocks import Figure, Report, Section, Table, fmt, fmt_setting
from gridnoise.report.colours import run_colours
from gridnoise.report.run_figures import save_figure
from gridnoise.rundir import JOURNAL_FILE, TUNED_FILE, TUNING_FILE, read_json
from gridnoise.study.search import study_summary

PROGRESS_FIGURE = "tuning_progress.png"
IMPORTANCE_FIGURE = "tuning_importances.png"
ZOOM_FROM_TRIAL = 5  # the progress panels show every best-so-far value from this trial on (TPE starts at random)
IMPORTANCE_SEED = 0  # fANOVA's forest is random: a fixed seed gives the same importances every time


@dataclass
class Tuning:
    directory: Path
    record: dict[str, Any]  # tuning.json
    studies: dict[str, Any]  # arm "run/dataset" -> its Optuna study

    @property
    def runs(self) -> list[str]:
        return self.record["runs"]

    @property
    def datasets(self) -> list[str]:
        return self.record["datasets"]

    @property
    def budget(self) -> int:
        """Trials per arm: the latest session's `--trials` (default the experiment's `[tune] trials`)."""
        return self.record.get("budget", self.record["tune"]["trials"])

    def arms(self) -> dict[str, dict[str, Any]]:
        """Each arm's `study_summary` as its journal holds it now, in the experiment's order."""
        names = [f"{run}/{dataset}" for run in self.runs for dataset in self.datasets]
        return {name: study_summary(self.studies[name]) for name in names if name in self.studies}

    def finished(self, arms: dict[str, dict[str, Any]]) -> bool:
        """Whether `tuned.toml` was written and every arm's trials, to the budget, have ended."""
        return ((self.directory / TUNED_FILE).is_file() and len(arms) == len(self.runs) * len(self.datasets)
                and all(a["trials"] >= self.budget and a["trials"] == a["complete"] + a["pruned"] + a["fail"]
                        for a in arms.values()))


def load_tuning(directory: str | Path) -> Tuning:
    """A tuning directory's record and its arms' Optuna studies."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    directory = Path(directory)
    if not (directory / TUNING_FILE).is_file() or not (directory / JOURNAL_FILE).is_file():
        raise CheckpointError(f"{directory} is not a gridnoise tuning directory (no {TUNING_FILE} and {JOURNAL_FILE}): "
                              "run `gridnoise tune` into it first")
    record = read_json(directory / TUNING_FILE, TUNING_FILE)
    storage = JournalStorage(JournalFileBackend(str(directory / JOURNAL_FILE)))
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    studies = {name: optuna.load_study(study_name=name, storage=storage) for name in sorted(names)}
    return Tuning(directory, record, studies)


def best_so_far(study) -> tuple[list[int], list[float]]:
    """(trial numbers counted from 1, the best finished value up to each), from the first finished trial."""
    from optuna.trial import TrialState

    maximize = study.direction.name == "MAXIMIZE"
    best, xs, ys = math.nan, [], []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            better = math.isnan(best) or (trial.value > best if maximize else trial.value < best)
            best = trial.value if better else best
        if not math.isnan(best):
            xs.append(trial.number + 1)
            ys.append(best)
    return xs, ys


def importances(study) -> dict[str, float]:
    """Each searched setting's share of the objective's variance over the finished trials (fANOVA);
    empty with fewer than two finished trials."""
    import optuna
    from optuna.trial import TrialState

    if sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) < 2:
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError):  # e.g. every finished trial has the same settings
        return {}


def _colours(tuning: Tuning) -> dict[str, str]:
    """Each run's colour, as the study reports of the same runs draw it."""
    variants = tuning.record["variants"]
    return run_colours([{"name": r, "variant": variants[r]} for r in tuning.runs], tuning.record["baseline"])


def progress_limits(curves: list[tuple[list[int], list[float]]], from_trial: int = ZOOM_FROM_TRIAL
                    ) -> tuple[float, float] | None:
    """y-limits of one data set's best-so-far panel, given each run's (trials, best so far): every
    value from trial `from_trial` on is inside, and a first trial far worse than the rest is cut off
    above rather than squeezing the curves that matter into a line. None with no finished trial."""
    values = [y for _, ys in curves for y in ys]
    if not values:
        return None
    late = [y for xs, ys in curves for x, y in zip(xs, ys) if x >= from_trial] or [ys[-1] for _, ys in curves if ys]
    low, high = min(values), max(late)
    pad = 0.08 * (high - low) or 0.05 * abs(high) or 0.05
    return low - pad, high + pad


def progress_figure(tuning: Tuning, dest: Path) -> Path:
    """Best-so-far objective against trials: one panel per data set, one line per run, each panel
    from its lowest value to the highest best-so-far at trial ZOOM_FROM_TRIAL (`progress_limits`)."""
    datasets = tuning.datasets
    fig, axes = plt.subplots(1, len(datasets), figsize=(4 * len(datasets), 3.4), squeeze=False)
    colours = _colours(tuning)
    objective = tuning.record["objective"]
    for ax, dataset in zip(axes[0], datasets):
        curves = []
        for run in tuning.runs:
            study = tuning.studies.get(f"{run}/{dataset}")
            if study is None:
                continue
            xs, ys = best_so_far(study)
            curves.append((xs, ys))
            ax.step(xs, ys, where="post", color=colours[run], label=run)
        limits = progress_limits(curves)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.set_title(dataset)
        ax.set_xlabel("trial")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"best {objective} so far (validation)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, dest / PROGRESS_FIGURE)


def importance_figure(tuning: Tuning, dest: Path, found: dict[str, dict[str, float]]) -> Path | None:
    """Each arm's parameter importances as a table of colours: one panel per data set, a column per
    run and a row per searched setting, each cell's share written in it; grey where the run does not
    search that setting (or has too few finished trials)."""
    params = sorted({p for values in found.values() for p in values})
    if not params:
        return None
    datasets, runs = tuning.datasets, tuning.runs
    size = (2.2 + 0.55 * len(runs) * len(datasets), 1.6 + 0.4 * len(params))
    fig, axes = plt.subplots(1, len(datasets), figsize=size, squeeze=False, sharey=True, layout="constrained")
    cmap = plt.get_cmap("Blues").with_extremes(bad="#e6e6e6")
    for ax, dataset in zip(axes[0], datasets):
        shares = np.full((len(params), len(runs)), np.nan)  # (setting, run)
        for j, run in enumerate(runs):
            arm = found.get(f"{run}/{dataset}", {})
            shares[:, j] = [arm.get(p, np.nan) for p in params]
        ax.imshow(shares, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
        for (i, j), share in np.ndenumerate(shares):
            if not np.isnan(share):
                ax.text(j, i, f"{share:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if share > 0.6 else "black")
        ax.set_xticks(range(len(runs)), runs, rotation=60, ha="right", fontsize=8)
        ax.set_title(dataset)
    axes[0][0].set_yticks(range(len(params)), params, fontsize=8)
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap), ax=axes[0].tolist(), fraction=0.02, pad=0.01,
                 label="importance (fANOVA)")
    return save_figure(fig, dest / IMPORTANCE_FIGURE)


def tuning_report(tuning: Tuning, figures: list[Path], found: dict[str, dict[str, float]]) -> Report:
    """The report's sections: what was tuned and how, the per-arm table, the figures, the importances."""
    r = tuning.record
    t = r["tune"]
    objective = r["objective"]
    arms = tuning.arms()
    head = Section(None, [
        f"Every run tuned on every data set with the same budget: {tuning.budget} trials per run and "
        f"data set, each scored by `{objective}` on a validation draw of {t['validation_points']} points (neither "
        f"the training points nor the held-out draw), trained with tuning seeds {', '.join(map(str, t['seeds']))}. "
        f"Sampler: Optuna's {t['sampler']} (seed {t['seed']}); pruner: {t['pruner']}, the same report steps and "
        "rule for every run. The chosen settings are in `tuned.toml`; `gridnoise run tuned.toml` measures them on "
        "the experiment's own seeds and a fresh held-out draw, which is where runs are compared: a validation "
        "value here is the best of many tries and is biased low."])
    if not tuning.finished(arms):
        ended = sum(a["complete"] + a["pruned"] + a["fail"] for a in arms.values())
        running = sum(a["trials"] for a in arms.values()) - ended
        total = tuning.budget * len(tuning.runs) * len(tuning.datasets)
        head.blocks.append(
            f"**This tuning has not finished**: {ended} of its {total} trials have ended and {running} are running "
            "(or were, when a session was killed: `gridnoise tune` again resumes them). The tables and figures show "
            "the trials so far; the settings are the best so far, not yet chosen.")
    rows = []
    for name, arm in arms.items():
        settings = ", ".join(f"`{p}` = {fmt_setting(v)}" for p, v in arm.get("best_params", {}).items()) or "-"
        rows.append([*name.rsplit("/", 1), str(arm["trials"]), str(arm["complete"]), str(arm["pruned"]),
                     str(arm["fail"]), fmt(arm.get("best_value")), settings])
    table = Table(["Run", "Data set", "Trials", "Finished", "Pruned", "Failed", f"Best {objective}", "Chosen settings"],
                  rows)
    blocks: list = [table]
    blocks += [Figure(path, caption) for path, caption in zip(figures, (
        f"Best {objective} so far on the validation draw against trials, per data set (a flat line: no better "
        f"trial; the axis spans every value from trial {ZOOM_FROM_TRIAL} on, any worse start is cut off above)",
        "Parameter importances per run and data set (fANOVA over finished trials; grey: not searched by that "
        "run, or too few finished trials)"))]
    imp_rows = [[name, ", ".join(f"`{p}` {v:.2f}" for p, v in values.items()) or "-"] for name, values in found.items()]
    sections = [head, Section("Chosen settings", blocks)]
    if imp_rows:
        sections.append(Section("Parameter importances", [
            "Each searched setting's share of the variance of the objective over an arm's finished trials "
            "(fANOVA, Optuna's default); with few trials these are rough.", Table(["Arm", "Importances"], imp_rows)]))
    wall = r.get("wall_time")
    if wall:
        sections.append(Section("Cost", [f"Wall time of the tuning: {wall / 60:.1f} min, summed over the sessions "
                                         "it took (a killed session's up to its last finished round)."]))
    return Report(f"Tuning: {r['experiment']}", sections)


def write_tuning_outputs(directory: str | Path, dest: str | Path | None = None) -> Path:
    """Draw the tuning's figures and write report.md and report.html into `dest` (default: the tuning
    directory); returns report.md's path."""
    tuning = load_tuning(directory)
    dest = Path(dest) if dest is not None else tuning.directory
    dest.mkdir(parents=True, exist_ok=True)
    found = {name: importances(study) for name, study in tuning.studies.items()}
    figures = [progress_figure(tuning, dest)]
    drawn = importance_figure(tuning, dest, found)
    figures += [drawn] if drawn is not None else []
    report = tuning_report(tuning, figures, found)
    write_text(dest / "report.html", html.static_page(report))
    return write_text(dest / "report.md", markdown.render(report, dest))
