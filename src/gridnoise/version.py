"""The package's version: its one home, read by `gridnoise.__version__`, the `--version` flag, run
provenance and the package's build metadata (pyproject.toml)."""

__version__ = "0.1.0"
