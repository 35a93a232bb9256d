"""Metrics added to finished work: `gridnoise evaluate RUN_OR_STUDY --metrics nll_elbo,nll_ode,kl_exact`.

Each metric is computed from a run's saved checkpoint (its EMA network and grids, as it samples)
on held-out points, and written atomically into the run directory's `evaluation.json`, beside
`metrics.json`, which stays as training wrote it (as do the task hashes). A run that already has a
metric is skipped; a study's runs are evaluated as Dask tasks, like its training.

    nll_elbo   the variational bound on -log p(x) (`likelihood.variational_bound`), bits per dimension
               in the data's units, with nll_elbo_stderr, its prior and decoder parts, and the mean
               of each timestep's term in `likelihood_terms.npz` (elbo_steps, bits per dimension)
    nll_ode    the probability-flow ODE's -log p(x) (`likelihood.ode_log_likelihood`), bits per
               dimension, with nll_ode_stderr, nll_ode_solver_gap (how far the mean moves at half the
               solver's tolerance, on the first nll_ode_check_points points), nll_ode_evaluations,
               nll_ode_points, nll_ode_crossings (mean cell edges a trajectory crosses: each adds
               the density's jump there) and nll_ode_nontransversal (share of points whose flow
               slides along an edge); only for models whose sampler is the
               standard posterior step (`adaptation.ode_skip_reason`) and whose flow is invertible at
               every held-out point (no sliding), the others get nll_ode_skipped with the reason; so
               does a run whose solve fails (a non-finite field, or the solver giving up), which is
               tried again the next time nll_ode is asked for (e.g. with another --tolerance)
    kl_exact   KL(data || model) in bits = 2 nll_ode - H (the data set's differential entropy in bits,
               `densities.entropy`), with kl_exact_stderr, and kl_bound = 2 nll_elbo - H, an upper
               bound; only for data sets with a known density

For a run with extra samplers (`eval.extra_samplers`) of the DDPM or cell kind, nll_elbo is also
computed for each, as `<name>_nll_elbo`. Held-out points: a fresh draw of the data set of its
own for each (data seed, run seed) (`heldout_seed`, recorded as heldout_seed), so seeds' spread
includes the held-out points' sampling error (`eval.num_samples` of them for the bound, `ODE_POINTS`
for the ODE); a data file has no held-out draw, so its runs are measured on their training rows
(`heldout` false). Likelihoods measured on another draw (before each seed had its own) are
recomputed when one is asked for. Every metric records its wall time as `<metric>_time`. A value
written by older code that the current code would not write (a grid run's ODE likelihood without
its edge jumps, or a skip that no longer applies) is recomputed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridnoise import data, rundir
from gridnoise.adaptation import NoiseAdaptation, ode_skip_reason
from gridnoise.cell_sampler import cell_prior, cell_variational_bound
from gridnoise.components import resolve_device, sampling_components
from gridnoise.config import RunConfig, SamplerConfig, from_dict
from gridnoise.continuous import ContinuousNoise, LatentNoise
from gridnoise.data import model_points
from gridnoise.data.datafile import is_data_file, to_model
from gridnoise.data.densities import entropy, has_density
from gridnoise.errors import CheckpointError, ConfigError, MetricError
from gridnoise.files import write_json, write_npz
from gridnoise.likelihood import (
    DIMENSIONS,
    ODE_TOLERANCE,
    Likelihood,
    bits_per_dim,
    continuous_bound_likelihood,
    continuous_ode_likelihood,
    network_noise_model,
    ode_log_likelihood,
    variational_bound,
)
from gridnoise.model import continuous_time
from gridnoise.plugins import adaptation_class
from gridnoise.registry import EVALUATED
from gridnoise.rundir import EVALUATION_FILE
from gridnoise.rundir import LIKELIHOOD_TERMS_FILE as TERMS_FILE
from gridnoise.seeding import generator
from gridnoise.study.cluster import Cluster, client_for, task_resources
from gridnoise.study.executor import SweepOutcome, SweepProgress, collect, keep_freed_memory
from gridnoise.study.results import EVALUATION_FIX, finite_or_none, load_results

ODE_POINTS = 1000  # held-out points for the ODE likelihood (its cost is ~1000 network calls per point batch)
ODE_CHECK_POINTS = 100  # of them solved again at half the tolerance, for the solver's error (nll_ode_solver_gap)
HELDOUT_STREAM = 1  # held-out points: the data set drawn with a seed derived from (data seed, seed, this)
VALIDATION_STREAM = 2  # the validation draw `gridnoise tune` scores trials on, likewise
LIKELIHOODS = ("nll_elbo", "nll_ode", "kl_exact")  # the metrics measured on held-out points
def check_metrics(names: list[str]) -> list[str]:
    """The metric names, in the registry's order; ConfigError naming the choices for an unknown one."""
    unknown = [n for n in names if n not in EVALUATED]
    if unknown or not names:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}: choose from "
                          f"{', '.join(EVALUATED)}")
    return [m for m in EVALUATED if m in names]


def read_evaluation(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / EVALUATION_FILE
    return rundir.read_json(path, EVALUATION_FILE, EVALUATION_FIX) if path.is_file() else {}


def missing(run_dir: str | Path, metrics: list[str]) -> list[str]:
    """The metrics of `metrics` that `run_dir` has not recorded yet (nor been found inapplicable to),
    or whose record is stale (`stale`)."""
    done = read_evaluation(run_dir)
    return _todo(done, _stale_records(done, run_dir), metrics)


def _stale_records(done: dict[str, Any], run_dir: str | Path) -> list[str]:
    """`stale` for an evaluation record already read (the run's config is read only when there is one),
    and every likelihood when the record was measured on another held-out draw (before each seed had
    its own, `heldout_seed`)."""
    if not done:
        return []
    cfg = rundir.read_config(run_dir)
    if done.get("heldout_seed", "unset") != heldout_seed(cfg) and any(m in done for m in LIKELIHOODS):
        return list(LIKELIHOODS)
    return stale(done, cfg.adaptation.kind)


def _todo(done: dict[str, Any], redo: list[str], metrics: list[str]) -> list[str]:
    """`missing` for an evaluation record already read and its stale metrics `redo`."""
    if not set(redo) & set(metrics):
        redo = []  # stale records are refreshed when one of them is asked for, together
    return [m for m in EVALUATED if m in redo or (m in metrics and m not in done and f"{m}_skipped" not in done)]


def stale(done: dict[str, Any], kind: str) -> list[str]:
    """Metrics in an `evaluation.json` that older code wrote and the current code would not: an ODE
    likelihood of a model that now gets none, one without the cell edges' jumps (before
    nll_ode_crossings was recorded) of a model with edges, or a skip of a model that now gets one;
    an exact KL goes with its ODE likelihood."""
    cls = adaptation_class(kind)
    reason = ode_skip_reason(cls)
    has_edges = cls.field_edges is not NoiseAdaptation.field_edges
    ode = "nll_ode" in done and (reason is not None or (has_edges and "nll_ode_crossings" not in done))
    # a skip the flow measured (it is not invertible) records its crossings; an older one does not
    if ode or ("nll_ode_skipped" in done and reason is None and "nll_ode_crossings" not in done):
        return ["nll_ode", "kl_exact"]
    return []


def _forget(result: dict[str, Any], metrics: list[str]) -> None:
    """Drop every key a metric wrote (`<metric>` and `<metric>_*`) from an evaluation record."""
    for key in [k for k in result if any(k == m or k.startswith(f"{m}_") for m in metrics)]:
        del result[key]


def heldout_seed(cfg, stream: int = HELDOUT_STREAM) -> int | None:
    """The seed of a run's held-out draw: its own for each (data seed, run seed), so the seeds of a
    study are measured on independent draws and their spread includes the points' sampling error;
    never a training draw's (`RunConfig.training_data_seed`, a small integer). None for a data file.
    `stream` VALIDATION_STREAM gives the validation draw tuning trials are scored on instead."""
    if is_data_file(cfg.dataset):
        return None
    return int(np.random.SeedSequence([cfg.data_seed, cfg.seed, stream]).generate_state(1)[0])


def heldout_points(cfg, n: int, stream: int = HELDOUT_STREAM) -> tuple[np.ndarray, bool]:
    """(points `(n, 2)` in the data's units, whether they are held out) for a run's config: its
    held-out draw, or with `stream` VALIDATION_STREAM its validation draw."""
    seed = heldout_seed(cfg, stream)
    if seed is None:
        return data.run_points(cfg), False
    return data.load(cfg.dataset, n, seed=seed), True


def evaluate_run(run_dir: str | Path, metrics: list[str], device: str = "cpu", ode_points: int = ODE_POINTS,
                 tolerance: float | None = None) -> dict[str, Any]:
    """Compute the missing `metrics` of a finished run and merge them into its `evaluation.json`;
    returns everything that file then holds."""
    run_dir = Path(run_dir)
    result = read_evaluation(run_dir)
    outdated = _stale_records(result, run_dir)
    todo = _todo(result, outdated, check_metrics(metrics))
    if not todo:
        return result
    redo = [m for m in outdated if m in todo]
    _forget(result, redo)
    saved = rundir.read_arrays(run_dir / TERMS_FILE, fix=EVALUATION_FIX) if (run_dir / TERMS_FILE).is_file() else {}
    if rundir.read_metrics(run_dir) is None:
        raise CheckpointError(f"{run_dir} has not finished training: finish it before evaluating")
    dev = resolve_device(device)
    state = rundir.load_checkpoint(run_dir / rundir.CHECKPOINT_FILE, dev)
    cfg = from_dict(RunConfig, state["config"])
    with rundir.checkpoint_fits(run_dir / rundir.CHECKPOINT_FILE):
        scheduler, model, adaptation = sampling_components(state, dev)
    scale = cfg.data.scale
    points, heldout = heldout_points(cfg, cfg.eval.num_samples)
    x = torch.as_tensor(to_model(points, cfg.data.shift, scale), dtype=torch.float32, device=dev)
    result.update(heldout=heldout, heldout_seed=heldout_seed(cfg))

    def bpd(nats: float) -> float:  # a mean -log p(x), nats per point in model units
        return bits_per_dim(nats, scale)

    def bits(nats) -> Any:  # a difference or spread of -log p: the scale's log cancels, only units change
        return nats / (DIMENSIONS * math.log(2))

    terms: dict[str, np.ndarray] = {}
    if "nll_elbo" in todo or ("kl_exact" in todo and "nll_elbo" not in result):
        start = time.perf_counter()
        extra = [] if isinstance(adaptation, ContinuousNoise) else \
            [(f"{k}_", v) for k, v in cfg.eval.extra_samplers.items()]  # a continuous model has one bound
        for name, sampler in [("", bound_sampler(cfg)), *extra]:
            if sampler.sampler == "ddim":
                continue  # a DDIM chain skips timesteps: not this bound's Markov chain
            bound = sampler_bound(model, adaptation, scheduler, cfg, x, sampler, generator(cfg.seed, "elbo", dev))
            result[f"{name}nll_elbo"] = bpd(bound.mean())
            result[f"{name}nll_elbo_stderr"] = bits(bound.stderr())
            result[f"{name}nll_elbo_prior"] = bits(float(bound.terms["prior"].mean()))
            result[f"{name}nll_elbo_decoder"] = bpd(float(bound.terms["decoder"].mean()))
            if "steps" in bound.terms:
                terms[f"{name}elbo_steps"] = bits(bound.terms["steps"].mean(0))
            for part in ("diffusion", "latent_kl"):  # a continuous-time model's other terms
                if part in bound.terms:
                    result[f"{name}nll_elbo_{part}"] = bits(float(bound.terms[part].mean()))
        result["nll_elbo_time"], result["nll_elbo_points"] = time.perf_counter() - start, len(x)
    if "nll_ode" in todo or ("kl_exact" in todo and "nll_ode" not in result and "nll_ode_skipped" not in result):
        reason = ode_skip_reason(adaptation)
        if reason is not None:
            result["nll_ode_skipped"] = f"{cfg.adaptation.kind}: {reason}"
        else:
            start = time.perf_counter()
            tol = tolerance or ODE_TOLERANCE
            try:
                ode = ode_likelihood(model, adaptation, scheduler, cfg, x[:ode_points], tol)
                sliding = float((ode.terms["nontransversal"] > 0).mean())
                # the solver's own error: the same points again at half the tolerance (a subset: the
                # check's spread is the solver's, not the points', so it needs few of them)
                check = min(ODE_CHECK_POINTS, len(ode.nll))
                half = None if sliding > 0 else \
                    ode_likelihood(model, adaptation, scheduler, cfg, x[:check], tol / 2)
            except MetricError as e:  # the solve failed: this run has no ODE likelihood; a study's others go on
                result.update(nll_ode_skipped=f"{cfg.adaptation.kind}: {e}", nll_ode_solver_tolerance=tol)
            else:
                result.update(nll_ode_points=len(ode.nll), nll_ode_crossings=float(ode.terms["crossings"].mean()),
                              nll_ode_nontransversal=sliding, nll_ode_solver_tolerance=tol)
                if half is None:
                    result["nll_ode_skipped"] = (
                        f"{cfg.adaptation.kind}: the flow slides along a cell edge for {sliding:.1%} of held-out "
                        "points, so it is not invertible and its density there is 0 (-log p infinite)")
                else:
                    result.update(nll_ode=bpd(ode.mean()), nll_ode_stderr=bits(ode.stderr()),
                                  nll_ode_solver_gap=bits(abs(half.mean() - float(ode.nll[:check].mean()))),
                                  nll_ode_check_points=check,
                                  nll_ode_evaluations=int(ode.terms["evaluations"]))
                    if isinstance(adaptation, LatentNoise):  # how its latent was marginalised
                        result[f"nll_ode_{adaptation.latent_count}"] = int(ode.terms["latents"])
                    terms["ode_nll"] = ode.nll
            result["nll_ode_time"] = time.perf_counter() - start
    if "kl_exact" in todo:
        _exact_kl(cfg, result)
    write_json(run_dir / EVALUATION_FILE, finite_or_none(result))
    if terms or "nll_ode" in redo:
        if "nll_ode" in redo:
            saved.pop("ode_nll", None)
        write_npz(run_dir / TERMS_FILE, **{**saved, **terms})
    return result


def ode_likelihood(model, adaptation, scheduler, cfg: RunConfig, x: torch.Tensor, tolerance: float) -> Likelihood:
    """The probability-flow ODE's -log p(x) of `x` `(N, 2)` (model units): a discrete model's with its
    grids' edges (`likelihood.ode_log_likelihood`), or a continuous-time model's, its latent summed or
    importance-sampled out (`continuous`; the draws from the run's stream "ode-latent", the same at
    every tolerance, so the solver check compares like with like)."""
    if isinstance(adaptation, ContinuousNoise):
        return continuous_ode_likelihood(adaptation, continuous_time(model, len(scheduler)), x, tolerance,
                                         generator(cfg.seed, "ode-latent", x.device))
    return ode_log_likelihood(network_noise_model(model, adaptation), scheduler, x, tolerance=tolerance,
                              edges=adaptation.field_edges())


def bound_sampler(cfg: RunConfig) -> SamplerConfig:
    """The sampler a run's own bound is measured for: its `[sampler]`, or for DDIM the full DDPM chain
    it approximates (with its clipping)."""
    return cfg.sampler if cfg.sampler.sampler != "ddim" else SamplerConfig(clip_sample=cfg.sampler.clip_sample)


def sampler_bound(model, adaptation, scheduler, cfg, x: torch.Tensor, sampler: SamplerConfig,
                  gen: torch.Generator):
    """The variational bound of `x` `(N, 2)` (model units) for a DDPM or cell `sampler` of the run, or a
    continuous-time model's bound (its own, whatever the sampler's steps)."""
    if isinstance(adaptation, ContinuousNoise):
        return continuous_bound_likelihood(adaptation, continuous_time(model, len(scheduler)), x, gen)
    clip = sampler.clip_sample
    if sampler.sampler != "cell":
        return variational_bound(model, adaptation, scheduler, x, gen, clip_sample=clip)

    training = torch.as_tensor(model_points(cfg), device=x.device)
    return cell_variational_bound(model, adaptation, cell_prior(adaptation, training), scheduler, x, gen, clip)


def kl_bits(nll_bits: float, entropy_bits: float) -> float:
    """KL(data || model) in bits from -log p in bits per dimension and the data's entropy in bits:
    the expected -log p per point (DIMENSIONS * nll) less the data's own."""
    return DIMENSIONS * nll_bits - entropy_bits


def _exact_kl(cfg, result: dict[str, Any]) -> None:
    """kl_exact (from the ODE) and kl_bound (from the bound), bits, where the data's entropy is known."""
    if not has_density(cfg.dataset):
        result["kl_exact_skipped"] = f"no exact density is known for {cfg.dataset}"
        return
    h = entropy(cfg.dataset)
    result["entropy_bits"] = h.bits
    if "nll_elbo" in result:
        result["kl_bound"] = kl_bits(result["nll_elbo"], h.bits)
    if "nll_ode" in result:
        result["kl_exact"] = kl_bits(result["nll_ode"], h.bits)
        result["kl_exact_stderr"] = math.hypot(2 * result["nll_ode_stderr"], h.stderr / math.log(2))
    else:
        result["kl_exact_skipped"] = result.get("nll_ode_skipped", "no ODE likelihood")


def evaluate_task(run_dir: str, metrics: list[str], ode_points: int, tolerance: float | None) -> dict[str, Any]:
    """Worker side: one run's missing metrics, single-threaded as training tasks are."""
    keep_freed_memory()
    torch.set_num_threads(1)
    return evaluate_run(run_dir, metrics, ode_points=ode_points, tolerance=tolerance)


def evaluate_study(study_dir: str | Path, metrics: list[str], *, cluster: Cluster | None = None,
                   ode_points: int = ODE_POINTS, tolerance: float | None = None, progress: bool = True):
    """Add `metrics` to every finished task of a study that lacks them, one Dask task per run (on a
    `cluster`, by default a local one with a worker process per core); returns an
    `executor.SweepOutcome` (done, skipped: had them already, failed: key -> error)."""
    metrics = check_metrics(metrics)
    results = load_results(study_dir)
    outcome = SweepOutcome()
    pending = []
    for key in sorted(results.metrics):
        name = f"{key[0]}/{key[1]}/seed_{key[2]}"
        if missing(results.run_dir(*key), metrics):
            pending.append((name, results.run_dir(*key)))
        else:
            outcome.skipped.append(name)
            outcome.done.append(name)
    if not pending:
        return outcome
    cluster = cluster or Cluster()
    with client_for(cluster) as client:
        futures = {client.submit(evaluate_task, str(d), metrics, ode_points, tolerance,
                                 key=f"gridnoise-evaluate-{name}", pure=False, resources=task_resources(cluster)): name
                   for name, d in pending}
        collect(futures, outcome, SweepProgress(len(results.metrics), len(outcome.done), client, enabled=progress,
                                                desc="evaluate"))
    return outcome
