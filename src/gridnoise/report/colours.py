"""One colour per run, the same in every figure of every report (PNG and report.html alike).

A run's colour follows from the run itself, not its place in a study's list: the study's baseline
is always BASELINE_COLOUR; any other run takes its variant's colour (`VARIANT_COLOURS`, by the
variant's place among the presets, so a variant keeps its colour as presets are added; an unknown
variant by a stable hash of its name). Runs of one study that share a variant (a schedule study's
baseline-variant runs, say) are told apart by shades of that colour, handed out in the order of
their names: the first keeps the variant's own colour, so a run has the same colour in any study
with the same runs of its variant, whatever else the study holds and in whatever order.
"""

from __future__ import annotations

import zlib

import matplotlib.colors as mcolors

from gridnoise.presets import VARIANTS

BASELINE_COLOUR = "#3b3b3b"  # the reference every other run is compared with
# Distinct hues for the variants; none is the baseline's near-black.
RUN_PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#ccb974",
               "#64b5cd", "#1b9e77", "#e7298a", "#66a61e", "#a6761d", "#7570b3")
SHADES = (0.0, -0.35, 0.45, -0.6, 0.7)  # a shared variant's runs: towards black (< 0) or white (> 0)


def variant_colour(variant: str) -> str:
    """A variant's own colour: by its place among the presets, or by a stable hash of an unknown name."""
    names = list(VARIANTS)
    index = names.index(variant) if variant in names else zlib.crc32(variant.encode())
    return RUN_PALETTE[index % len(RUN_PALETTE)]


def _shade(colour: str, amount: float) -> str:
    """`colour` mixed with black (amount < 0) or white (amount > 0) by |amount|."""
    r, g, b = mcolors.to_rgb(colour)
    target = 1.0 if amount > 0 else 0.0
    return mcolors.to_hex((r + abs(amount) * (target - r), g + abs(amount) * (target - g),
                           b + abs(amount) * (target - b)))


def run_colours(runs: list[dict], baseline: str) -> dict[str, str]:
    """name -> colour of each run ({name, variant, ...}) of a study whose baseline run is `baseline`."""
    colours = {r["name"]: BASELINE_COLOUR for r in runs if r["name"] == baseline}
    by_variant: dict[str, list[str]] = {}
    for r in runs:
        if r["name"] != baseline:
            by_variant.setdefault(r["variant"], []).append(r["name"])
    for variant, names in by_variant.items():
        for k, name in enumerate(sorted(names)):
            colours[name] = _shade(variant_colour(variant), SHADES[k % len(SHADES)])
    return {r["name"]: colours[r["name"]] for r in runs}
