#!/usr/bin/env bash
# Install the package with its test extra (which brings the tracker and docs extras too), then lint
# (ruff), type-check (mypy) and run the whole test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# The report.html test drives Debian's headless Chromium with Selenium: install it when missing (needs root or sudo).
bash scripts/install_browser.sh
export GRIDNOISE_REQUIRE_BROWSER=1  # so the browser test fails, not skips, if Chromium is still missing
# The cluster tests submit to a single-node Slurm on loopback: installed and started here as root (its
# daemons stopped by PID when the tests end); elsewhere those tests skip, saying why.
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/slurm.sh install
    bash scripts/slurm.sh start
    trap 'bash scripts/slurm.sh stop' EXIT
    eval "$(bash scripts/slurm.sh env)"
    export GRIDNOISE_REQUIRE_SLURM=1  # so they fail, not skip, if Slurm did not come up
fi
# Tests read the Datasaurus table from ../shared/data unless told otherwise; never the network.
export GRIDNOISE_DATASAURUS="${GRIDNOISE_DATASAURUS:-$(cd .. && pwd)/shared/data/DatasaurusDozen.tsv}"
.venv/bin/ruff check src tests examples
.venv/bin/mypy
# Both cores: two pytest workers, each file's tests kept together on one (they share its fixtures).
.venv/bin/python -m pytest -n "${GRIDNOISE_TEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
