"""Shared fixtures: the Datasaurus table from ../shared/data, never from the network."""

from __future__ import annotations

from pathlib import Path

import pytest

DATASAURUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "DatasaurusDozen.tsv"


@pytest.fixture(autouse=True)
def _datasaurus_env(monkeypatch):
    if DATASAURUS.is_file():
        monkeypatch.setenv("GRIDNOISE_DATASAURUS", str(DATASAURUS))
