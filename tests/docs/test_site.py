"""The documentation site (docs/): built from scratch by the real sphinx-build with warnings as errors
(broken links, references and docstrings fail it), every link of every page resolved in the build,
every page opened in real headless Chromium, and the generated reference pages checked against the
code's own lists of commands, options, settings, metrics, variants and public names."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import html
import os
import re
import subprocess
import sys
import time
import typing
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import gridnoise
from gridnoise.cli import build_parser
from gridnoise.config import RunConfig
from gridnoise.data import DATASETS
from gridnoise.plugins import ADAPTATIONS
from gridnoise.presets import VARIANTS
from gridnoise.registry import METRICS, SAMPLERS
from gridnoise.study.cluster import SlurmSettings
from gridnoise.study.search import TuneSettings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
RECIPE = REPO / "examples" / "slurm" / "dask-cluster.sbatch"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module: `sphinx-build -W --keep-going -n` from a clean output
    directory, as a fresh clone builds it."""
    out = tmp_path_factory.mktemp("site")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    print(f"sphinx-build: {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out / "html"


def pages(site: Path) -> list[Path]:
    """Every HTML page of the site (not the downloads: the studies' own report.html files)."""
    return sorted(p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_downloads"))


def rows(page: Path) -> dict[str, list[str]]:
    """Each table row with an id on `page`: id -> the text of its cells."""
    text = page.read_text()
    return {m[1]: [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                   for c in re.findall(r"<td[^>]*>(.*?)</td>", m[2], re.S)]
            for m in re.finditer(r'<tr [^>]*\bid="([^"]+)"[^>]*>(.*?)</tr>', text, re.S)}


@functools.cache
def ids(page: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page.read_text()))


def anchor(name: str) -> str:
    """The id the reference pages give `name` (docutils' make_id)."""
    from docutils.nodes import make_id

    return make_id(name)


def test_every_source_page_is_built(site):
    sources = [p for p in DOCS.rglob("*.md") if not p.relative_to(DOCS).parts[0].startswith("_")]
    built = {p.relative_to(site).with_suffix("") for p in pages(site)}
    missing = [p for p in sources if p.relative_to(DOCS).with_suffix("") not in built]
    assert not missing and Path("_generated/quickstart") in built, missing  # and the notebook
    assert (site / "index.html").read_text().count("What it found") >= 1  # the README is the front page


def test_every_link_and_image_resolves_in_the_build(site):
    """Every relative href and src of every page names a file of the build, and every #fragment an id
    on its page: links between pages, figures, and the studies' report.html files."""
    broken, reports = [], set()
    for page in pages(site):
        text = page.read_text()
        for url in re.findall(r'(?:href|src)="([^"]+)"', text):
            parts = urlsplit(html.unescape(url))
            if parts.scheme or url.startswith(("//", "mailto:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.is_file():
                broken.append((page.name, url))
            elif parts.fragment and target.suffix == ".html" and parts.fragment not in ids(target):
                broken.append((page.name, url))
            elif target.name == "report.html" and "_downloads" in target.parts:
                reports.add(target.read_bytes())
    assert not broken, broken
    studies = {p.read_bytes() for p in DOCS.rglob("report.html") if not p.relative_to(DOCS).parts[0].startswith("_")}
    assert studies and reports == studies  # each documented study's (and tuning's) report.html is linked, as written


def test_the_cli_reference_lists_every_command_and_option(site):
    page = site / "reference" / "cli.html"
    found, listed = ids(page), rows(page)

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]):
        key = " ".join(path) or "gridnoise"
        assert f"cli-{anchor(key)}" in found, key
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif action.help != argparse.SUPPRESS:
                option = action.option_strings[-1] if action.option_strings else action.dest
                row = listed[f"cli-{anchor(key)}-{anchor(option)}"]
                assert all(s in row[0] for s in action.option_strings), (key, option, row)
                assert bool(row[1]) == bool(action.help), (key, option, row)  # its help

    walk(build_parser(), ())


def _settings(cls: type, prefix: str) -> list[str]:
    """The dotted key of every setting of `cls`, its tables' settings included."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out += _settings(hint, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def test_the_config_reference_lists_every_setting_with_its_default_and_comment(site):
    listed = rows(site / "reference" / "config.html")
    settings = _settings(RunConfig, "") + _settings(TuneSettings, "tune.") + _settings(SlurmSettings, "cluster.")
    assert len(settings) > 80
    for key in settings:
        row = listed.get(f"config-{anchor(key)}")
        assert row is not None, f"{key} is not on the configuration page"
        assert row[0] == key and row[2] and row[3], (key, row)  # its default, and what it does
    lr = listed["config-train-lr"]
    assert lr[2] == "0.0003" and "AdamW" in lr[3]  # the default and the comment beside it in config.py
    assert listed["config-cluster-maximum-jobs"][2] == "10"


def test_the_metric_and_variant_references_list_every_one(site):
    metrics = rows(site / "reference" / "metrics.html")
    for name, metric in METRICS.items():
        row = metrics[f"metric-{anchor(name)}"]
        assert row[0] == name and row[1] == metric.title and metric.description.replace("`", "") in row[-1], row
    variants = rows(site / "reference" / "variants.html")
    for name, preset in VARIANTS.items():
        row = variants[f"variant-{anchor(name)}"]
        assert row[0] == name and row[1].split(",")[0] == preset["kind"], row
    for kind, cls in ADAPTATIONS.items():
        assert variants[f"kind-{anchor(kind)}"][:2] == [kind, cls.__name__]
    for name in SAMPLERS:
        assert f"sampler-{anchor(name)}" in variants
    datasets = (site / "reference" / "datasets.html").read_text()
    assert all(f'<span class="pre">{name}</span>' in datasets for name in DATASETS)


def test_the_api_reference_documents_every_public_name(site):
    page = site / "reference" / "api.html"
    found = ids(page)
    assert {f"gridnoise.{name}" for name in gridnoise.__all__} <= found
    assert "gridnoise.Run.sample" in found and "gridnoise.DDPMScheduler.step" in found  # members too
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
    assert "of a named variant, with any settings on top." in text  # make_config's docstring


def test_the_slurm_page_shows_the_sbatch_recipe_as_it_is(site):
    """The recipe the cluster tests submit (tests/study/test_cluster.py) is the one the page shows."""
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "how-to" / "slurm.html").read_text()))
    assert RECIPE.read_text().strip() in text


def test_every_page_opens_in_headless_chromium_without_console_errors(site, browser):
    opened = 0
    for page in pages(site):
        browser.get(page.as_uri())
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, (page, severe)
        state = browser.execute_script(
            "return [document.readyState, document.querySelectorAll('article h1').length, "
            "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)];")
        assert state[0] == "complete" and state[2] == [], (page, state)
        assert state[1] == 1 or page.name in ("genindex.html", "search.html"), (page, state)
        opened += 1
    assert opened >= 30
