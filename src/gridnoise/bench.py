"""`gridnoise bench`: gridnoise's speed against a plain PyTorch loop and the machine's matmul peak.

Everything is measured in one process run, so the ratios compare like with like:
- training steps/s at batch 256 for each variant: one process (all threads), and the whole
  machine with one single-threaded process per core, the way the study executor runs;
- the yardstick: the plain loop (a DataLoader over a TensorDataset, eager fp32, one process
  using every core) training the same network;
- sampling of 10000 points x T steps, gridnoise's sampler (one process, and one single-threaded
  process per core) against the original study's loop;
- evaluation (eval loss + KL);
- dense matmul throughput at the network's shapes (fp32, and bf16 where the CPU has it), one
  process per core like the training figure, so training and sampling throughput can be read
  as a fraction of the machine's peak;
- one real grid task, run the way a study worker runs it: the share of its wall time spent
  beyond training and evaluation (setup, snapshots, checkpoints, figures), against a budget of 3 %;
- one real baseline task the same way, then its full likelihood evaluation as `gridnoise evaluate
  --metrics nll_elbo,nll_ode --ode-points 500` runs it (the bound on its held-out points, the ODE on
  500 with the half-tolerance check): its time against the task's training time, target at most 1.
Each figure is the best of `repeats` measurements (see `best_of`), except the grid task's, which
is one task of `task_steps` steps.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.data import DataLoader, TensorDataset

from gridnoise.components import build_components
from gridnoise.config import RunConfig, TrainConfig, adaptation_for, to_dict
from gridnoise.data import load
from gridnoise.eval_loss import eval_loss
from gridnoise.files import write_json
from gridnoise.metrics import KLEstimator
from gridnoise.precision import native_bf16, with_precision
from gridnoise.provenance import cpu_model
from gridnoise.rundir import TASK_FILE, read_json
from gridnoise.sampling import sample
from gridnoise.seeding import generator
from gridnoise.study.evaluation import evaluate_run
from gridnoise.study.executor import execute_task
from gridnoise.trainer import Trainer

VARIANTS = ("baseline", "multiscale_l1")
BATCH = 256
CORES = os.cpu_count() or 1  # the benchmark measures the whole machine by default
TASK_VARIANT = "multiscale"  # the grid task: two grids, so the most snapshot data per step
TASK_OVERHEAD_TARGET = 0.03  # a task's time beyond training and evaluation, as a share of its wall time
LIKELIHOOD_VARIANT = "baseline"  # every variant has both likelihoods; its flow crosses no cell edge
LIKELIHOOD_TARGET = 1.0  # a run's likelihood evaluation against its training time


@dataclass
class BenchSettings:
    steps: int = 300  # timed training steps per measurement (after warm-up)
    warmup: int = 30
    samples: int = 10_000  # points drawn in the sampling measurement
    n_points: int = 100_000
    dataset: str = "moons"
    workers: int = CORES
    repeats: int = 3  # each figure is the best of this many measurements (a VM's timings move 10-30%)
    levers: bool = False  # also time the rejected levers (torch.compile, vmap over models)
    task_steps: int = 10_000  # training steps of the grid task (a study task's, by default)
    ode_points: int = 500  # held-out points of the likelihood measurement's ODE (the documented studies')


def _config(variant: str, s: BenchSettings, precision: str = "fp32", seed: int = 0) -> RunConfig:
    cfg = RunConfig(dataset=s.dataset, variant=variant, adaptation=adaptation_for(variant), device="cpu",
                    n_points=s.n_points, precision=precision, seed=seed)
    cfg.train.steps = s.steps + s.warmup
    return cfg


def gridnoise_steps_per_second(variant: str, s: BenchSettings, precision: str = "fp32",
                               threads: int | None = None) -> float:
    """Training steps/s of gridnoise's Trainer in this process with `threads` (default all) threads."""
    torch.set_num_threads(threads or CORES)
    cfg = _config(variant, s, precision)
    trainer = Trainer(cfg, load(cfg.dataset, cfg.n_points))
    for _ in range(s.warmup):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(s.steps):
        trainer.train_step()
    return s.steps / (time.perf_counter() - start)


def _on_every_core(measure, variant: str, s: BenchSettings, precision: str, pool) -> list[float]:
    """`measure(variant, s, precision, threads=1)` in `pool`'s `s.workers` processes at once, one result each."""
    return pool.starmap(measure, [(variant, s, precision, 1)] * s.workers)


def machine_steps_per_second(variant: str, s: BenchSettings, precision: str, pool) -> float:
    """Summed steps/s of one single-threaded training process per core, all running at once."""
    return float(sum(_on_every_core(gridnoise_steps_per_second, variant, s, precision, pool)))


def plain_steps_per_second(variant: str, s: BenchSettings) -> float:
    """The yardstick: the straightforward loop (DataLoader, eager fp32, all cores) for the same model."""
    torch.set_num_threads(CORES)
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
            x_t, g = adaptation.training_inputs(scheduler, x_start, noise, timesteps)
            # float timesteps: the plain per-sample embedding (same numbers, no embed-once trick)
            loss = F.mse_loss(model(x_t, timesteps.float(), g), noise) + adaptation.penalty()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            optimizer.zero_grad()
            done += 1
            if done == s.warmup + s.steps:
                return s.steps / (time.perf_counter() - start)


def sampling_seconds(variant: str, s: BenchSettings, precision: str = "fp32", threads: int | None = None) -> float:
    """Seconds gridnoise's sampler takes to draw `s.samples` points with `threads` (default all) threads."""
    torch.set_num_threads(threads or CORES)
    cfg = _config(variant, s, precision)
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    network = with_precision(model, precision)
    sample(network, adaptation, scheduler, min(s.samples, 1000), generator(1, "bench"))  # warm-up
    start = time.perf_counter()
    sample(network, adaptation, scheduler, s.samples, generator(0, "bench"))
    return time.perf_counter() - start


def machine_sampling_seconds(variant: str, s: BenchSettings, precision: str, pool) -> float:
    """Seconds per `s.samples` points when one single-threaded process per core samples at once
    (as the study's workers do): the slowest process's time over the number of processes."""
    return max(_on_every_core(sampling_seconds, variant, s, precision, pool)) / s.workers


def plain_sampling_seconds(variant: str, s: BenchSettings) -> float:
    """The yardstick for sampling: the original study's loop, fp32, all cores."""
    torch.set_num_threads(CORES)
    cfg = _config(variant, s)
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    # The original study's loop: python-int timesteps expanded per step, the per-sample embedding.
    def plain(n: int) -> None:
        x = torch.randn(n, 2)
        for t in reversed(range(len(scheduler))):
            timesteps = torch.from_numpy(np.repeat(t, n)).long()
            with torch.no_grad():
                eps = model(x, timesteps.float(), adaptation.sampling_noise_scale(x, timesteps))
            x = scheduler.step(eps, timesteps, x).prev_sample

    plain(min(s.samples, 1000))  # warm-up, as for gridnoise's sampler
    start = time.perf_counter()
    plain(s.samples)
    return time.perf_counter() - start


def evaluation_seconds(variant: str, s: BenchSettings) -> float:
    """Seconds for the eval loss over the data plus the KL of `s.samples` samples."""
    torch.set_num_threads(CORES)
    cfg = _config(variant, s)
    scheduler, adaptation, model = build_components(cfg, torch.device("cpu"))
    points = load(cfg.dataset, cfg.n_points)
    samples = np.random.default_rng(0).normal(size=(s.samples, 2))
    start = time.perf_counter()
    eval_loss(model, adaptation, scheduler, torch.from_numpy(points), BATCH, generator(0, "bench"))
    KLEstimator(points)(samples)
    return time.perf_counter() - start


def _macs_per_point(cfg: RunConfig, condition_dim: int) -> int:
    """Multiply-accumulates of one network call on one point (the linear layers)."""
    m = cfg.model
    return (3 * m.embedding_dim + condition_dim) * m.hidden_dim + m.hidden_layers * m.hidden_dim**2 \
        + m.hidden_dim * 2


def training_flops_per_step(cfg: RunConfig, condition_dim: int) -> float:
    """Dense FLOPs of one training step: forward 2*MACs per sample, backward about twice that."""
    return 6.0 * _macs_per_point(cfg, condition_dim) * BATCH


def sampling_flops(cfg: RunConfig, condition_dim: int, samples: int) -> float:
    """Dense FLOPs of drawing `samples` points: one forward call per point and timestep."""
    return 2.0 * _macs_per_point(cfg, condition_dim) * samples * cfg.diffusion.num_timesteps


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


def machine_matmul_gflops(dtype: torch.dtype, workers: int, pool) -> float:
    """Summed matmul throughput of `pool`'s `workers` single-threaded processes at once: the peak of
    the same layout the training figure uses (two threads in one process split a 256^3 product badly)."""
    return float(sum(pool.starmap(matmul_gflops, [(dtype, 1)] * workers)))


def compile_lever(s: BenchSettings) -> dict:
    """torch.compile of the baseline network, one thread: compile seconds and steps/s against eager."""
    torch.set_num_threads(1)
    cfg = _config("baseline", s)
    trainer = Trainer(cfg, load(cfg.dataset, cfg.n_points))
    eager = gridnoise_steps_per_second("baseline", s, threads=1)
    start = time.perf_counter()
    trainer.model = torch.compile(trainer.model)
    for _ in range(s.warmup):
        trainer.train_step()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(s.steps):
        trainer.train_step()
    compiled = s.steps / (time.perf_counter() - start)
    return {"eager_steps_per_s": eager, "compiled_steps_per_s": compiled, "compile_seconds": compile_seconds,
            "speedup": compiled / eager}


def vmap_lever(s: BenchSettings, models: int = 4) -> dict:
    """`models` baseline networks trained as one with torch.func (stacked weights, vmap), one
    thread: model-steps/s against one network trained alone."""
    torch.set_num_threads(1)
    nets = [build_components(_config("baseline", s, seed=k), torch.device("cpu")) for k in range(models)]
    scheduler = nets[0][0]
    params, buffers = stack_module_state([net for _, _, net in nets])
    params = {name: torch.nn.Parameter(p) for name, p in params.items()}
    skeleton = copy.deepcopy(nets[0][2]).to("meta")
    optimizer = torch.optim.AdamW(list(params.values()), lr=3e-4, fused=True)
    alphas_cumprod = scheduler.alphas_cumprod
    points = torch.from_numpy(load(s.dataset, s.n_points))

    def forward(p, b, x, t):  # float t: torch.unique (the embed-once trick) cannot be vmapped
        return functional_call(skeleton, (p, b), (x, t.float()))

    def step():
        x_start = points[torch.randint(0, len(points), (models, BATCH))]
        noise = torch.randn(models, BATCH, 2)
        t = torch.randint(0, len(scheduler), (models, BATCH))
        abar = alphas_cumprod[t].unsqueeze(-1)
        prediction = vmap(forward)(params, buffers, abar.sqrt() * x_start + (1 - abar).sqrt() * noise, t)
        loss = F.mse_loss(prediction, noise) * models  # sum of the per-model mean losses
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(s.warmup):
        step()
    start = time.perf_counter()
    for _ in range(s.steps):
        step()
    batched = models * s.steps / (time.perf_counter() - start)
    single = gridnoise_steps_per_second("baseline", s, threads=1)
    return {"models": models, "model_steps_per_s": batched, "single_steps_per_s": single,
            "speedup": batched / single}


def task_config(s: BenchSettings, steps: int) -> RunConfig:
    """A study's grid task of `steps` steps: as many grid snapshots and checkpoints per task as a study's
    defaults take (ten each in 10000 steps), `s.n_points` points and `s.samples` samples."""
    study = TrainConfig()
    cfg = RunConfig(dataset=s.dataset, variant=TASK_VARIANT, adaptation=adaptation_for(TASK_VARIANT), device="cpu",
                    n_points=s.n_points)
    cfg.train.steps = steps
    cfg.train.grid_snapshot_every = max(1, steps * study.grid_snapshot_every // study.steps)
    cfg.train.checkpoint_every = max(1, steps * study.checkpoint_every // study.steps)
    cfg.eval.num_samples = max(s.samples, cfg.eval.kl_k)
    return cfg


def _tasks_in_one_worker(configs: list[dict], ode_points: int = 0) -> dict:
    """Run each config as a study task (`execute_task`) in this process, one after the other; the
    last one's task.json, with (if `ode_points`) its likelihood evaluation's record and wall time."""
    with tempfile.TemporaryDirectory() as root:
        for i, config in enumerate(configs):
            directory = Path(root) / f"task_{i}"
            write_json(directory / TASK_FILE, {"run": "bench", "dataset": config["dataset"], "seed": config["seed"]})
            execute_task(config, str(directory))
        task = read_json(directory / TASK_FILE, "task.json")
        if ode_points:
            start = time.perf_counter()
            task["likelihood"] = evaluate_run(directory, ["nll_elbo", "nll_ode"], ode_points=ode_points)
            task["likelihood_time"] = time.perf_counter() - start
        return task


def task_overhead(s: BenchSettings, pool) -> dict:
    """One grid task of `s.task_steps` steps run the way a study worker runs it (`execute_task`, one
    thread, in one of `pool`'s processes), after a ten-step task in the same process: a worker pays
    its imports once, not per task. Returns what the task recorded in its task.json: wall, training,
    evaluation, figures and overhead seconds, and `overhead_share`, the time beyond training and
    evaluation as a fraction of the wall time, with the target it should stay under."""
    cfg = task_config(s, s.task_steps)
    warmup = task_config(BenchSettings(n_points=1000, samples=100, dataset=s.dataset), 10)
    task = pool.apply(_tasks_in_one_worker, ([to_dict(warmup), to_dict(cfg)],))
    phases = ("wall_time", "training_time", "evaluation_time", "figures_time", "overhead_time", "overhead_share")
    return {"variant": TASK_VARIANT, "dataset": s.dataset, "steps": s.task_steps,
            "snapshots": s.task_steps // cfg.train.grid_snapshot_every, **{k: task[k] for k in phases},
            "target": TASK_OVERHEAD_TARGET}


def likelihood_cost(s: BenchSettings, pool) -> dict:
    """A baseline task of `s.task_steps` steps run as a study worker runs it (in one of `pool`'s warm
    processes), then its full likelihood evaluation in the same single-threaded process: the
    bound on its held-out points and the ODE on `s.ode_points` (with its half-tolerance check), against
    the task's training time."""
    cfg = task_config(s, s.task_steps)
    cfg.variant, cfg.adaptation = LIKELIHOOD_VARIANT, adaptation_for(LIKELIHOOD_VARIANT)
    task = pool.apply(_tasks_in_one_worker, ([to_dict(cfg)], s.ode_points))
    found = task["likelihood"]
    return {"variant": LIKELIHOOD_VARIANT, "dataset": s.dataset, "steps": s.task_steps,
            "training_time": task["training_time"], "likelihood_time": task["likelihood_time"],
            "nll_elbo_time": found["nll_elbo_time"], "nll_elbo_points": found["nll_elbo_points"],
            "nll_ode_time": found["nll_ode_time"], "nll_ode_points": found.get("nll_ode_points", 0),
            "nll_ode_check_points": found.get("nll_ode_check_points", 0),
            "ratio": task["likelihood_time"] / task["training_time"], "target": LIKELIHOOD_TARGET}


def best_of(repeats: int, measure, *args, lower: bool = False) -> float:
    """The best of `repeats` runs of `measure(*args)`: the highest rate, or the lowest time.

    A noisy machine only ever slows a run down, so the best run is the closest to what the
    code can do; the yardstick and gridnoise get the same treatment."""
    runs = [measure(*args) for _ in range(repeats)]
    return min(runs) if lower else max(runs)


def run_bench(s: BenchSettings) -> dict:
    """Every measurement, as a JSON-ready dict. The machine figures and the tasks run in one pool of
    `s.workers` processes, started once (each figure used to start its own: 4 s of imports each)."""
    with mp.get_context("spawn").Pool(s.workers) as pool:
        return _run_bench(s, pool)


def _run_bench(s: BenchSettings, pool) -> dict:
    best = functools.partial(best_of, s.repeats)
    bf16 = native_bf16("cpu")
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    out: dict = {"machine": {"cpu": cpu_model(), "cores": CORES,
                             "torch": torch.__version__, "native_bf16": bf16},
                 "settings": vars(s).copy(), "variants": {}}
    peak = {}
    for precision in precisions:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        peak[f"{precision}_1thread"] = best(matmul_gflops, dtype, 1)
        peak[f"{precision}_all_threads"] = best(matmul_gflops, dtype, CORES)
        peak[f"{precision}_machine"] = best(machine_matmul_gflops, dtype, s.workers, pool)
    out["matmul_gflops"] = peak
    for variant in VARIANTS:
        flops = training_flops_per_step(_config(variant, s), int(variant != "baseline"))
        flops_sampling = sampling_flops(_config(variant, s), int(variant != "baseline"), s.samples)
        plain = best(plain_steps_per_second, variant, s)
        plain_sample = best(plain_sampling_seconds, variant, s, lower=True)
        result = {"plain_steps_per_s": plain, "plain_sampling_seconds": plain_sample,
                  "evaluation_seconds": best(evaluation_seconds, variant, s, lower=True)}
        for precision in precisions:
            machine = best(machine_steps_per_second, variant, s, precision, pool)
            sampling = best(sampling_seconds, variant, s, precision, lower=True)
            sampling_machine = best(machine_sampling_seconds, variant, s, precision, pool, lower=True)
            result[precision] = {
                "steps_per_s_one_process": best(gridnoise_steps_per_second, variant, s, precision, CORES),
                "steps_per_s_machine": machine,
                "training_speedup": machine / plain,
                "training_gflops": machine * flops / 1e9,
                # against the peak of the arithmetic the matmuls actually run in, measured with the
                # same one single-threaded process per worker
                "fraction_of_peak": machine * flops / 1e9 / peak[f"{precision}_machine"],
                "sampling_seconds": sampling,
                "sampling_speedup": plain_sample / sampling,
                "sampling_seconds_machine": sampling_machine,
                "sampling_speedup_machine": plain_sample / sampling_machine,
                "sampling_fraction_of_peak": flops_sampling / sampling_machine / 1e9 / peak[f"{precision}_machine"],
            }
        out["variants"][variant] = result
    out["grid_task"] = task_overhead(s, pool)  # each in one of the pool's processes, as a study worker's
    out["likelihood"] = likelihood_cost(s, pool)
    if s.levers:
        out["levers"] = {"vmap_models": vmap_lever(s)}
        try:  # inductor needs a C++ compiler; a machine without one reports why instead
            out["levers"]["torch_compile"] = compile_lever(s)
        except Exception as e:  # noqa: BLE001 - any backend failure is a result here, not a crash
            out["levers"]["torch_compile"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    torch.set_num_threads(CORES)
    return out


def format_table(result: dict) -> str:
    """The benchmark as a plain-text table."""
    lines = [f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, torch "
             f"{result['machine']['torch']}, native bf16: {result['machine']['native_bf16']}",
             "matmul 256x256x256 GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in result["matmul_gflops"].items()),
             "",
             f"{'variant':14s} {'prec':4s} {'plain st/s':>10s} {'ours 1p':>8s} {'ours all':>9s} {'speedup':>8s} "
             f"{'%peak':>6s} {'plain smp s':>11s} {'smp 1p':>6s} {'smp all':>7s} {'speedup 1p/all':>14s} "
             f"{'%peak':>6s} {'eval s':>7s}"]
    for name, v in result["variants"].items():
        for precision in ("fp32", "bf16"):
            if precision not in v:
                continue
            p = v[precision]
            lines.append(
                f"{name:14s} {precision:4s} {v['plain_steps_per_s']:10.1f} {p['steps_per_s_one_process']:8.1f} "
                f"{p['steps_per_s_machine']:9.1f} {p['training_speedup']:7.2f}x {100 * p['fraction_of_peak']:5.1f}% "
                f"{v['plain_sampling_seconds']:11.2f} {p['sampling_seconds']:6.2f} "
                f"{p['sampling_seconds_machine']:7.2f} "
                f"{p['sampling_speedup']:8.2f}/{p['sampling_speedup_machine']:.2f}x "
                f"{100 * p['sampling_fraction_of_peak']:5.1f}% {v['evaluation_seconds']:7.2f}")
    task = result.get("grid_task")  # absent from a bench.json written before it was measured
    if task:
        wall = task["wall_time"]
        share = {k: 100 * task[f"{k}_time"] / wall for k in ("training", "evaluation", "figures")}
        lines += ["", f"grid task ({task['variant']} on {task['dataset']}, {task['steps']} steps, {task['snapshots']} "
                      f"grid snapshots, one worker thread): {wall:.1f} s = training {share['training']:.1f}% "
                      f"+ evaluation {share['evaluation']:.1f}% + beyond them {100 * task['overhead_share']:.1f}% "
                      f"(of which figures {share['figures']:.1f}%); target: beyond <= {100 * task['target']:.0f}%"]
    cost = result.get("likelihood")  # likewise
    if cost:
        lines += [f"likelihood ({cost['variant']} on {cost['dataset']}, {cost['steps']} steps, one worker thread): "
                  f"nll_elbo on {cost['nll_elbo_points']} points {cost['nll_elbo_time']:.1f} s + nll_ode on "
                  f"{cost['nll_ode_points']} points (and {cost['nll_ode_check_points']} at half the tolerance) "
                  f"{cost['nll_ode_time']:.1f} s = {cost['ratio']:.2f}x the task's training "
                  f"({cost['training_time']:.1f} s); target: <= {cost['target']:.0f}x"]
    levers = result.get("levers")
    if levers:
        c, m = levers["torch_compile"], levers["vmap_models"]
        lines += ["", f"torch.compile (1 thread): {c['speedup']:.2f}x eager after {c['compile_seconds']:.0f} s "
                      "of compilation" if "error" not in c else f"torch.compile failed: {c['error']}",
                  f"vmap over {m['models']} models (1 thread): {m['speedup']:.2f}x the model-steps/s of one model"]
    return "\n".join(lines)
