"""report.html: a tiny real study's page, checked as a file (self-contained) and in real headless
Chromium driven by Selenium (plots drawn, no console errors, the grid slider moves the grid)."""

from __future__ import annotations

import os
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from gridnoise.report.html import fragment, inline, significant

from conftest import gridnoise, study_file

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = ("headless Chromium is not installed: as root, `apt-get update && apt-get install -y chromium "
           "chromium-driver` (Debian's packages; scripts/install_browser.sh, which scripts/test.sh runs)")
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync")
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
LOAD_TIMEOUT = 60  # seconds for the page and its plots on a busy machine


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    """A real tiny study (3 runs, 2 data sets, 2 seeds, 20 steps) and its report in `docs/`."""
    root = tmp_path_factory.mktemp("html")
    experiment = study_file(root / "e.toml", "html", ["moons", "rings"], [0, 1], RUNS)
    gridnoise("run", experiment, "--out", root / "study", "--workers", 1, "--no-progress")
    gridnoise("report", root / "study", "--dest", root / "docs")
    return root


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        if os.environ.get("GRIDNOISE_REQUIRE_BROWSER"):  # scripts/test.sh (and so CI) installed it
            pytest.fail(INSTALL)
        pytest.skip(INSTALL)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS + (f"--user-data-dir={tmp_path_factory.mktemp('chrome')}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)  # never selenium-manager
    driver.set_script_timeout(LOAD_TIMEOUT)
    yield driver
    driver.quit()


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
    page = (report_dir / "docs" / "report.html").read_text()
    assert (report_dir / "docs" / "report.md").is_file() and (report_dir / "study" / "report.html").is_file()
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

    page = report_dir / "docs" / "report.html"
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
    forests = [n for div, n in names.items() if div.startswith("plot-0-")]
    samples = [n for div, n in names.items() if div.startswith("plot-1-")]
    grids = [div for div in names if div.startswith("plot-2-")]
    assert len(samples) == 2 and len(grids) == 4 and len(forests) >= 2
    for traces in forests:
        assert any(n.startswith("grid ") for n in traces) and any(n.startswith("multi ") for n in traces)
    for traces in samples:
        assert {"base", "grid", "multi"} <= {n.split(" ")[0] for n in traces}

    # the last grid plot: multi on rings (two grids); its heatmaps are the grids' values at t, transposed
    div = grids[-1]
    snapshot = rundir.final_snapshot(report_dir / "study" / "multi" / "rings" / "seed_0")
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
