#!/usr/bin/env bash
# Create .venv and install gridnoise into it. torch==2.13.0 goes first so that the
# project's torch range is already satisfied and pip never pulls another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
