#!/usr/bin/env bash
# Install the package and its runtime dependencies (no extras), then run the main job: the original
# study (5 runs x 4 data sets, seed 0, 10000 steps) on a local Dask cluster, with its figures and
# report, into results/seed_study. Re-running it skips finished tasks and resumes interrupted ones.
# Extra arguments go to `gridnoise reproduce`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# dino needs the Datasaurus table: use a local copy when there is one, else gridnoise downloads it.
shared="$(cd .. && pwd)/shared/data/DatasaurusDozen.tsv"
if [ -z "${GRIDNOISE_DATASAURUS:-}" ] && [ -f "$shared" ]; then export GRIDNOISE_DATASAURUS="$shared"; fi
.venv/bin/gridnoise reproduce --out results/seed_study "$@"
