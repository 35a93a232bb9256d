"""The `gridnoise` command. Flags map onto `RunConfig` fields; errors print one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridnoise.config import (
    CONNECT_TIMEOUT,
    RunConfig,
    SamplerConfig,
    dumps_toml,
    load_run_config,
    merge_tables,
    override,
    settings_tables,
)
from gridnoise.errors import CheckpointError, ConfigError, GridnoiseError, OutputExistsError, exit_code, one_line
from gridnoise.presets import VARIANTS
from gridnoise.registry import SAMPLERS
from gridnoise.threads import MAX_THREADS, default_threads
from gridnoise.version import __version__

# Each command imports the modules it needs when it runs: those load numpy, torch, matplotlib or
# Dask, and `gridnoise --help` or a usage error should answer in a few tens of milliseconds.

EPILOG = ("Variants: baseline, grid10, grid20, multiscale, multiscale_l1 (the original study's), their *_data versions "
          "(grids over the data's extent), conditioning[_multiscale], reverse_variance[_multiscale|_constant], "
          "and in continuous time vdm[_fixed], mulan, mulan_cells. "
          "Data sets: see `gridnoise datasets`; a data file or a plug-in also works. Any setting: --set "
          "section.key=value (see `gridnoise config show`).")


def _comma_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


# flag -> (RunConfig field path, type, choices or None, help); the default shown is RunConfig's
RUN_FLAGS: dict[str, tuple[str, Callable[[str], Any], tuple[str, ...] | None, str]] = {
    "--dataset": ("dataset", str, None, "a data set (see `gridnoise datasets`), a data file (.npy, .npz, .csv, "
                                        ".tsv, .txt) or a plug-in module:function"),
    "--variant": ("variant", str, tuple(VARIANTS), "a named variant (its adaptation preset)"),
    "--seed": ("seed", int, None, "seed for initialisation, noise, batches and sampling"),
    "--steps": ("train.steps", int, None, "training steps"),
    "--batch-size": ("train.batch_size", int, None, "batch size"),
    "--lr": ("train.lr", float, None, "AdamW learning rate"),
    "--timesteps": ("diffusion.num_timesteps", int, None, "diffusion steps T"),
    "--beta-schedule": ("diffusion.beta_schedule", str, ("linear", "quadratic", "cosine"), "beta schedule"),
    "--num-samples": ("eval.num_samples", int, None, "samples drawn for evaluation"),
    "--n-points": ("n_points", int, None, "points drawn from a generated data set"),
    "--device": ("device", str, None, "auto, cpu, cuda or cuda:N"),
    "--precision": ("precision", str, ("fp32", "bf16"), "fp32 (exact) or bf16 (autocast matmuls; opt-in)"),
    "--data-key": ("data.key", str, None, "the array of an .npz --dataset file (empty: its only array)"),
    "--columns": ("data.columns", _comma_list, None,
                  "x,y: the columns of a .csv/.tsv --dataset file, by header name or 0-based index"),
    "--standardize": ("data.standardize", str, ("auto", "always", "never"),
                      "scale data to the model's [-4, 4] (auto: only data far from it)"),
    "--log": ("log.trackers", _comma_list, None, "also log to these trackers: tensorboard, mlflow or both, "
                                                  "comma-separated (optional extras: in a clone of gridnoise, "
                                                  "pip install -e \".[tensorboard,mlflow]\")"),
    "--mlflow-uri": ("log.mlflow_tracking_uri", str, None,
                     "MLflow tracking URI (empty: $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db)"),
}


def _config_default(path: str) -> Any:
    target: Any = RunConfig()
    for name in path.split("."):
        target = getattr(target, name)
    return target


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (where it has one worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" not in text and "default" not in text and action.option_strings \
                and action.default not in (None, False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix (and exit status 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"gridnoise: error: {message} - see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="gridnoise", description=__doc__, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"gridnoise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    train = sub.add_parser("train", help="train, evaluate and sample one model", epilog=EPILOG)
    train.add_argument("--out", required=True, type=Path, help="run directory to write")
    train.add_argument("--config", type=Path, help="TOML file with RunConfig tables (flags override it)")
    for flag, (path, typ, choices, help_text) in RUN_FLAGS.items():
        default = _config_default(path)
        train.add_argument(flag, type=typ, choices=choices, default=None,
                           help=f"{help_text} (default: {default if default != [] else 'none'})")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="settings",
                       help="any config setting, e.g. train.ema_decay=0.99 or adaptation.grids={grid=5} "
                            "(a TOML value; repeatable; applied after --config and the flags)")
    train.add_argument("--threads", type=int, help="torch threads (default: the idle cores, at most "
                                                   f"{MAX_THREADS})")
    train.add_argument("--grid-extent", type=float, nargs=4, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                       help="rectangle the grids cover (default the original study's -1 1 -1 1)")
    train.add_argument("--datasaurus", type=Path, help="path of DatasaurusDozen.tsv (offline dino)")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    smp = sub.add_parser("sample", help="draw samples from a trained run")
    smp.add_argument("run_dir", type=Path)
    smp.add_argument("-n", "--num-samples", type=int, default=10_000, help="points to draw")
    smp.add_argument("--seed", type=int, help="sampling seed (default: the run's own, which redraws its samples.npz)")
    smp.add_argument("--out", type=Path, required=True, help=".npz file to write (key: samples)")
    smp.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    smp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    anim = sub.add_parser("animate", help="write a GIF of a trained run's reverse process")
    anim.add_argument("run_dir", type=Path)
    anim.add_argument("-n", "--num-samples", type=int, default=2000, help="points to animate")
    anim.add_argument("--seed", type=int, help="sampling seed (default: the run's own)")
    anim.add_argument("--out", type=Path, help="GIF to write (default RUN_DIR/reverse_process.gif)")
    anim.add_argument("--fps", type=int, default=10, help="frames per second")
    anim.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    anim.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    for p in (smp, anim):
        p.add_argument("--sampler", choices=tuple(SAMPLERS), default="ddpm",
                       help="reverse-process sampler: " + "; ".join(f"{s.name}: {s.description}"
                                                                     for s in SAMPLERS.values()))
        p.add_argument("--sample-steps", type=int, default=0, help="DDIM steps (default: all T)")
        p.add_argument("--eta", type=float, default=0.0, help="DDIM noise in [0, 1] (0: deterministic)")
        p.add_argument("--clip-sample", type=float, default=0.0, metavar="C",
                       help="clip each step's predicted x_0 to [-C, C] (default 0: off)")

    for name, help_text in (("run", "run a study declared in an experiment file, on Dask"),
                            ("reproduce", "run the original study (the bundled original.toml)"),
                            ("tune", "tune every run of an experiment on every data set with the same Optuna budget "
                                     "(its search spaces and [tune] table), on Dask; writes tuned.toml")):
        study = sub.add_parser(name, help=help_text)
        if name != "reproduce":
            study.add_argument("experiment", type=Path, help="experiment TOML file")
        study.add_argument("--out", type=Path, default=Path("results") if name == "reproduce" else None,
                           required=name != "reproduce",
                           help="tuning directory" if name == "tune" else "study directory (default for reproduce: "
                                                                          "results)")
        if name == "tune":
            study.add_argument("--trials", type=int, help="trials per run and data set (default: [tune] trials); "
                                                          "a larger number adds trials to a finished tuning")
        else:
            study.add_argument("--seeds", type=_int_list, help="comma-separated seeds, e.g. 0,1,2")
        study.add_argument("--steps", type=int, help="training steps of every task")
        study.add_argument("--datasets", type=_comma_list, help="comma-separated data sets")
        study.add_argument("--precision", choices=("fp32", "bf16"),
                           help="fp32 (default, exact) or bf16 autocast for every task (opt-in)")
        _add_cluster_arguments(study)
        study.add_argument("--datasaurus", type=Path, help="path of DatasaurusDozen.tsv (offline dino)")
        study.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="settings",
                           help="a config setting for every run, laid over the experiment's defaults (repeatable)")
        study.add_argument("--log", type=_comma_list, metavar="TRACKERS",
                           help="also log every task to tensorboard, mlflow or both (comma-separated; a task's "
                                "TensorBoard events go to its directory, MLflow runs to one experiment named "
                                "after the study)")
        study.add_argument("--mlflow-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                                "sqlite:///OUT/mlflow.db)")
        study.add_argument("--no-progress", action="store_true")

    evaluate = sub.add_parser("evaluate", help="add metrics (likelihoods) to a finished run or study from its "
                                               "checkpoints; training results and task hashes stay as they are")
    evaluate.add_argument("path", type=Path, metavar="RUN_OR_STUDY_DIR")
    evaluate.add_argument("--metrics", type=_comma_list, required=True,
                          help="comma-separated: nll_elbo (variational bound), nll_ode (probability-flow ODE), "
                               "kl_exact (KL from the data's exact density)")
    evaluate.add_argument("--ode-points", type=int, default=1000, help="held-out points for the ODE likelihood")
    evaluate.add_argument("--tolerance", type=float, help="ODE solver rtol = atol (default 1e-5; the first 100 points "
                          "are solved again at half of it, for nll_ode_solver_gap)")
    _add_cluster_arguments(evaluate)
    evaluate.add_argument("--datasaurus", type=Path, help="path of DatasaurusDozen.tsv (offline dino)")
    evaluate.add_argument("--no-progress", action="store_true", help="hide a study's progress bar")

    plot = sub.add_parser("plot", help="draw every figure of a run directory (samples.png, loss.png, grids.png, "
                                       "and the per-snapshot heatmaps, drawn only here) or of a study directory, "
                                       "from saved files; never trains")
    plot.add_argument("study_dir", type=Path, metavar="RUN_OR_STUDY_DIR")
    report = sub.add_parser("report", help="rebuild a study's (or a tuning's) summaries, figures, report.md and "
                                           "report.html")
    report.add_argument("study_dir", type=Path)
    report.add_argument("--dest", type=Path,
                        help="write report.md, report.html and figures here (default: the study dir)")
    report.add_argument("--baseline", metavar="RUN",
                        help="compare every run with this run of the study instead of its baseline (e.g. a "
                             "control; give a --dest to keep the study's own report)")
    report.add_argument("--primary", metavar="METRIC",
                        help="judge the verdict on this metric instead of the experiment's primary (e.g. "
                             "nll_elbo against a baseline without an ODE likelihood); the report says so")

    cluster = sub.add_parser("cluster", help="show how a study's tasks would reach a cluster")
    cluster_sub = cluster.add_subparsers(dest="cluster_command", required=True, parser_class=OneLineParser)
    job = cluster_sub.add_parser("show", help="print the Slurm job script that --cluster slurm would submit "
                                              "(nothing is submitted)")
    job.add_argument("experiment", type=Path, nargs="?", help="an experiment file whose [cluster] table to use")
    job.add_argument("--cluster", choices=("slurm",), default="slurm", help="the cluster kind")
    _add_slurm_arguments(job)

    config = sub.add_parser("config", help="show a resolved configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, parser_class=OneLineParser)
    show = config_sub.add_parser("show", help="print the resolved configuration as TOML (every setting)")
    show.add_argument("--variant", choices=tuple(VARIANTS), help="resolve this variant's preset")
    show.add_argument("--config", type=Path, help="a TOML file to start from")
    show.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="settings",
                      help="settings on top, as for train")

    data = sub.add_parser("datasets", help="list the data sets; with --plot, draw them all in one figure")
    data.add_argument("--plot", type=Path, metavar="FILE.png", help="write a figure of every data set here")
    data.add_argument("-n", "--num-points", type=int, default=5000, help="points drawn per data set (default 5000)")
    data.add_argument("--seed", type=int, default=42, help="the data sets' generator seed (default 42, the study's)")
    data.add_argument("--datasaurus", type=Path, help="path of DatasaurusDozen.tsv (offline dino)")

    compare = sub.add_parser("compare", help="compare a metric between two studies of the same runs "
                                             "(e.g. fp32 against bf16), per run, data set and seed")
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    compare.add_argument("--metric", default="kl_divergence")

    bench = sub.add_parser("bench", help="measure speed against a plain PyTorch loop and the matmul peak")
    bench.add_argument("--steps", type=int, default=300, help="timed training steps per measurement")
    bench.add_argument("--samples", type=int, default=10_000, help="points drawn in the sampling measurement")
    bench.add_argument("--n-points", type=int, default=100_000, help="data set size")
    bench.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the machine figure")
    bench.add_argument("--repeats", type=int, default=3, help="report the best of this many measurements")
    bench.add_argument("--task-steps", type=int, default=10_000,
                       help="steps of the grid task whose time beyond training and sampling is measured, and of "
                            "the baseline task whose likelihood evaluation is timed against its training")
    bench.add_argument("--ode-points", type=int, default=500, help="held-out points of that likelihood's ODE")
    bench.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write the results")
    bench.add_argument("--levers", action="store_true",
                       help="also time the levers that were weighed and rejected (torch.compile, vmap)")
    return parser


# flag -> (SlurmSettings field, type, help): the command line's [cluster] settings, over the experiment file's
SLURM_FLAGS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "--queue": ("queue", str, "Slurm partition of the worker jobs"),
    "--account": ("account", str, "Slurm account charged for the jobs"),
    "--cores": ("cores", int, "cores per job"),
    "--memory": ("memory", str, "memory per job, e.g. 8GB"),
    "--processes": ("processes", int, "worker processes per job"),
    "--walltime": ("walltime", str, "time limit per job, e.g. 02:00:00 (workers retire before it)"),
    "--maximum-jobs": ("maximum_jobs", int, "jobs at once, at most"),
    "--gpus": ("gpus", int, "GPUs per job: 0 or 1"),
    "--python": ("python", str, "the Python the jobs run (needs gridnoise installed)"),
    "--start-timeout": ("start_timeout", float, "seconds the first job may take to start its worker"),
}


def _add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """The [cluster] settings as flags (over the experiment file's, over dask-jobqueue's configuration)."""
    group = parser.add_argument_group("Slurm jobs (--cluster slurm; default: the experiment's [cluster] table, "
                                      "then dask-jobqueue's jobqueue.slurm configuration)")
    for flag, (name, typ, help_text) in SLURM_FLAGS.items():
        group.add_argument(flag, dest=f"slurm_{name}", metavar=name.upper(), type=typ, help=help_text)
    group.add_argument("--job-extra", dest="slurm_job_extra_directives", action="append", metavar="DIRECTIVE",
                       help="an extra #SBATCH directive, e.g. --job-extra=--qos=long (repeatable)")
    group.add_argument("--prologue", dest="slurm_job_script_prologue", action="append", metavar="LINE",
                       help="a shell line the job runs before its worker, e.g. 'module load python' (repeatable)")


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a study command's tasks run: local processes, an existing Dask scheduler, or Slurm jobs."""
    parser.add_argument("--cluster", choices=("local", "slurm"), default="local",
                        help="local: worker processes on this machine; slurm: Slurm jobs hosting Dask workers "
                             "(dask-jobqueue)")
    parser.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    parser.add_argument("--scheduler", dest="address", metavar="ADDRESS",
                        help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--scheduler-file", type=Path, metavar="PATH",
                        help="the file of an existing Dask scheduler (dask scheduler --scheduler-file PATH)")
    parser.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT, metavar="SECONDS",
                        help="how long to wait for the --scheduler or --scheduler-file")
    _add_slurm_arguments(parser)


def _cluster(args: argparse.Namespace, settings=None):
    """The `Cluster` the command line names, with `settings` (an experiment's [cluster]) under its flags."""
    from gridnoise.study.cluster import make_cluster

    overrides = {k[len("slurm_"):]: v for k, v in vars(args).items() if k.startswith("slurm_")}
    given = [name for name, value in overrides.items() if value is not None]
    if given and args.cluster != "slurm":
        flags = ", ".join("--" + {"job_extra_directives": "job-extra", "job_script_prologue": "prologue"}.get(
            name, name.replace("_", "-")) for name in given)
        raise ConfigError(f"{flags}: Slurm job settings, but the tasks run locally: add --cluster slurm, or drop them")
    return make_cluster(args.cluster, workers=getattr(args, "workers", None), address=getattr(args, "address", None),
                        scheduler_file=getattr(args, "scheduler_file", None),
                        connect_timeout=getattr(args, "connect_timeout", CONNECT_TIMEOUT), settings=settings,
                        overrides=overrides)


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The saved config (on --resume) or --config or the defaults, with the flags and then --set on top."""
    from gridnoise import rundir
    saved = args.out / rundir.CONFIG_FILE
    if args.resume and saved.is_file() and args.config is None:
        base = load_run_config(saved)
    else:
        base = load_run_config(args.config) if args.config is not None else RunConfig()
    flags: dict[str, Any] = {}
    for flag, (path, _, _, _) in RUN_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            flags = merge_tables(flags, _table(path, value))
    if args.grid_extent is not None:
        flags = merge_tables(flags, {"adaptation": {"extent": list(args.grid_extent)}})
    return override(base, merge_tables(flags, settings_tables(args.settings)))


def _table(path: str, value: Any) -> dict[str, Any]:
    """A dotted setting as nested tables: `_table("train.lr", 1e-3)` is {"train": {"lr": 0.001}}."""
    *parents, leaf = path.split(".")
    table: dict[str, Any] = {leaf: value}
    for name in reversed(parents):
        table = {name: table}
    return table


def cmd_train(args: argparse.Namespace) -> int:

    from gridnoise.run import train_run

    if args.datasaurus is not None:
        os.environ["GRIDNOISE_DATASAURUS"] = str(args.datasaurus)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {args.threads})")
    cfg = run_config_from_args(args)
    _use_threads(args.threads)
    _warn_if_slow(cfg)
    metrics = train_run(cfg, args.out, overwrite=args.overwrite, resume=args.resume,
                        progress=not args.no_progress)
    print(f"{cfg.dataset} / {cfg.variant} (seed {cfg.seed}) -> {args.out}")
    for key, value in metrics.items():
        print(f"  {key:22s} {value:.6g}")
    return 0


def _use_threads(threads: int | None = None) -> None:
    """torch's threads for a command that computes in this process: `threads`, else the idle cores
    (torch's own default, every core, oversubscribes a busy machine and slows it several fold)."""
    import torch

    torch.set_num_threads(threads or default_threads())


def cmd_sample(args: argparse.Namespace) -> int:
    from gridnoise.files import write_npz
    from gridnoise.sampling import sample_run

    if args.num_samples < 1:
        raise ConfigError(f"-n must be >= 1 (got {args.num_samples})")
    if args.out.suffix != ".npz":
        raise ConfigError(f"sample writes .npz files: give --out a name ending in .npz (got {args.out})")
    if args.out.exists() and not args.overwrite:
        raise OutputExistsError(f"{args.out} exists: pass --overwrite to replace it or choose another --out")
    _use_threads()
    samples = sample_run(args.run_dir, args.num_samples, args.seed, args.device, _sampler(args))
    write_npz(args.out, samples=samples)
    print(f"{len(samples)} samples -> {args.out}")
    return 0


def _warn_if_slow(*configs) -> None:
    """One line on stderr, once, when a run's precision has no hardware support on its device."""
    from gridnoise.components import resolve_device
    from gridnoise.precision import slow_precision_warning

    for cfg in configs:
        message = slow_precision_warning(cfg.precision, resolve_device(cfg.device))
        if message:
            print(f"gridnoise: warning: {message}", file=sys.stderr)
            return


def _sampler(args: argparse.Namespace):

    return SamplerConfig(sampler=args.sampler, steps=args.sample_steps, eta=args.eta, clip_sample=args.clip_sample)


def cmd_animate(args: argparse.Namespace) -> int:
    from gridnoise import rundir
    from gridnoise.report.animate import write_gif

    rundir.read_config(args.run_dir)  # a one-line error for anything that is not a run directory
    out = args.out or args.run_dir / rundir.ANIMATION_FILE
    if args.num_samples < 1 or args.fps < 1:
        raise ConfigError("-n and --fps must be >= 1")
    if out.suffix != ".gif":
        raise ConfigError(f"animate writes GIF files: give --out a name ending in .gif (got {out})")
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out} exists: pass --overwrite to replace it or choose another --out")
    _use_threads()
    write_gif(args.run_dir, out, args.num_samples, args.seed, _sampler(args), args.fps, args.device)
    print(f"reverse process -> {out}")
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from gridnoise.study.executor import run_tasks
    from gridnoise.study.experiment import bundled, load_experiment

    if args.datasaurus is not None:
        os.environ["GRIDNOISE_DATASAURUS"] = str(args.datasaurus.resolve())
    path = bundled("original") if args.command == "reproduce" else args.experiment
    settings = settings_tables(args.settings)
    if args.log is not None:
        settings.setdefault("log", {})["trackers"] = args.log
    if args.mlflow_uri is not None:
        settings.setdefault("log", {})["mlflow_tracking_uri"] = args.mlflow_uri
    exp = load_experiment(path).restricted(seeds=getattr(args, "seeds", None), datasets=args.datasets,
                                           steps=args.steps, precision=args.precision, settings=settings)
    cluster = _cluster(args, exp.cluster)
    if args.command == "tune":
        return _tune(exp, cluster, args)
    if not cluster.remote:  # remote workers may have other CPUs than this one
        _warn_if_slow(*(exp.config(run, exp.datasets[0], exp.seeds[0]) for run in exp.runs))
    outcome = run_tasks(exp, args.out, cluster, progress=not args.no_progress)
    return _study_outcome(outcome, args.out, exp.name, "already finished", "no task finished")


def _tune(exp, cluster, args: argparse.Namespace) -> int:
    from gridnoise.report.tuning import write_tuning_outputs
    from gridnoise.study.tune import tune

    outcome = tune(exp, args.out, trials=args.trials, cluster=cluster, progress=not args.no_progress)
    for name, arm in outcome.arms.items():
        best = f"best {arm['best_value']:.4g} with {arm['best_params']}" if "best_params" in arm else \
            "no finished trial"
        failed = f", {arm['fail']} failed" if arm["fail"] else ""
        print(f"  {name}: {arm['trials']} trials ({arm['pruned']} pruned{failed}); {best}")
    report = write_tuning_outputs(args.out)
    if outcome.tuned_file is None:
        print(f"gridnoise: no tuned experiment: {', '.join(outcome.incomplete)} finished no trial (report: {report})",
              file=sys.stderr)
        return 1
    print(f"{exp.name}: tuned -> {outcome.tuned_file}, report -> {report}")
    return 0


def _study_outcome(outcome, study_dir: Path, what: str, skipped: str, nothing: str) -> int:
    """Print a study command's failures and tally, rebuild its report if any task is done; the exit status."""
    for key, error in outcome.failed.items():
        print(f"gridnoise: task {key} failed: {error}", file=sys.stderr)
    from gridnoise.report.outputs import write_study_outputs

    report = write_study_outputs(study_dir) if outcome.done else f"no report ({nothing})"
    print(f"{what}: {len(outcome.done)} tasks done ({len(outcome.skipped)} {skipped}), "
          f"{len(outcome.failed)} failed -> {report}")
    return 1 if outcome.failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gridnoise import rundir
    from gridnoise.study.evaluation import check_metrics, evaluate_run, evaluate_study

    if args.datasaurus is not None:
        os.environ["GRIDNOISE_DATASAURUS"] = str(args.datasaurus.resolve())
    metrics = check_metrics(args.metrics)
    if args.ode_points < 2 or (args.tolerance is not None and not 0 < args.tolerance < 1):
        raise ConfigError("--ode-points must be >= 2 and --tolerance in (0, 1)")
    if (args.path / rundir.CONFIG_FILE).is_file():  # one run directory
        _use_threads()
        result = evaluate_run(args.path, metrics, ode_points=args.ode_points, tolerance=args.tolerance)
        for key in sorted(result):
            print(f"  {key:28s} {result[key]}")
        if (args.path / rundir.LIKELIHOOD_TERMS_FILE).is_file():
            from gridnoise.report.run_figures import draw_likelihood_figure

            print(f"-> {draw_likelihood_figure(args.path)}")
        return 0
    outcome = evaluate_study(args.path, metrics, cluster=_cluster(args), ode_points=args.ode_points,
                             tolerance=args.tolerance, progress=not args.no_progress)
    return _study_outcome(outcome, args.path, ", ".join(metrics), "had them", "no task evaluated")


def cmd_plot(args: argparse.Namespace) -> int:
    from gridnoise import rundir
    path = args.study_dir
    if (path / rundir.CONFIG_FILE).is_file():  # a run directory
        from gridnoise.report.run_figures import draw_run_figures

        if not (path / rundir.LOSSES_FILE).is_file():
            raise CheckpointError(f"{path} has not finished training: resume it (train --resume) before plotting")
        written = draw_run_figures(path)
        print(f"{len(written)} figures -> {path}")
        return 0
    from gridnoise.report.outputs import write_study_outputs

    print(f"figures -> {write_study_outputs(path, report=False, redraw=True)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gridnoise.report.outputs import write_study_outputs
    from gridnoise.report.tuning import write_tuning_outputs
    from gridnoise.rundir import TUNING_FILE

    if (args.study_dir / TUNING_FILE).is_file():  # a tuning directory (gridnoise tune)
        print(f"report -> {write_tuning_outputs(args.study_dir, args.dest)}")
        return 0
    print(f"report -> {write_study_outputs(args.study_dir, args.dest, baseline=args.baseline, primary=args.primary)}")
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from gridnoise.study.cluster import SlurmSettings, job_script
    from gridnoise.study.experiment import load_experiment

    settings = load_experiment(args.experiment).cluster if args.experiment is not None else SlurmSettings()
    print(job_script(_cluster(args, settings).slurm), end="")
    return 0


def cmd_config(args: argparse.Namespace) -> int:

    cfg = load_run_config(args.config) if args.config is not None else RunConfig()
    if args.variant is not None:
        cfg = override(cfg, {"variant": args.variant})
    print(dumps_toml(override(cfg, settings_tables(args.settings))), end="")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from gridnoise.data import DATASETS, DESCRIPTIONS, STUDY_DATASETS, load

    for name in DATASETS:
        print(f"{name:13s} {DESCRIPTIONS[name]}{'  (original study)' if name in STUDY_DATASETS else ''}")
    if args.plot is None:
        return 0
    from gridnoise.report.run_figures import datasets_figure, save_figure

    if args.plot.suffix != ".png":
        raise ConfigError(f"--plot writes PNG: give a file ending in .png (got {args.plot})")
    points = {name: load(name, args.num_points, seed=args.seed, datasaurus_path=args.datasaurus)
              for name in DATASETS}
    print(f"figure -> {save_figure(datasets_figure(points), args.plot)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from gridnoise.report.markdown import table
    from gridnoise.report.sections import study_comparison
    from gridnoise.study.results import load_results

    print(table(study_comparison(load_results(args.first), load_results(args.second), args.metric)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from gridnoise.bench import BenchSettings, format_table, run_bench
    from gridnoise.files import write_json

    if min(args.steps, args.samples, args.workers, args.repeats, args.task_steps) < 1 \
            or args.n_points < BENCH_MIN_POINTS or args.ode_points < 2:
        raise ConfigError("--steps, --samples, --workers, --task-steps and --repeats must be >= 1, --ode-points >= 2 "
                          f"and --n-points >= {BENCH_MIN_POINTS}")
    result = run_bench(BenchSettings(steps=args.steps, warmup=min(30, args.steps), samples=args.samples,
                                     n_points=args.n_points, workers=args.workers, repeats=args.repeats,
                                     levers=args.levers, task_steps=args.task_steps, ode_points=args.ode_points))
    print(format_table(result))
    write_json(args.json, result)
    print(f"-> {args.json}")
    return 0


BENCH_MIN_POINTS = 256  # one full batch

COMMANDS = {"train": cmd_train, "sample": cmd_sample, "run": cmd_study, "reproduce": cmd_study, "tune": cmd_study,
            "plot": cmd_plot, "report": cmd_report, "bench": cmd_bench, "evaluate": cmd_evaluate,
            "animate": cmd_animate, "compare": cmd_compare, "datasets": cmd_datasets, "config": cmd_config,
            "cluster": cmd_cluster}


def main(argv: list[str] | None = None) -> int:
    """Run one command; any error a user can fix (and any OS error) ends in one line on stderr."""

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (GridnoiseError, OSError) as e:
        print(f"gridnoise: error: {one_line(e)}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        print("gridnoise: interrupted - run the same command with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
