"""`gridnoise bench`: gridnoise's speed against a plain PyTorch loop and the machine's matmul peak.

Everything is measured in one process run, so the ratios compare like with like:
- training steps/s at batch 256 for each variant: one process (all threads), and the whole
  machine with one single-threaded process per core, the way the study executor runs;
- the yardstick: the plain loop (a DataLoader over a TensorDataset, eager fp32, one process
  using every core) training the same network;
- sampling of 10000 points x T steps, gridnoise's sampler against the seed-style loop;
- evaluation (eval loss + KL);
- dense matmul throughput at the network's shapes (fp32, and bf16 where the CPU has it), so
  training throughput can be read as a fraction of the machine's peak.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gridnoise.config import RunConfig
from gridnoise.data import load
from gridnoise.evaluate import eval_loss
from gridnoise.metrics import KLEstimator
from gridnoise.presets import adaptation_for
from gridnoise.sampling import sample
from gridnoise.seeding import generator
from gridnoise.train import Trainer, build_components

VARIANTS = ("baseline", "multiscale_l1")
BATCH = 256


@dataclass
class BenchSettings:
    steps: int = 300  # timed training steps per measurement (after warm-up)
    warmup: int = 30
    samples: int = 10_000  # points drawn in the sampling measurement
    n_points: int = 100_000
    dataset: str = "moons"
    workers: int = os.cpu_count() or 1


def _config(variant: str, s: BenchSettings) -> RunConfig:
    cfg = RunConfig(dataset=s.dataset, variant=variant, adaptation=adaptation_for(variant), device="cpu",
                    n_points=s.n_points)
    cfg.train.steps = s.steps + s.warmup
    return cfg


def gridnoise_steps_per_second(variant: str, s: BenchSettings, threads: int) -> float:
    """Training steps/s of gridnoise's Trainer in this process with `threads` threads."""
    torch.set_num_threads(threads)
    cfg = _config(variant, s)
    trainer = Trainer(cfg, load(cfg.dataset, cfg.n_points))
    for _ in range(s.warmup):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(s.steps):
        trainer.train_step()
    return s.steps / (time.perf_counter() - start)


def _worker(args) -> float:
    variant, s = args
    return gridnoise_steps_per_second(variant, s, threads=1)


def machine_steps_per_second(variant: str, s: BenchSettings) -> float:
    """Summed steps/s of one single-threaded training process per core, all running at once."""
    with mp.get_context("spawn").Pool(s.workers) as pool:
        return float(sum(pool.map(_worker, [(variant, s)] * s.workers)))


def plain_steps_per_second(variant: str, s: BenchSettings) -> float:
    """The yardstick: the straightforward loop (DataLoader, eager fp32, all cores) for the same model."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = _config(variant, s)
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    params = list(model.parameters()) + list(adaptation.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.train.lr)
    loader = DataLoader(TensorDataset(torch.from_numpy(load(cfg.dataset, cfg.n_points))), batch_size=BATCH,
                        shuffle=True)
    done, start = 0, None
    while True:
        for (x_start,) in loader:
            if done == s.warmup:
                start = time.perf_counter()
            noise = torch.randn(x_start.shape)
            timesteps = torch.randint(0, len(scheduler), (len(x_start),)).long()
            x_t, level = adaptation.training_inputs(scheduler, x_start, noise, timesteps)
            loss = F.mse_loss(model(x_t, timesteps, level), noise) + adaptation.penalty()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            optimizer.zero_grad()
            done += 1
            if done == s.warmup + s.steps:
                return s.steps / (time.perf_counter() - start)


def sampling_seconds(variant: str, s: BenchSettings) -> tuple[float, float]:
    """(gridnoise, plain) seconds to draw `s.samples` points with all cores."""
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = _config(variant, s)
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    start = time.perf_counter()
    sample(model, adaptation, scheduler, s.samples, generator(0, "bench"))
    ours = time.perf_counter() - start
    # The seed's loop: python-int timesteps expanded per step, no inference mode.
    start = time.perf_counter()
    x = torch.randn(s.samples, 2)
    for t in reversed(range(len(scheduler))):
        timesteps = torch.from_numpy(np.repeat(t, s.samples)).long()
        with torch.no_grad():
            eps = model(x, timesteps, adaptation.sampling_level(x, timesteps))
        x = scheduler.step(eps, timesteps, x).prev_sample
    return ours, time.perf_counter() - start


def evaluation_seconds(variant: str, s: BenchSettings) -> float:
    """Seconds for the eval loss over the data plus the KL of `s.samples` samples."""
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = _config(variant, s)
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    points = load(cfg.dataset, cfg.n_points)
    samples = np.random.default_rng(0).normal(size=(s.samples, 2))
    start = time.perf_counter()
    eval_loss(model, adaptation, scheduler, torch.from_numpy(points), BATCH, generator(0, "bench"))
    KLEstimator(points)(samples)
    return time.perf_counter() - start


def training_flops_per_step(cfg: RunConfig, noise_level_input: bool) -> float:
    """Dense FLOPs of one training step: forward 2*MACs per sample, backward about twice that."""
    m = cfg.model
    macs = (3 * m.embedding_dim + int(noise_level_input)) * m.hidden_dim + m.hidden_layers * m.hidden_dim**2 \
        + m.hidden_dim * 2
    return 6.0 * macs * BATCH


def has_native_bf16() -> bool:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        pass
    return "avx512_bf16" in flags or "amx_bf16" in flags


def matmul_gflops(dtype: torch.dtype, threads: int, repeats: int = 400) -> float:
    """Throughput of the network's hidden-layer product (256 x 256) @ (256 x 256) at batch 256."""
    torch.set_num_threads(threads)
    a = torch.randn(BATCH, 256).to(dtype)
    b = torch.randn(256, 256).to(dtype)
    for _ in range(20):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * BATCH * 256 * 256 * repeats / (time.perf_counter() - start) / 1e9


def run_bench(s: BenchSettings) -> dict:
    """Every measurement, as a JSON-ready dict."""
    cores = os.cpu_count() or 1
    out: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": cores,
                             "torch": torch.__version__, "native_bf16": has_native_bf16()},
                 "settings": vars(s).copy(), "variants": {}}
    peak = {"fp32_1thread": matmul_gflops(torch.float32, 1), "fp32_all": matmul_gflops(torch.float32, cores)}
    if has_native_bf16():
        peak["bf16_1thread"] = matmul_gflops(torch.bfloat16, 1)
        peak["bf16_all"] = matmul_gflops(torch.bfloat16, cores)
    out["matmul_gflops"] = peak
    for variant in VARIANTS:
        cfg = _config(variant, s)
        flops = training_flops_per_step(cfg, variant != "baseline")
        plain = plain_steps_per_second(variant, s)
        single = gridnoise_steps_per_second(variant, s, threads=cores)
        machine = machine_steps_per_second(variant, s)
        ours_sample, plain_sample = sampling_seconds(variant, s)
        out["variants"][variant] = {
            "plain_steps_per_s": plain,
            "gridnoise_steps_per_s_one_process": single,
            "gridnoise_steps_per_s_machine": machine,
            "training_speedup": machine / plain,
            "training_gflops": machine * flops / 1e9,
            "fraction_of_fp32_peak": machine * flops / 1e9 / (peak["fp32_1thread"] * cores),
            "sampling_seconds": ours_sample,
            "plain_sampling_seconds": plain_sample,
            "sampling_speedup": plain_sample / ours_sample,
            "evaluation_seconds": evaluation_seconds(variant, s),
        }
    torch.set_num_threads(cores)
    return out


def format_table(result: dict) -> str:
    """The benchmark as a plain-text table."""
    lines = [f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, torch "
             f"{result['machine']['torch']}, native bf16: {result['machine']['native_bf16']}",
             "matmul 256x256x256 GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in result["matmul_gflops"].items()),
             "",
             f"{'variant':15s} {'plain st/s':>10s} {'ours 1p':>8s} {'ours all':>9s} {'speedup':>8s} "
             f"{'%fp32pk':>8s} {'sample s':>9s} {'plain s':>8s} {'speedup':>8s} {'eval s':>7s}"]
    for name, v in result["variants"].items():
        lines.append(f"{name:15s} {v['plain_steps_per_s']:10.1f} {v['gridnoise_steps_per_s_one_process']:8.1f} "
                     f"{v['gridnoise_steps_per_s_machine']:9.1f} {v['training_speedup']:7.2f}x "
                     f"{100 * v['fraction_of_fp32_peak']:7.1f}% {v['sampling_seconds']:9.2f} "
                     f"{v['plain_sampling_seconds']:8.2f} {v['sampling_speedup']:7.2f}x {v['evaluation_seconds']:7.2f}")
    return "\n".join(lines)
