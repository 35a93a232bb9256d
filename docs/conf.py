"""Sphinx configuration of gridnoise's documentation site (docs/design.md says why these tools).

Build it with `sphinx-build -W --keep-going -n docs docs/_build/html` (tests/docs does, warnings as
errors). Pages are Markdown (MyST); the quick-start notebook is rendered by MyST-NB from
examples/ without running it (tests/test_notebook.py runs it); the reference pages are generated
from the code by autodoc and by the extension in docs/_ext/gridnoise_docs.py.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

from gridnoise.version import __version__  # noqa: E402

project = "gridnoise"
author = "the gridnoise authors"
release = version = __version__

extensions = [
    "myst_nb",  # MyST Markdown pages, and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "gridnoise_docs",  # the CLI, configuration, metric, variant and API reference pages
]
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = f"gridnoise {release}"
html_static_path: list[str] = []
smartquotes = False  # text stays as typed: `--flag` keeps two hyphens, help texts their quotes
default_role = "literal"  # docstrings write `name` for code, as Markdown does

myst_heading_anchors = 3  # [text](page.md#a-heading) resolves, and a broken one is a warning
nb_execution_mode = "off"  # the notebook is committed without outputs; the tests run it
suppress_warnings = ["mystnb.unknown_mime_type"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_inherit_docstrings = False  # torch's nn.Module.forward docstring is not ours to show
nitpicky = True  # every cross-reference must resolve; the exceptions, each for a reason:
nitpick_ignore_regex = [
    # The build runs offline (no intersphinx inventories), so types of the standard library and of
    # third-party packages are named in signatures but not linked.
    ("py:class", r"(pathlib|numpy|torch|pandas|matplotlib|typing|collections\.abc)\..*"),
    # Internal types that public signatures mention; not part of the documented API (docs/design.md).
    ("py:class", r"gridnoise\.(study\.cluster\.Cluster|diffusion\.NoiseSchedule|schedulers\.SchedulerOutput|"
                 r"adaptation\.Grid)"),
]

# The notebook lives with the examples; the site renders a copy (docs/_generated is not committed).
NOTEBOOK = DOCS.parent / "examples" / "quickstart.ipynb"
GENERATED = DOCS / "_generated"


def copy_notebook(app) -> None:
    """Copy the quick-start notebook into the source tree, only when it changed (an unchanged copy
    keeps an incremental build incremental)."""
    target = GENERATED / NOTEBOOK.name
    if not target.is_file() or target.read_bytes() != NOTEBOOK.read_bytes():
        GENERATED.mkdir(exist_ok=True)
        shutil.copyfile(NOTEBOOK, target)


def setup(app):
    app.connect("builder-inited", copy_notebook)
