"""Record this machine's regression values (see tests/test_regression.py).

    python tests/golden/record.py            # samples and metrics of this CPU
    python tests/golden/record.py --streams  # also the seeded streams and the documented task hashes

Run it with the code whose numbers are to be kept, before changing it.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent

SAMPLERS = {  # name -> SamplerConfig arguments
    "ddpm": dict(sampler="ddpm"),
    "ddim20": dict(sampler="ddim", steps=20),
    "ddim10_eta1": dict(sampler="ddim", steps=10, eta=1.0),
    "ddpm_clip1": dict(sampler="ddpm", clip_sample=1.0),
    "ddim20_clip1": dict(sampler="ddim", steps=20, clip_sample=1.0),
}
# run name -> samplers it is drawn with; every adaptation mechanism and a zero-terminal-SNR schedule
VARIANTS = {
    "baseline": list(SAMPLERS),
    "multiscale_l1": ["ddpm", "ddim20", "ddim20_clip1"],
    "conditioning": ["ddpm", "ddim20"],
    "reverse_variance": ["ddpm", "ddpm_clip1"],
    "cosine_zero_snr": ["ddpm_clip1", "ddim20_clip1"],
}
NUM_SAMPLES = 500


def machine_key() -> str:
    """CPU model, the instruction set torch dispatches to, and torch's version, as a file-name slug."""
    import torch

    from gridnoise.provenance import cpu_model

    text = f"{cpu_model()}_{torch.backends.cpu.get_cpu_capability()}_torch{torch.__version__}"
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("regression_*.npz"))


def run_config(name: str):
    from gridnoise.config import RunConfig, SamplerConfig, adaptation_for

    variant = "baseline" if name == "cosine_zero_snr" else name
    cfg = RunConfig(dataset="moons", variant=variant, adaptation=adaptation_for(variant), n_points=2000,
                    device="cpu")
    if name == "cosine_zero_snr":
        cfg.diffusion.beta_schedule, cfg.diffusion.zero_terminal_snr = "cosine", True
    cfg.train.steps, cfg.train.batch_size, cfg.train.grid_snapshot_every = 60, 64, 30
    cfg.eval.num_samples = NUM_SAMPLES
    if name != "reverse_variance":  # DDIM is not defined for a learned reverse variance
        clip = 1.0 if name == "cosine_zero_snr" else 0.0
        cfg.eval.extra_samplers = {"ddim20": SamplerConfig("ddim", 20, clip_sample=clip)}
    return cfg


def record_values(root: Path) -> dict[str, np.ndarray]:
    """Train each run into `root` and draw it with each of its samplers: arrays by key."""
    from gridnoise.config import SamplerConfig
    from gridnoise.run import train_run
    from gridnoise.sampling import sample_run

    values: dict[str, np.ndarray] = {}
    for name, samplers in VARIANTS.items():
        out = root / name
        metrics = train_run(run_config(name), out, progress=False)
        for metric, value in metrics.items():
            values[f"metrics/{name}/{metric}"] = np.float64(value)
        with np.load(out / "samples.npz") as f:
            values[f"run_samples/{name}"] = f["samples"]
        for sampler in samplers:
            values[f"samples/{name}/{sampler}"] = sample_run(out, NUM_SAMPLES, 0, "cpu",
                                                             SamplerConfig(**SAMPLERS[sampler]))
    return values


def record_streams() -> None:
    import torch

    from gridnoise.components import build_components
    from gridnoise.config import RunConfig
    from gridnoise.seeding import generator
    from gridnoise.study.experiment import load_experiment

    train = generator(0, "train")
    noise = torch.randn((256, 2), generator=train)[:4]
    _, _, model = build_components(RunConfig(), torch.device("cpu"))
    streams = {
        "epoch0_perm": torch.randperm(100_000, generator=generator(0, "epoch0"))[:8].tolist(),
        "train_noise": noise.tolist(),
        "train_timesteps": torch.randint(0, 100, (256,), generator=train)[:8].tolist(),
        "sample_start": torch.randn((10_000, 2), generator=generator(0, "sample"))[:4].tolist(),
        "init_weight": model.network[0].weight[0, :4].tolist(),
    }
    (GOLDEN / "streams.json").write_text(json.dumps(streams, indent=1) + "\n")
    hashes = {}
    for path in sorted((GOLDEN.parents[1] / "experiments").glob("*.toml")):
        exp = load_experiment(path).restricted(seeds=[0, 1, 2, 3, 4])
        hashes[path.stem] = {"identity": exp.identity(), "tasks": {t.key: t.config_hash for t in exp.tasks()}}
    (GOLDEN / "task_hashes.json").write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import argparse

    import torch

    parser = argparse.ArgumentParser(description="Record this machine's regression values (tests/golden).")
    parser.add_argument("--streams", action="store_true", help="also re-record the seeded streams and task hashes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.streams:
        record_streams()
    with tempfile.TemporaryDirectory() as tmp:
        values = record_values(Path(tmp))
    path = GOLDEN / f"regression_{machine_key()}.npz"
    np.savez_compressed(path, **values)
    print(f"{len(values)} values -> {path}")
