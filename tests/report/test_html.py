"""report.html: a tiny real study's page, checked as a file (self-contained) and in real headless
Chromium driven by Selenium (plots drawn, no console errors, the grid slider moves the grid); and its
interactive figures as plotly JSON from studies written from known inputs (forest intervals and
missing rows, clipped samples, the clamped region of a grid)."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from gridnoise import rundir
from gridnoise.report.claims import study_tests
from gridnoise.report.colours import run_colours
from gridnoise.report.forest import HOLM_BAR, PLAIN_LINE
from gridnoise.report.html import (
    HOLM_BAR_WIDTH,
    forest_figure,
    fragment,
    grid_figure,
    inline,
    samples_figure,
    significant,
)
from gridnoise.report.run_figures import overlay_points
from gridnoise.report.stats import holm_interval
from gridnoise.report.views import CLAMPED_NOTE, grid_view, sample_view
from gridnoise.study.results import load_results

from conftest import LOAD_TIMEOUT, gridnoise, make_study, study_file, write_evaluations

RUNS = """[runs.base]
variant = "baseline"
[runs.grid]
label = "10x10 Grid"
variant = "grid10_data"
[runs.multi]
label = "Multi-scale"
variant = "multiscale"
"""
T = 20  # TINY_STUDY's num_timesteps


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A real tiny study (3 runs, 2 data sets, 2 seeds, 20 steps) with the report its run wrote."""
    root = tmp_path_factory.mktemp("html")
    experiment = study_file(root / "e.toml", "html", ["moons", "rings"], [0, 1], RUNS)
    gridnoise("run", experiment, "--out", root / "study", "--workers", 1, "--no-progress")
    return root / "study"


class Tags(HTMLParser):
    """Every start tag's name and attributes (script bodies are not parsed as HTML)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_inline_markdown_is_escaped_and_converted():
    assert inline("**a** <b> & `x<*y*>` *i* 2 * 3") == \
        "<strong>a</strong> &lt;b&gt; &amp; <code>x&lt;*y*&gt;</code> <em>i</em> 2 * 3"
    assert inline(r"\*not\* [docs](https://e.org/a?b=1&c=2) [x](javascript:alert(1))") == \
        '*not* <a href="https://e.org/a?b=1&amp;c=2">docs</a> x'
    assert fragment("**Better:** \n\n- a `b`\n- c\n\none\ntwo") == \
        "<p><strong>Better:</strong></p>\n<ul><li>a <code>b</code></li><li>c</li></ul>\n<p>one two</p>"
    assert significant([1.000213, 0.0123456, 123456.0, 0.0]) == [1.0002, 0.012346, 123460.0, 0.0]


def test_report_html_is_self_contained(report_dir):
    page = (report_dir / "report.html").read_text()
    parser = Tags()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert not (tag == "script" and "src" in attrs), attrs  # every script inline
        assert tag not in ("iframe", "object", "embed"), tag
        for key in ("src", "href"):
            url = attrs.get(key) or ""
            assert not url.lower().startswith(("http:", "https:", "//")) or tag == "a", (tag, attrs)
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
    assert page.count("* plotly.js v") == 1  # plotly.js inlined once
    # the first screen, as in report.md: the question, the primary metric, the verdict, its forest plot
    first = page.split("</nav>")[1].split("<h2")[1]
    assert first.startswith(' id="verdict">Verdict</h2>') and "<strong>Question.</strong>" in first
    assert "Primary metric: Wasserstein-2" in first and "Verdict on Wasserstein-2" in first
    assert 'id="plot-primary"' in first and "<img" not in first  # the forest plot, interactive
    second = page.split("</nav>")[1].split("<h2")[2]
    assert second.startswith(' id="secondary-metrics-at-a-glance-interactive"')
    assert sum(tag == "img" for tag, _ in parser.tags) >= 3  # the study's PNG figures, inlined
    assert len(page) < 8e6


def _wait(driver, script: str, timeout: float = LOAD_TIMEOUT):
    """The first truthy value of `script` (a JS expression), polled."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {script}")


def _heatmap(driver, div_id: str) -> list:
    return driver.execute_script(f"return document.getElementById('{div_id}').data[0].z;")


def test_report_html_in_headless_chromium(report_dir, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from gridnoise import rundir

    page = report_dir / "report.html"
    browser.get(page.as_uri())
    drawn = int(_wait(browser, "document.body.getAttribute('data-plots-ready')"))
    timing = browser.execute_script("var t = performance.timing; return t.loadEventEnd - t.navigationStart;")
    print(f"report.html: {page.stat().st_size / 1e6:.2f} MB, loaded in {timing} ms, {drawn} plots")

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
    assert all(r.startswith(("file:", "data:", "blob:")) for r in resources), resources  # nothing from a network

    plots = browser.execute_script(
        "return Array.from(document.querySelectorAll('div.plot')).map(d => [d.id, d.classList.contains("
        "'js-plotly-plot') && !!d._fullLayout && d.querySelectorAll('.main-svg').length > 0, "
        "d.data.map(t => t.name || '')]);")
    # one forest plot per compared sample metric, one sample plot per data set, one grid plot per grid run and data set
    assert drawn == len(plots) >= 2 + 2 + 2 * 2
    assert all(ok for _, ok, _ in plots), [p for p in plots if not p[1]]
    names = {div: names for div, _, names in plots}
    forests = [n for div, n in names.items() if div.startswith("plot-0-") or div == "plot-primary"]
    samples = [n for div, n in names.items() if div.startswith("plot-1-")]
    grids = [div for div in names if div.startswith("plot-2-")]
    assert len(samples) == 2 and len(grids) == 4 and len(forests) >= 2
    for traces in forests:
        assert any(n.startswith("grid ") for n in traces) and any(n.startswith("multi ") for n in traces)
    for traces in samples:
        assert {"base", "grid", "multi"} <= {n.split(" ")[0] for n in traces}

    # the last grid plot: multi on rings (two grids); its heatmaps are the grids' values at t, transposed
    div = grids[-1]
    snapshot = rundir.final_snapshot(report_dir / "multi" / "rings" / "seed_0")
    _, values, _ = rundir.read_grid_snapshot(snapshot, rundir.read_config(snapshot.parent.parent))
    coarse = values["coarse_grid"]
    assert coarse.shape[0] == T
    before = _heatmap(browser, div)
    browser.execute_script(f"window.zBefore = JSON.stringify(document.getElementById('{div}').data[0].z);")
    assert np.allclose(before, coarse[0].T, rtol=1e-4)
    assert browser.execute_script(f"return document.getElementById('{div}').layout.sliders[0].steps.length;") == T

    # drag the slider: click its rail three quarters along, as a user would
    rail = browser.find_element(By.CSS_SELECTOR, f"#{div} .slider-rail-touch-rect")
    ActionChains(browser).move_to_element_with_offset(rail, rail.size["width"] // 4, 0).click().perform()
    active = _wait(browser, f"document.getElementById('{div}')._fullLayout.sliders[0].active")
    after = _wait(browser, f"JSON.stringify(document.getElementById('{div}').data[0].z) != window.zBefore && "
                           f"document.getElementById('{div}').data[0].z")
    assert active > T // 2 and np.allclose(after, coarse[active].T, rtol=1e-4)
    assert not np.allclose(after, before)

    # and through plotly's own animation call, to the last timestep
    browser.execute_async_script(
        f"var done = arguments[0]; Plotly.animate('{div}', ['{T - 1}'], {{mode: 'immediate', "
        "frame: {duration: 0, redraw: true}, transition: {duration: 0}}).then(function () { done(); });")
    assert np.allclose(_heatmap(browser, div), coarse[T - 1].T, rtol=1e-4)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def data_of(study, dataset: str) -> np.ndarray:
    """The data points the page draws behind a data set's samples and over its grids."""
    cfg = rundir.read_config(study.run_dir(study.baseline, dataset, 0))
    return overlay_points(dataset, cfg.data_seed, cfg.data)


def test_html_forest_draws_both_intervals_and_says_why_a_row_is_empty(tmp_path):
    study = load_results(write_evaluations(make_study(tmp_path / "s", seeds=(0, 1, 2), datasets=("moons",))))
    colours = run_colours(study.runs, study.baseline)
    for metric in ("kl_divergence", "nll_ode"):
        payload = forest_figure(study, metric)
        assert HOLM_BAR in payload["layout"]["title"]["text"] and PLAIN_LINE in payload["layout"]["title"]["text"]
        traces = payload["data"]
        for (run, _), (test, p) in {k: (c.test, c.p_holm) for k, c in study_tests(study)[metric].items()}.items():
            (marker,) = [t for t in traces if t.get("name") == f"{run} {study.label(run)}"]
            (bar,) = [t for t in traces if t.get("name") == HOLM_BAR and t["y"][0] == marker["y"][0]]
            assert list(bar["x"]) == pytest.approx(holm_interval(test, p, 0.05))  # the thick bar
            assert bar["line"]["width"] == HOLM_BAR_WIDTH and bar["line"]["color"] == colours[run]
            error = marker["error_x"]  # the thin line: the unadjusted 95% interval
            assert [test.mean_diff - error["arrayminus"][0], test.mean_diff + error["array"][0]] == pytest.approx(
                [test.ci_lo, test.ci_hi])
            assert marker["marker"]["color"] == colours[run]
    notes = [a["text"] for a in payload["layout"]["annotations"] if a["text"].startswith("<i>")]
    assert notes == ["<i>the flow slides along cell edges (10% of points on 2 of 3 seeds), not invertible</i>"]
    placeholder = [t for t in payload["data"] if t["y"] == ["good 10x10 Grid"]]  # good's row, with no value
    assert len(placeholder) == 1 and "slides along cell edges" in placeholder[0]["hovertemplate"]
    bound = forest_figure(study, "nll_elbo")
    assert [a["text"] for a in bound["layout"]["annotations"] if a["text"].startswith("<i>")] == [
        "<i>not evaluated on moons</i>"]


def test_html_samples_span_the_data_and_clip_a_diverging_sampler(tmp_path):
    root = make_study(tmp_path / "s", seeds=(0,), datasets=("moons",))
    blown = np.random.default_rng(1).normal(size=(200, 2)) * 1000
    rundir.write_samples(rundir.task_dir(root, "noisy", "moons", 0), blown)
    study = load_results(root)
    payload = samples_figure(study, "moons", {})
    view = sample_view(data_of(study, "moons"), [])
    layout = payload["layout"]
    assert layout["xaxis"]["range"] == pytest.approx(list(view[:2])) and layout["yaxis"]["range"] == pytest.approx(
        list(view[2:]))
    assert layout["xaxis"]["range"][1] - layout["xaxis"]["range"][0] < 20  # the data's extent, not +-1000
    (edge,) = [t for t in payload["data"] if t["name"].endswith("beyond the axes")]
    assert edge["marker"]["symbol"] == "triangle-up" and len(edge["x"]) == 200 - len(
        next(t for t in payload["data"] if t["name"] == "noisy Multi-scale")["x"])
    (x0, x1), (y0, y1) = layout["xaxis"]["range"], layout["yaxis"]["range"]
    at = np.column_stack([edge["x"], edge["y"]])
    on_edge = np.isclose(at[:, 0], x0, atol=0.01) | np.isclose(at[:, 0], x1, atol=0.01) | np.isclose(
        at[:, 1], y0, atol=0.01) | np.isclose(at[:, 1], y1, atol=0.01)  # the page rounds to 3 digits
    assert on_edge.all() and (at[:, 0] > x0 - 0.01).all() and (at[:, 1] < y1 + 0.01).all()
    assert max(abs(c) for xy in edge["customdata"] for c in xy) > 100  # hover: where they really are
    titles = [a["text"] for a in layout["annotations"]]
    assert titles[2].endswith(f"{len(edge['x'])} of 200 beyond the axes, clipped (\u25b2)")
    assert not any("beyond" in t for t in titles[:2])  # base and good stay inside


def test_html_grid_spans_the_data_and_marks_the_clamped_region(tmp_path):
    root = make_study(tmp_path / "s", seeds=(0,), datasets=("moons", "line"))
    wide = rundir.task_dir(root, "good", "line", 0)  # its grid now covers the data: nothing clamped
    _, grids, _ = rundir.read_grid_snapshot(rundir.final_snapshot(wide), rundir.read_config(wide))
    rundir.write_grid_snapshot(wide, 500, 3, grids, np.array([-10.0, 10.0, -10.0, 10.0], np.float32))
    study = load_results(root)
    clamped = grid_figure(study, "good", "moons", {})
    view = grid_view([-1, 1, -1, 1], data_of(study, "moons"))
    assert view[0] < -2 and view[1] > 3  # the moons reach well beyond the grid's [-1, 1]^2
    assert clamped["layout"]["xaxis"]["range"] == pytest.approx(list(view[:2]))  # the data's extent
    assert clamped["layout"]["yaxis"]["range"] == pytest.approx(list(view[2:]))
    assert clamped["data"][0]["type"] == "heatmap" and clamped["data"][0]["x0"] == pytest.approx(-0.9)
    (hatch,) = [t for t in clamped["data"] if t.get("name") == CLAMPED_NOTE]
    assert hatch["fill"] == "toself" and hatch["fillpattern"]["shape"] == "/"
    (outline,) = clamped["layout"]["shapes"]
    assert (outline["x0"], outline["x1"], outline["y0"], outline["y1"]) == (-1.0, 1.0, -1.0, 1.0)
    assert CLAMPED_NOTE in clamped["layout"]["title"]["text"]
    covered = grid_figure(study, "good", "line", {})
    assert covered["layout"]["xaxis"]["range"] == [-10.0, 10.0]
    assert not [t for t in covered["data"] if t.get("name") == CLAMPED_NOTE] and not covered["layout"].get("shapes")
    assert CLAMPED_NOTE not in covered["layout"]["title"]["text"]


def test_a_one_seed_page_opens_with_the_reproduction_and_draws_no_forest(tmp_path):
    from test_sections import write_study

    from gridnoise.report.html import write_html_report

    out = write_study(tmp_path / "study", seeds=(0,))
    page = write_html_report(load_results(out), out, []).read_text()
    first = page.split("</nav>")[1].split("<h2")[1]
    assert first.startswith(' id="is-the-original-study-reproduced">Is the original study reproduced?</h2>')
    assert "What one seed cannot tell." in first
    assert "plot-primary" not in page and "Secondary metrics at a glance" not in page
