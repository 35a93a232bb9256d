"""Renders a report's sections (`gridnoise.report.sections`) as Markdown. Another renderer (HTML, say)
walks the same `Report`: text blocks are short Markdown fragments, tables are rows of cells."""

from __future__ import annotations

import os
from pathlib import Path

from gridnoise.files import write_text
from gridnoise.report.blocks import Block, Figure, Report, Section, Table
from gridnoise.report.sections import report_sections
from gridnoise.study.results import StudyResults


def table(t: Table) -> str:
    """A Markdown table, under a `### title` when it has one."""
    lines = ["| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(row) + " |" for row in t.rows]
    text = "\n".join(lines)
    return f"### {t.title}\n\n{text}" if t.title else text


def block(b: Block, dest: Path) -> str:
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Figure):  # linked relative to the report's directory
        return f"![{b.caption}]({Path(os.path.relpath(Path(b.path).resolve(), dest.resolve())).as_posix()})"
    return b


def section(s: Section, dest: Path) -> str:
    """`## title` and the blocks, one blank line apart; a section with nothing to say is empty."""
    if s.title is None and not s.blocks:
        return ""
    parts = ([f"## {s.title}"] if s.title is not None else []) + [block(b, dest) for b in s.blocks]
    return "\n\n".join(parts)


def render(report: Report, dest: Path) -> str:
    """The whole report as Markdown; figure links are relative to `dest`, where it is written."""
    return "\n\n".join([f"# {report.title}"] + [text for s in report.sections if (text := section(s, dest))]) + "\n"


def write_report(results: StudyResults, dest: str | Path, figures: list[Path]) -> Path:
    """Write `dest/report.md` from a study's saved results, linking `figures` relative to `dest`."""
    dest = Path(dest)
    return write_text(dest / "report.md", render(report_sections(results, figures), dest))
