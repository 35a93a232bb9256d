"""A run's colour is its own: the same in every study that holds it, whatever else the study holds
and in whatever order, and the same in the PNG figures and report.html."""

import json
import shutil

import matplotlib.colors as mcolors

from gridnoise import rundir
from gridnoise.report import html
from gridnoise.report.colours import BASELINE_COLOUR, run_colours, variant_colour
from gridnoise.report.study_figures import forest_figure
from gridnoise.study.results import load_results

from conftest import make_study


def run(name: str, variant: str) -> dict:
    return {"name": name, "label": name.title(), "variant": variant}


def test_a_run_keeps_its_colour_in_another_study():
    first = [run("base", "baseline"), run("grid", "grid10"), run("multi", "multiscale"),
             run("cosine", "baseline"), run("sigmoid", "baseline")]
    second = [run("multi", "multiscale"), run("sigmoid", "baseline"), run("l1", "multiscale_l1"),
              run("base", "baseline"), run("cosine", "baseline")]
    a, b = run_colours(first, "base"), run_colours(second, "base")
    assert list(b) == [r["name"] for r in second]
    assert {name: a[name] for name in b if name in a} == {name: b[name] for name in a if name in b}
    assert a["base"] == BASELINE_COLOUR and a["grid"] == variant_colour("grid10")
    assert len(set(a.values())) == len(a) and len(set(b.values())) == len(b)  # runs sharing a variant differ
    assert a["cosine"] == variant_colour("baseline") != a["sigmoid"]  # the first by name keeps the variant's own
    alone = run_colours([run("ref", "grid10"), run("grid", "grid10")], "ref")  # another baseline run
    assert alone == {"ref": BASELINE_COLOUR, "grid": a["grid"]}
    assert variant_colour("a plug-in's variant") == variant_colour("a plug-in's variant")  # stable when unknown


def test_figures_colour_a_run_alike_in_two_studies(tmp_path):
    """The same run in two studies with different run lists and orders: one colour in the PNG forest
    plots of both and in report.html's."""
    root = make_study(tmp_path / "a", seeds=(0, 1))
    other = tmp_path / "b"
    shutil.copytree(root, other)
    record = json.loads((other / rundir.EXPERIMENT_FILE).read_text())
    record["runs"] = [r for r in reversed(record["runs"]) if r["name"] != "good"]  # noisy, base
    (other / rundir.EXPERIMENT_FILE).write_text(json.dumps(record))
    drawn = []
    for study in (load_results(root), load_results(other)):
        ax = forest_figure(study, "kl_divergence").axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        marker = ax.containers[labels.index("Multi-scale")].lines[0]
        drawn.append(mcolors.to_hex(marker.get_color()))
        page = html.forest_figure(study, "kl_divergence")
        drawn += [t["marker"]["color"] for t in page["data"] if t.get("name") == "noisy Multi-scale"]
    assert len(drawn) == 2 * (1 + 2) and len(set(drawn)) == 1  # per study: a PNG marker, an html one per data set
