#!/usr/bin/env bash
# Measure the run times docs/run-times.md states, with the code of this checkout's HEAD, from fresh
# clones in a temporary directory: the install, the main job, the test command, start-up, the
# notebook, a training step per model and `gridnoise evaluate`. Takes about 30 minutes on 2 cores;
# run it with nothing else on the machine and copy the figures it prints into docs/run-times.md and
# README.md, with the commit and the CPU it prints.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shared="$(cd "$repo/.." && pwd)/shared/data/DatasaurusDozen.tsv"
if [ -z "${GRIDNOISE_DATASAURUS:-}" ] && [ -f "$shared" ]; then export GRIDNOISE_DATASAURUS="$shared"; fi
echo "commit $(git -C "$repo" rev-parse --short HEAD), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%F)"
timed() {  # timed NAME COMMAND...: run it, print how long it took
    local name=$1 start=$SECONDS; shift
    "$@" > "$work/$name.log" 2>&1 || { echo "$name failed: see $work/$name.log"; trap - EXIT; exit 1; }
    echo "$name: $((SECONDS - start)) s"
}
git clone -q "$repo" "$work/tests" && timed test_command bash "$work/tests/.ci/run"
grep -E "passed|failed" "$work/test_command.log" | tail -1
git clone -q "$repo" "$work/main"
cd "$work/main"
timed install_runtime bash scripts/install.sh
timed main_job bash scripts/main.sh
.venv/bin/python - <<'PY'
import glob, json
t = [json.load(open(f)) for f in glob.glob("results/seed_study/*/*/seed_0/timings.json")]
print("task training %.0f-%.0f s, whole task %.0f-%.0f s, figures %.1f-%.1f %% of a task" % (
    min(x["training_time"] for x in t), max(x["training_time"] for x in t), min(x["wall_time"] for x in t),
    max(x["wall_time"] for x in t), min(100 * x["figures_time"] / x["wall_time"] for x in t),
    max(100 * x["figures_time"] / x["wall_time"] for x in t)))
PY
baseline=$(.venv/bin/python -c "import json
runs = json.load(open('results/seed_study/experiment.json'))['runs']
print(next(r['name'] for r in runs if r['variant'] == 'baseline'))")/moons/seed_0
for metrics in "nll_elbo" "nll_ode --ode-points 1000" "nll_ode,kl_exact --ode-points 500"; do
    copy="$work/run_$RANDOM"; cp -r "results/seed_study/$baseline" "$copy"
    # shellcheck disable=SC2086
    timed "evaluate_${metrics// /_}" .venv/bin/gridnoise evaluate "$copy" --metrics $metrics
done
.venv/bin/python - <<'PY'
import statistics, subprocess, sys, time
for what, cmd in (("import gridnoise", [sys.executable, "-c", "import gridnoise"]),
                  ("gridnoise --help", [".venv/bin/gridnoise", "--help"])):
    runs = []
    for _ in range(3):
        start = time.perf_counter(); subprocess.run(cmd, check=True, capture_output=True)
        runs.append(time.perf_counter() - start)
    print(f"{what}: {1000 * statistics.median(runs):.0f} ms")
PY
.venv/bin/python - <<'PY'
# a training step at batch 256 on one thread: the median of 3 x 100 steps after 20 warm-up steps
import statistics, time
import torch
import gridnoise
from gridnoise.data import run_points
from gridnoise.data.datafile import to_model
from gridnoise.trainer import Trainer
torch.set_num_threads(1)
for variant in ("baseline", "multiscale_l1", "reverse_variance", "vdm", "mulan", "mulan_cells"):
    cfg = gridnoise.make_config(variant, dataset="moons")
    trainer = Trainer(cfg, to_model(run_points(cfg), cfg.data.shift, cfg.data.scale), torch.device("cpu"))
    for _ in range(20):
        trainer.train_step()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(100):
            trainer.train_step()
        times.append((time.perf_counter() - start) / 100)
    print(f"training step, {variant}: {1000 * statistics.median(times):.1f} ms")
PY
# the quick-start notebook at its default step count, with the test venv's nbclient
cd "$work" && timed notebook env PYTHONPATH="$work/main/src" "$work/tests/.venv/bin/python" -c "
import nbformat; from nbclient import NotebookClient
nb = nbformat.read('$work/main/examples/quickstart.ipynb', as_version=4)
NotebookClient(nb, timeout=900, kernel_name='python3', resources={'metadata': {'path': '$work'}}).execute()"
