"""The package's version: its one home, read by `gridnoise.__version__`, the `--version` flag, run
provenance and the package's build metadata (pyproject.toml). CITATION.cff states the same number
(tests/test_citation.py checks it); CHANGELOG.md says what changed in each."""

__version__ = "0.2.0"
