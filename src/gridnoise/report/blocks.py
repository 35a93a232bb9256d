"""The building blocks of a report (sections of text, tables and figures) and the formatting and
testing every section shares; `gridnoise.report.sections` builds the sections, `gridnoise.report.markdown` and
`gridnoise.report.html` render them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gridnoise.report.stats import PairedResult, confidence_interval, holm, paired_comparison


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]  # formatted cells, one list per row
    title: str = ""  # a sub-heading above the table


@dataclass
class Figure:
    path: Path  # a PNG file
    caption: str


Block = str | Table | Figure


@dataclass
class Section:
    title: str | None  # None: no heading
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section]


ALPHA = 0.05  # family-wise significance level after Holm's correction
DIGITS = 3  # decimals of metric values in the tables
PERCENT_DIGITS = 1  # decimals of relative changes


def fmt(x: float | None, digits: int = DIGITS) -> str:
    """A number with `digits` decimals; scientific when tiny or huge, "-" when missing."""
    if x is None or math.isnan(x):
        return "-"
    if x != 0 and digits > 0 and (abs(x) < 10 ** -digits or abs(x) >= 10**5):
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def fmt_setting(value) -> str:
    """A config setting's value in a sentence or table: floats to 3 significant digits (a learning
    rate of 4.1e-4 stays readable), anything else as Python prints it."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def fmt_percent(fraction: float) -> str:
    """A relative change as a signed percentage, "-" when undefined."""
    return "-" if math.isnan(fraction) else f"{100 * fraction:+.{PERCENT_DIGITS}f}%"


def fmt_ci(values: Sequence[float], digits: int = DIGITS) -> str:
    """`mean [lo, hi]` (95% t-interval); just the mean with a single value."""
    mean, lo, hi = confidence_interval(values)
    return fmt(mean, digits) if math.isnan(lo) else f"{fmt(mean, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def paired_tests(pairs: dict) -> dict:
    """key -> (PairedResult, Holm-adjusted p) for each key's ({seed: reference}, {seed: other}) pair
    that has values on both sides; Holm runs over all of them together."""
    tests = {key: paired_comparison(reference, other) for key, (reference, other) in pairs.items()
             if reference and other}
    adjusted = holm([t.p_value for t in tests.values()])
    return {key: (test, p) for (key, test), p in zip(tests.items(), adjusted)}


def verdict(test: PairedResult, adjusted_p: float, lower_is_better: bool = True) -> str:
    """`better*` / `worse*` when significant after Holm at ALPHA, `n.s.` otherwise, `n/a` without a test."""
    if test.n == 0:
        return "n/a (no common seed)"
    if test.n == 1:
        return "n/a (1 seed)"
    if math.isnan(adjusted_p):
        return "n/a"
    if adjusted_p >= ALPHA:
        return "n.s."
    improved = (test.mean_diff < 0) == lower_is_better
    return "better*" if improved else "worse*"
