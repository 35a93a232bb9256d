"""Write experiments/original_five_seeds.toml from a five-seed study of the original runs.

    python scripts/five_seed_reference.py results/five_seeds "docs/seed_study: 5 seeds, 10000 steps, ..."

A one-seed report of the original study (`gridnoise reproduce`) sets its numbers beside the intervals
this file holds (`gridnoise.report.verdict.reproduction_section`).
"""

import sys
from pathlib import Path

from gridnoise.files import write_text
from gridnoise.report.verdict import REFERENCE_FILE, reference_text
from gridnoise.study.results import load_results

if __name__ == "__main__":
    study, source = sys.argv[1], sys.argv[2]
    target = Path(__file__).resolve().parent.parent / "src" / "gridnoise" / "experiments" / REFERENCE_FILE
    print(write_text(target, reference_text(load_results(study), source)))
