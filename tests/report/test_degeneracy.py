"""Degenerate variants: grids that hold the same points together, and grids that never moved."""

import json
import shutil

import numpy as np
import torch
from test_sections import write_study

from gridnoise.data import load
from gridnoise.report.degeneracy import (
    INACTIVE_VARIANCE,
    cell_agreement,
    cell_labels,
    degeneracy_notes,
    inactive_grids,
    layouts_differ,
)
from gridnoise.report.sections import study_data
from gridnoise.study.results import load_results


def test_cell_agreement_is_one_for_the_same_partition_under_other_labels_and_low_for_unrelated_ones():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 10, 1000)
    assert cell_agreement(a, (a * 7 + 3) % 70) == 1.0  # relabelled: the same partition
    merged = a // 2  # two cells of `a` per cell: a determines it, not the other way round
    assert cell_agreement(a, merged) < 0.6
    assert cell_agreement(a, rng.integers(0, 10, 1000)) < 0.3
    # a small closed case: 4 points, b splits a's one cell in two -> 3 of 4 points in the largest overlaps
    assert cell_agreement(np.array([0, 0, 0, 1]), np.array([5, 5, 6, 7])) == 0.75


def test_circle_under_the_original_extent_puts_nearly_every_point_in_the_same_cells_of_both_grids():
    points = torch.from_numpy(load("circle", 20_000))
    extent = [-1.0, 1.0, -1.0, 1.0]
    ten, twenty = cell_labels(points, {"grid": 10}, extent), cell_labels(points, {"grid": 20}, extent)
    assert cell_agreement(ten, twenty) > 0.95  # the 10x10 and 20x20 grids: one grid on circle
    wide = [-4.5, 4.5, -4.5, 4.5]  # over the data's own extent the two grids tell the points apart
    assert cell_agreement(cell_labels(points, {"grid": 10}, wide), cell_labels(points, {"grid": 20}, wide)) < 0.9


def test_only_grids_that_differ_over_their_extent_can_be_one_grid_on_the_data():
    square = [-1.0, 1.0, -1.0, 1.0]
    assert layouts_differ(({"grid": 10}, square), ({"grid": 20}, square))
    assert layouts_differ(({"grid": 10}, square), ({"grid": 10}, [-4.5, 4.5, -4.5, 4.5]))
    # a multi-scale grid's 20x20 fine cells nest in its 5x5 coarse ones: the plane cut as a 20x20 grid cuts it
    assert not layouts_differ(({"grid": 20}, square), ({"coarse": 5, "fine": 20}, square))
    assert layouts_differ(({"grid": 10}, square), ({"coarse": 5, "fine": 20}, square))


def test_degenerate_runs_and_inactive_grids_are_flagged_in_the_verdict(tmp_path):
    from gridnoise.report.markdown import write_report

    out = write_study(tmp_path / "study")
    for path in out.glob("noisy/moons/seed_*/metrics.json"):  # an L1 penalty pinned the fine grid at g = 1
        metrics = json.loads(path.read_text())
        metrics["fine_grid_variance"] = 1e-17
        path.write_text(json.dumps(metrics))
    results = load_results(out)
    assert inactive_grids(results, "noisy", "moons") == [("fine grid", 1e-17)]
    assert inactive_grids(results, "noisy", "circle") == []  # variance 1e-4: active
    notes = degeneracy_notes(results, study_data(results))
    assert any(n.startswith("same cells as noisy") for n in notes[("good", "circle")])
    assert not any("same cells" in n for n in notes.get(("good", "moons"), []))
    assert notes[("noisy", "moons")] == [f"fine grid inactive (variance at most 1.0e-17 < {INACTIVE_VARIANCE:g}): "
                                         "a model without it"]
    text = write_report(results, out, []).read_text()
    noisy = next(ln for ln in text.split("### Verdict on")[1].splitlines() if ln.startswith("| noisy "))
    assert "moons: fine grid inactive" in noisy and "circle: same cells as good" in noisy
    shutil.rmtree(out / "good/circle/seed_0/grids")  # no snapshot of its first seed: no cells to compare
    notes = degeneracy_notes(results, study_data(results))
    assert not any("same cells" in n for n in notes.get(("good", "circle"), []))
