"""A study's outputs from its saved results: summaries, figures, report.md and report.html.

`write_study_outputs` is what `gridnoise run`, `reproduce`, `evaluate`, `plot` and `report` and the
Python API's `run_experiment` all end with, so a study run from Python has the same files as one run
from the command line.
"""

from __future__ import annotations

from pathlib import Path

from gridnoise.errors import CheckpointError
from gridnoise.report.html import write_html_report
from gridnoise.report.markdown import write_report
from gridnoise.report.sections import study_data
from gridnoise.report.study_figures import make_figures
from gridnoise.study.floors import update_floors
from gridnoise.study.results import load_results, write_summaries


def write_study_outputs(study_dir: str | Path, dest: str | Path | None = None, *, report: bool = True,
                        redraw: bool = False, baseline: str | None = None, primary: str | None = None) -> Path:
    """Write a study's summaries (`results.csv`, `final_info.json`), its figures and, with `report`,
    `report.md` and `report.html` into `dest` (default: the study directory); returns report.md's
    path (with `report`) or `dest`. Each finished run's own figures are drawn where missing, or all
    of them with `redraw` (`gridnoise plot`). `baseline` names another of the study's runs to compare
    every run with in the report's tests and figures (e.g. a control: `gridnoise report --baseline`), and
    `primary` the metric its verdict is on instead of the experiment's primary (`--primary`)."""
    study_dir = Path(study_dir)
    results = load_results(study_dir)
    if not results.metrics:
        raise CheckpointError(f"{study_dir} has no finished task yet: run the study first")
    if baseline is not None:
        results = results.against(baseline)
    if primary is not None:
        results = results.judged_by(primary)
    if report:
        # The report needs every data set (dino's table too): fail before any file is written,
        # rather than after the figures were redrawn without their data overlay.
        study_data(results)
    write_summaries(results)
    if report:
        update_floors(results)  # what a perfect model scores: computed once per study, kept beside the results
    dest = Path(dest) if dest is not None else study_dir
    figures = make_figures(results, dest, only_missing_run_figures=not redraw)
    if not report:
        return dest
    written = write_report(results, dest, figures)
    write_html_report(results, dest, figures)  # the same report, interactive and self-contained
    return written
