#!/usr/bin/env bash
# Install, then run the main job: one multi-scale + L1 model on moons, 10000 steps, into runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/gridnoise train --dataset moons --variant multiscale_l1 --steps 10000 --seed 0 \
    --out runs/moons_multiscale_l1 --resume "$@"
