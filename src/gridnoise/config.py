"""Typed run configuration: dataclasses with a comment on every default, loaded from TOML.

One `RunConfig` describes one model on one data set; the CLI and experiment files map onto
it. Unknown keys and wrongly typed values are errors, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from gridnoise.errors import ConfigError
from gridnoise.presets import ORIGINAL_EXTENT, VARIANTS
from gridnoise.registry import SAMPLERS


@dataclass
class DiffusionConfig:
    """The discrete forward process: T timesteps and the beta schedule."""

    num_timesteps: int = 100  # T
    beta_schedule: Literal["linear", "quadratic", "cosine"] = "linear"  # cosine ignores beta_start/end
    beta_start: float = 1e-4  # beta_1
    beta_end: float = 0.02  # beta_T
    zero_terminal_snr: bool = False  # rescale the schedule so abar_T = 0 (Lin et al. 2024)


@dataclass
class SamplerConfig:
    """A reverse-process sampler: DDPM's ancestral steps, DDIM over `steps` timesteps, or "cell", the
    original mechanism's consistent sampler (its clean point's cell as a latent variable; see
    `gridnoise.cell_sampler`)."""

    sampler: str = "ddpm"  # a name in gridnoise.registry.SAMPLERS
    steps: int = 0  # DDIM timesteps (0: all T); DDPM always takes all T, a continuous-time model this many (0: T)
    eta: float = 0.0  # DDIM noise: 0 deterministic, 1 the DDPM posterior variance
    # Clip each step's predicted x_0 to [-c, c] (0: off), as diffusers' clip_sample_range. Needed
    # where 1/sqrt(abar_t) is huge at the last timesteps (cosine or zero-SNR schedules at small T).
    clip_sample: float = 0.0


@dataclass
class ModelConfig:
    """The denoiser: a residual MLP over sinusoidal embeddings of x, y and t (`gridnoise.model`)."""

    embedding_dim: int = 128  # sinusoidal embedding size per input (x, y, t)
    hidden_dim: int = 256  # width of the residual blocks
    hidden_layers: int = 3  # residual blocks
    input_scale: float = 25.0  # coordinates are multiplied by this before embedding
    time_scale: float = 1.0  # timesteps are multiplied by this before embedding


CONNECT_TIMEOUT = 10.0  # seconds to wait for an existing Dask scheduler (--connect-timeout)

# Values renamed after results were saved under the old spelling: the old one is still accepted
# (and is what task hashes see, so finished studies stay finished).
RENAMED_VALUES: dict[str, str] = {"seed_grid": "original_grid"}


@dataclass
class AdaptationConfig:
    """How the noise is adapted over the plane; `kind = "none"` is plain DDPM."""

    # none: DDPM; original_grid: the original study's (g scales the forward noise, looked up at x_0
    # in training; "seed_grid" is its old name); conditioning: g looked up at x_t and fed to the
    # denoiser; reverse_variance: g scales the reverse step's noise std (see adaptation.py); or a
    # plug-in: "module:Class" or an entry point of the group gridnoise.adaptations (see plugins.py)
    kind: str = "none"
    # name -> cells per side; several grids multiply (the study's multi-scale: coarse=5, fine=20)
    grids: dict[str, int] = field(default_factory=dict)
    # name -> weight of the L1 penalty sum|G - 1| on that grid
    l1: dict[str, float] = field(default_factory=dict)
    # (xmin, xmax, ymin, ymax) covered by every grid; the original study's [-1, 1]^2
    extent: list[float] = field(default_factory=lambda: list(ORIGINAL_EXTENT))
    # true: ignore `extent` and span the training data's bounding box plus a 5% margin
    extent_from_data: bool = False
    # The continuous-time kinds (vdm, mulan, mulan_cells; see continuous.py), whose log-SNR schedule runs
    # between the discrete schedule's ends (those of [diffusion]):
    learned_schedule: bool = True  # vdm: learn gamma(t)'s shape (VDM's monotone network); false: linear
    learn_ends: bool = False  # also learn gamma(0) and gamma(1)
    latent_dim: int = 2  # mulan: dimensions of the latent z

    def __post_init__(self):
        self.kind = RENAMED_VALUES.get(self.kind, self.kind)


@dataclass
class TrainConfig:
    """Optimiser, EMA, checkpoints and logging of a training run (`gridnoise.trainer`)."""

    steps: int = 10_000  # training steps (optimiser updates)
    batch_size: int = 256  # points per step
    lr: float = 3e-4  # AdamW, cosine-annealed to 0 over `steps`
    weight_decay: float = 0.01  # torch's AdamW default; the original study applies it to the grids too
    grid_lr_factor: float = 1.0  # the grids' learning rate is lr times this (the original study: 1)
    grid_weight_decay_factor: float = 1.0  # the grids' weight decay is weight_decay times this (0: none)
    grad_clip: float = 0.5  # max gradient norm of the network
    grid_grad_clip: float = 0.5  # max gradient norm of the grids, clipped separately
    ema_decay: float = 0.995  # cap of the EMA decay
    ema_update_every: int = 10  # EMA is updated on every 10th step
    ema_warmup_steps: int = 100  # EMA copies the weights outright up to this step
    ema_power: float = 2 / 3  # decay warms up as 1 - (1 + k)^-power
    ema_grids: bool = False  # the original study samples with the raw (non-averaged) grids
    checkpoint_every: int = 1000  # save checkpoint.pt this often (a resumed run continues from the last one)
    grid_snapshot_every: int = 1000  # save every grid this often (as data; `gridnoise plot` draws them)
    log_every: int = 100  # progress-bar refresh and non-finite-loss check


@dataclass
class DataConfig:
    """How a data file is read and scaled (registered data sets ignore `key` and `columns`)."""

    key: str = ""  # the array of an .npz file (empty: its only array)
    columns: list[str] = field(default_factory=list)  # CSV/TSV x and y columns, by header name or 0-based index
    # auto: move and scale data far from the study's [-4, 4] (see datafile.py); always; never
    standardize: Literal["auto", "always", "never"] = "auto"
    # Draw a registered data set with data_seed + seed, so each seed of a study trains on its own draw
    # and its intervals cover the data's sampling too; off, every seed trains on the same draw.
    follow_seed: bool = False
    # Filled in when the run starts, and saved with it:
    sha256: str = ""  # of the data file: a study notices when its data changed
    shift: list[float] = field(default_factory=list)  # x_model = (x - shift) / scale; empty: not resolved yet
    scale: float = 1.0  # one factor for both axes (1: not scaled)


@dataclass
class EvalConfig:
    """What a run measures when it finishes training (and, with `kl_every`, while it trains)."""

    num_samples: int = 10_000  # samples drawn with the EMA network for samples.npz and the sample metrics
    kl_k: int = 5  # neighbours in the KL estimator
    kl_every: int = 0  # also estimate KL every this many steps during training (0: never)
    kl_every_samples: int = 2000  # samples drawn for each of those intermediate estimates
    # more samplers to evaluate the trained run with, by name (e.g. ddim20 = {sampler = "ddim", steps = 20});
    # each adds <name>_kl_divergence, <name>_w2 and <name>_inference_time to metrics.json
    extra_samplers: dict[str, SamplerConfig] = field(default_factory=dict)


@dataclass
class LogConfig:
    """Experiment trackers the run also logs to (`gridnoise.tracking`); its own files are written
    either way. Not part of what a run computes: it never changes a task's hash, and a run may be
    resumed with other trackers."""

    trackers: list[str] = field(default_factory=list)  # "tensorboard", "mlflow" (optional extras)
    # empty: $MLFLOW_TRACKING_URI, else a local store: sqlite:///<run or study dir>/mlflow.db
    mlflow_tracking_uri: str = ""
    mlflow_experiment: str = ""  # empty: a study's name, or "gridnoise" for a single run
    run_name: str = ""  # the tracker's run name; empty: <variant>/<dataset>/seed_<seed> (a study's: <run>/...)


@dataclass
class RunConfig:
    """Every setting of one run: one model on one data set. Its tables are the dataclasses above; the
    documentation's configuration reference lists every key with its default. Without an
    `adaptation`, `RunConfig(variant="grid10")` resolves the variant's preset wherever it is built."""

    dataset: str = "moons"  # a data set's name, a data file's path, or a plug-in (module:function)
    variant: str = "baseline"  # preset name; `adaptation` holds what it resolved to
    seed: int = 0  # fixes initialisation, noise, timesteps, batches and sampling
    data_seed: int = 42  # the data sets' own generator seed (the original study's); see data.follow_seed
    n_points: int = 100_000  # points drawn from a generated data set (a data file uses every row)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: network matmuls under autocast (opt-in)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    # the sampler a run's samples.npz and sample metrics are drawn with (and its bound measured for)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # None (the default): the variant's preset, resolved when the config is built
    adaptation: AdaptationConfig = None  # type: ignore[assignment]
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    data: DataConfig = field(default_factory=DataConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self):
        if self.adaptation is None:
            self.adaptation = adaptation_for(self.variant)

    @property
    def training_data_seed(self) -> int:
        """The seed a registered data set is drawn with for training: `data_seed`, plus the run's
        `seed` with `data.follow_seed`."""
        return self.data_seed + self.seed if self.data.follow_seed else self.data_seed

    def validate(self) -> RunConfig:
        """Check values that types alone cannot; raise ConfigError naming the fix."""
        from gridnoise.plugins import adaptation_class

        _check_finite(self)
        check_trackers(self.log.trackers)
        from gridnoise.data import check_dataset  # numpy: kept out of the command line's start-up

        check_dataset(self.dataset)
        t, m = self.train, self.model
        checks = [
            (self.seed >= 0 and self.data_seed >= 0, "seeds must be >= 0"),
            (t.lr > 0, f"train.lr must be > 0 (got {t.lr})"),
            (t.weight_decay >= 0, f"train.weight_decay must be >= 0 (got {t.weight_decay})"),
            (t.grid_lr_factor > 0 and t.grid_weight_decay_factor >= 0,
             f"train.grid_lr_factor must be > 0 and grid_weight_decay_factor >= 0 (got {t.grid_lr_factor}, "
             f"{t.grid_weight_decay_factor})"),
            (t.grad_clip > 0 and t.grid_grad_clip > 0, "train.grad_clip and train.grid_grad_clip must be > 0"),
            (0 <= t.ema_decay < 1, f"train.ema_decay must be in [0, 1) (got {t.ema_decay})"),
            (t.ema_update_every >= 1 and t.ema_warmup_steps >= 0 and t.ema_power > 0,
             "train.ema_update_every must be >= 1, ema_warmup_steps >= 0 and ema_power > 0"),
            (min(t.checkpoint_every, t.grid_snapshot_every, t.log_every) >= 1,
             "train.checkpoint_every, grid_snapshot_every and log_every must be >= 1"),
            (m.embedding_dim >= 4 and m.embedding_dim % 2 == 0,
             f"model.embedding_dim must be even and >= 4 (got {m.embedding_dim})"),
            (m.hidden_dim >= 1 and m.hidden_layers >= 0, "model.hidden_dim must be >= 1 and hidden_layers >= 0"),
            (m.input_scale > 0 and m.time_scale > 0, "model.input_scale and time_scale must be > 0"),
            (self.eval.kl_k >= 1, f"eval.kl_k must be >= 1 (got {self.eval.kl_k})"),
            (all(w >= 0 for w in self.adaptation.l1.values()), "adaptation.l1 weights must be >= 0"),
            (self.train.steps >= 1, f"steps must be >= 1 (got {self.train.steps})"),
            (self.train.batch_size >= 1, f"batch size must be >= 1 (got {self.train.batch_size})"),
            (self.diffusion.num_timesteps >= 2, f"T must be >= 2 (got {self.diffusion.num_timesteps})"),
            (0 < self.diffusion.beta_start < self.diffusion.beta_end < 1,
             "betas must satisfy 0 < beta_start < beta_end < 1"),
            (self.n_points > self.eval.kl_k, f"n_points must exceed kl_k={self.eval.kl_k}"),
            (self.eval.num_samples >= self.eval.kl_k, f"num_samples must be >= kl_k={self.eval.kl_k}"),
            (self.eval.kl_every >= 0, f"kl_every must be >= 0 (got {self.eval.kl_every})"),
            (self.eval.kl_every == 0 or self.eval.kl_every_samples >= self.eval.kl_k,
             f"kl_every_samples must be >= kl_k={self.eval.kl_k}"),
            (self.diffusion.beta_schedule in ("linear", "quadratic", "cosine"),
             f"unknown beta schedule '{self.diffusion.beta_schedule}': use linear, quadratic or cosine"),
            (self.precision in ("fp32", "bf16"), f"unknown precision '{self.precision}': use fp32 or bf16"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        a = self.adaptation
        for name, size in a.grids.items():
            if size < 1:
                raise ConfigError(f"grid '{name}' has size {size}: grid sizes must be >= 1")
        if a.latent_dim < 1:
            raise ConfigError(f"adaptation.latent_dim must be >= 1 (got {a.latent_dim})")
        adaptation_class(a.kind).check_config(a)
        unknown = set(a.l1) - set(a.grids)
        if unknown:
            raise ConfigError(f"L1 weight for unknown grid(s) {sorted(unknown)}: name one of {sorted(a.grids)}")
        check_sampler(self.sampler, self.diffusion.num_timesteps, a.kind, "sampler")
        for name, sampler in self.eval.extra_samplers.items():
            check_sampler(sampler, self.diffusion.num_timesteps, a.kind, f"eval.extra_samplers.{name}")
        xmin, xmax, ymin, ymax = _extent(a.extent)
        if not (xmin < xmax and ymin < ymax):
            raise ConfigError(f"grid extent {a.extent} is empty: need xmin < xmax and ymin < ymax")
        return self


TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # log.trackers -> the module each needs


def check_trackers(names: list[str]) -> None:
    """Raise ConfigError for an unknown tracker, or one whose library is not installed."""
    import importlib.util

    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker '{name}' in log.trackers (--log): choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ConfigError(f"--log {name} needs {name}, an optional extra: pip install {name} (in a clone of "
                              f"gridnoise: pip install -e \".[{name}]\")")


def _check_finite(cfg: Any, where: str = "") -> None:
    """Raise ConfigError naming the first float setting that is NaN or infinite."""
    for f in dataclasses.fields(cfg):
        value, name = getattr(cfg, f.name), f"{where}{f.name}"
        values = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for v in values:
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                _check_finite(v, f"{name}.")
            elif isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{name} = {v} is not a finite number: give a finite value")


def check_sampler(sampler: SamplerConfig, num_timesteps: int, kind: str, where: str = "sampler") -> None:
    """Raise ConfigError (SamplerError where the adaptation is the reason) for a sampler the run cannot use."""
    from gridnoise.adaptation import check_supported
    from gridnoise.plugins import adaptation_class

    if sampler.sampler not in SAMPLERS:
        raise ConfigError(f"{where}: unknown sampler '{sampler.sampler}': use {', '.join(SAMPLERS)}")
    if sampler.sampler == "cell" and sampler.steps not in (0, num_timesteps):
        raise ConfigError(f"{where}: the cell sampler takes all T = {num_timesteps} steps "
                          f"(got steps = {sampler.steps}): leave steps at 0")
    continuous = adaptation_class(kind).process == "continuous"  # any number of steps samples its model
    if not 0 <= sampler.steps <= (sampler.steps if continuous else num_timesteps):
        limit = "be >= 0" if continuous else f"be between 1 and T = {num_timesteps}"
        raise ConfigError(f"{where}: sample steps must {limit} (got {sampler.steps})")
    if not 0 <= sampler.eta <= 1:
        raise ConfigError(f"{where}: eta must be in [0, 1] (got {sampler.eta})")
    if not sampler.clip_sample >= 0:
        raise ConfigError(f"{where}: clip_sample must be >= 0 (0: off; got {sampler.clip_sample})")
    check_supported(adaptation_class(kind), sampler.sampler, where)


def _extent(values: list[float]) -> tuple[float, float, float, float]:
    if len(values) != 4:
        raise ConfigError(f"grid extent must be [xmin, xmax, ymin, ymax], got {values}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as plain dicts/lists, ready for TOML or JSON."""
    return dataclasses.asdict(cfg)


# Settings added after the first release, with the value that reproduces earlier runs: at that
# value they are left out of comparisons, so results computed before they existed still match.
_ADDED_SETTINGS: dict[tuple[str, ...], Any] = {
    ("precision",): "fp32",
    ("adaptation", "extent_from_data"): False,
    ("adaptation", "learned_schedule"): True,
    ("adaptation", "learn_ends"): False,
    ("adaptation", "latent_dim"): 2,
    ("diffusion", "zero_terminal_snr"): False,
    ("eval", "extra_samplers"): {},
    ("train", "grid_lr_factor"): 1.0,
    ("train", "grid_weight_decay_factor"): 1.0,
    ("sampler",): {"sampler": "ddpm", "steps": 0, "eta": 0.0, "clip_sample": 0.0},
}
_DERIVED = ("shift", "scale")  # data.shift and data.scale follow from the data and data.standardize
_ADDED_SAMPLER_SETTINGS: dict[str, Any] = {"clip_sample": 0.0}  # the same, inside each eval.extra_samplers entry
HASHED_AS = {new: old for old, new in RENAMED_VALUES.items()}  # renamed values compare under their old name


def comparable_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config without `device` and `log`: where a run trains and what it logs to do not change
    what it computes."""
    d = to_dict(cfg)
    d.pop("device")
    d.pop("log")
    data = {k: v for k, v in d.pop("data").items() if k not in _DERIVED}
    if data != {k: v for k, v in to_dict(DataConfig()).items() if k not in _DERIVED}:
        d["data"] = data  # a table added later: only a non-default one takes part
    d["adaptation"]["kind"] = HASHED_AS.get(d["adaptation"]["kind"], d["adaptation"]["kind"])
    for path, default in _ADDED_SETTINGS.items():
        *parents, key = path
        table = d
        for name in parents:
            table = table[name]
        if table.get(key) == default:
            del table[key]
    for sampler in d["eval"].get("extra_samplers", {}).values():
        for key, default in _ADDED_SAMPLER_SETTINGS.items():
            if sampler.get(key) == default:
                del sampler[key]
    return d


def override(base: RunConfig | None = None, tables: dict[str, Any] | None = None, where: str = "") -> RunConfig:
    """`base` (default: `RunConfig()`) with `tables` laid over it (`merge_tables`), type-checked and
    validated: the one way a config is changed, by command-line flags and `--set`, an experiment's
    defaults and runs, and `gridnoise.make_config`. Naming another variant starts from its
    adaptation preset; the tables' own adaptation settings then go on top."""
    data = to_dict(base if base is not None else RunConfig())
    tables = tables or {}
    variant = tables.get("variant")
    if isinstance(variant, str) and variant != data["variant"]:
        data["adaptation"] = to_dict(adaptation_for(variant))
    return from_dict(RunConfig, merge_tables(data, tables), where).validate()


def merge_tables(base: dict[str, Any], tables: dict[str, Any], cls: type | None = None) -> dict[str, Any]:
    """`base` (config tables as dicts) with `tables` laid over it, as a new dict: a config table's
    keys are replaced one by one, nested tables likewise, and any other value whole (a dict-valued
    setting such as `adaptation.grids` too, so a run can swap a preset's grids for others). Keys the
    config does not have are kept for `from_dict` to refuse."""
    hints = typing.get_type_hints(cls or RunConfig)
    merged = copy.deepcopy(base)
    for key, value in tables.items():
        hint = hints.get(key)
        table = isinstance(hint, type) and dataclasses.is_dataclass(hint)
        if table and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_tables(merged[key], value, hint)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_setting(item: str) -> tuple[list[str], Any]:
    """`section.key=value` as (keys, value); the value is read as TOML, a bare word as a string."""
    path, sep, text = item.partition("=")
    keys = path.strip().split(".")
    if not sep or not all(keys):
        raise ConfigError(f"--set takes section.key=value, e.g. train.lr=1e-3 (got '{item}')")
    try:
        parsed = tomllib.loads(f"v = {text.strip()}")
    except tomllib.TOMLDecodeError:
        return keys, text.strip()  # a bare word: a string
    if set(parsed) != {"v"}:  # a value with a line break would smuggle in more settings
        raise ConfigError(f"--set {path.strip()}: the value is more than one TOML value ({text.strip()!r}): "
                          "give one value per --set")
    return keys, parsed["v"]


def settings_tables(items: list[str]) -> dict[str, Any]:
    """`--set` items as nested tables, e.g. ["train.lr=1e-3"] -> {"train": {"lr": 0.001}}."""
    tables: dict[str, Any] = {}
    for item in items:
        keys, value = parse_setting(item)
        table = tables
        for name in keys[:-1]:
            inner = table.setdefault(name, {})
            if not isinstance(inner, dict):
                raise ConfigError(f"--set {'.'.join(keys)}: '{name}' is set to a value above - set the "
                                  "table's keys, or the whole table once")
            table = inner
        table[keys[-1]] = value
    return tables


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from nested dicts, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where or 'config'}] must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in [{where or 'config'}]: valid keys are {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(hints[key], value, f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is Literal:
        value = RENAMED_VALUES.get(value, value) if isinstance(value, str) else value
        if value not in typing.get_args(hint):
            options = ", ".join(map(str, typing.get_args(hint)))
            raise ConfigError(f"{where} = {value!r} is not allowed: choose one of {options}")
        return value
    if origin is dict:
        _, vtype = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return {str(k): _coerce(vtype, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        (itype,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(itype, v, where) for v in value]
    if origin in (types.UnionType, typing.Union):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def load_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Read a TOML file into dicts, with a one-line error naming the file (`what` says which kind)
    when it is missing, unreadable, not UTF-8, malformed or holds no settings at all (an empty
    file is more likely a failed write than a wish for every default)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path} - check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory: give a TOML file") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror} - check the path and permissions") from None
    except UnicodeDecodeError as e:  # tomllib decodes the bytes itself, before parsing
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {e.start}): save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"malformed TOML in {path}: {e} - fix the file there") from None
    if not data:
        raise ConfigError(f"{what} {path} is empty (no settings): write the settings into it")
    return data


@contextlib.contextmanager
def naming(source: str | Path) -> Iterator[None]:
    """Config errors raised inside say which file holds the bad value (`source`), once."""
    try:
        yield
    except ConfigError as e:
        text = str(e)
        raise type(e)(text if str(source) in text else f"{source}: {text}") from None


def adaptation_for(variant: str) -> AdaptationConfig:
    """The adaptation settings of a named variant (see `gridnoise.presets`); unknown names raise ConfigError."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant '{variant}': choose one of {', '.join(VARIANTS)}")
    return AdaptationConfig(**copy.deepcopy(VARIANTS[variant]))


def load_run_config(path: str | Path) -> RunConfig:
    """A validated RunConfig from TOML; without an [adaptation] table the variant's preset is used."""
    with naming(path):
        return from_dict(RunConfig, load_toml(path)).validate()


def dumps_toml(cfg: Any) -> str:
    return tomli_w.dumps(to_dict(cfg))
