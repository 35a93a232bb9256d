#!/usr/bin/env bash
# Create .venv and install gridnoise into it (editable): `scripts/install.sh [EXTRAS]`.
#   EXTRAS  optional extras to add, comma-separated, as pyproject.toml's [project.optional-dependencies]
#           names them (e.g. `test`, or `tensorboard,mlflow`); without it, the package and its runtime
#           dependencies only. An unknown name is a one-line error, before anything is written.
# torch==2.13.0 goes first so that the project's torch range is already satisfied and pip never pulls
# another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ -n "$extras" ]; then
    python3 - "$extras" <<'PY'
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    known = tomllib.load(f)["project"]["optional-dependencies"]
unknown = [name for name in sys.argv[1].split(",") if name not in known]
if unknown:
    sys.exit(f"scripts/install.sh: no extra named {', '.join(unknown)}: choose from {', '.join(known)}")
PY
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
