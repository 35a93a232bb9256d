"""Experiment trackers: a run's curves, figures, config and final metrics in TensorBoard or MLflow.

A run's own files (`gridnoise.rundir`) are written either way; `[log] trackers` (the `--log`
flag) adds trackers on top, each an optional extra (in a clone, `pip install -e ".[tensorboard]"`,
`".[mlflow]"`). While training, every `train.log_every` steps, a run logs

    train/loss, train/mse     the mean over the steps since the last log (loss includes the penalty)
    train/lr                  the learning rate of the next step
    train/<grid>_variance     each grid's variance over all entries (grid runs)
    train/kl_divergence       the intermediate KL estimates, when `eval.kl_every` asks for them

and at each grid snapshot the grids figure (`grids` image, t = 0, T/4, T/2, 3T/4, T-1). When it
ends it logs the config as parameters (`train.lr`, `adaptation.grids`, ...), the final metrics under
their `metrics.json` names, and the run's figures (samples, loss, grids) as images.

Names group a study's runs: TensorBoard writes into each run directory's `tensorboard/`, so
`tensorboard --logdir STUDY` lists `<run>/<dataset>/seed_<s>/tensorboard`; MLflow puts every task
of a study into one experiment (the study's name) as a run named `<run>/<dataset>/seed_<s>`, tagged
`run`, `dataset`, `seed` and `variant`. MLflow's store is `log.mlflow_tracking_uri`, else
`$MLFLOW_TRACKING_URI`, else a local SQLite store beside the results (`mlflow.db`, artifacts in
`mlartifacts/`): `mlflow ui --backend-store-uri sqlite:///STUDY/mlflow.db`.

A resumed run continues where it stopped: TensorBoard drops the events logged after the
checkpoint it resumes from (purge_step), MLflow reopens the same run (its id is kept in
`tracking.json`). Nothing here draws random numbers, so logging never changes a result.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gridnoise import rundir
from gridnoise.adaptation import grid_label
from gridnoise.config import check_trackers, to_dict
from gridnoise.errors import ConfigError
from gridnoise.files import write_json
from gridnoise.metrics import grid_variance
from gridnoise.report.run_figures import grids_figure, plt
from gridnoise.rundir import MLFLOW_ARTIFACTS, MLFLOW_DB, TENSORBOARD_DIR, TRACKING_FILE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gridnoise.config import RunConfig
    from gridnoise.trainer import Trainer

DEFAULT_EXPERIMENT = "gridnoise"  # the MLflow experiment of runs outside a study
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter's value
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch call
DRAWN_POINTS = 5000  # data points drawn over the logged grid figures


CONFIG_SECTIONS = ("diffusion", "model", "adaptation", "train", "eval", "data")


def flat_params(cfg: RunConfig) -> dict[str, str | float | int | bool]:
    """The config as `section.key` -> value: numbers, strings and booleans as they are, lists and
    tables (`adaptation.grids`) as JSON. The `log` table is left out: it changes no result."""
    out: dict[str, str | float | int | bool] = {}

    def put(key: str, value: Any) -> None:
        scalar = isinstance(value, bool | int | float | str)
        out[key] = value if scalar else json.dumps(value, sort_keys=True)[:MAX_PARAM_LENGTH]

    for key, value in to_dict(cfg).items():
        if key in CONFIG_SECTIONS:
            for name, inner in value.items():
                put(f"{key}.{name}", inner)
        elif key != "log":
            put(key, value)
    return out


def mlflow_store(cfg: RunConfig, root: Path) -> str:
    """The MLflow tracking URI of a run or study at `root`: the configured one, else
    `$MLFLOW_TRACKING_URI`, else the local SQLite store `root/mlflow.db`."""
    return (cfg.log.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path(root).resolve() / MLFLOW_DB}")


def mlflow_experiment(uri: str, name: str) -> str:
    """The id of MLflow experiment `name` in the store at `uri`, created when missing (with its
    artifacts beside a local SQLite store); safe when several workers race to create it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / MLFLOW_ARTIFACTS).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except MlflowException:  # another worker created it first
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _png(fig: Figure) -> np.ndarray:
    """A figure as an RGB uint8 array `(H, W, 3)`."""
    from matplotlib.image import imread

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    buffer.seek(0)
    return _rgb(imread(buffer))


def _rgb(image: np.ndarray) -> np.ndarray:
    """An image from matplotlib's imread (floats in [0, 1], RGB or RGBA) as RGB uint8 `(H, W, 3)`."""
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


class Tracker:
    """What every tracker takes; see TensorBoardTracker and MLflowTracker."""

    def scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An RGB uint8 image `(H, W, 3)`."""
        raise NotImplementedError

    def finish(self, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """The config as parameters and the final metrics."""
        raise NotImplementedError

    def close(self, status: str = "FINISHED") -> None:
        """FINISHED, FAILED or KILLED."""


class TensorBoardTracker(Tracker):
    """Event files in `run_dir/tensorboard/`: scalars, images, and the config with the final metrics
    in TensorBoard's HParams view (and as text)."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: TensorBoard drops what earlier sessions logged after the checkpoint resumed from
        # (a step's scalars and images are logged before its checkpoint is saved, so they stay)
        self.writer = SummaryWriter(str(Path(run_dir) / TENSORBOARD_DIR), purge_step=resume_step + 1)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def finish(self, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
        for summary in hparams(params, finite):  # the HParams view: one row per run
            self.writer._get_file_writer().add_summary(summary, step)
        self.scalars(finite, step)
        self.writer.add_text("config", "\n".join(f"    {k} = {v}" for k, v in params.items()), step)

    def close(self, status: str = "FINISHED") -> None:
        self.writer.close()


class MLflowTracker(Tracker):
    """One MLflow run per gridnoise run (reopened on resume): metrics with their steps, images
    (`log_image`, a slider over steps in the UI), parameters, tags and the final metrics."""

    def __init__(self, cfg: RunConfig, run_dir: Path):
        uri = mlflow_store(cfg, run_dir)
        try:
            self._open(cfg, run_dir, uri)
        except Exception as e:  # MLflow's errors for a bad URI or an unreachable server are many
            message = " ".join(str(e).split())[:300]
            raise ConfigError(f"cannot log to MLflow at {uri} ({type(e).__name__}: {message}): give a working "
                              "--mlflow-uri, or drop --log mlflow") from None

    def _open(self, cfg: RunConfig, run_dir: Path, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        record = Path(run_dir) / TRACKING_FILE
        saved = json.loads(record.read_text()) if record.is_file() else {}
        run_id = saved.get("mlflow_run_id") if saved.get("mlflow_tracking_uri") == uri else None
        if run_id is not None and self._exists(run_id):
            self.client.update_run(run_id, status="RUNNING")
        else:
            experiment = mlflow_experiment(uri, cfg.log.mlflow_experiment or DEFAULT_EXPERIMENT)
            name = cfg.log.run_name or f"{cfg.variant}/{Path(cfg.dataset).name}/seed_{cfg.seed}"
            tags = {"run": name.split("/")[0], "dataset": cfg.dataset, "seed": str(cfg.seed), "variant": cfg.variant,
                    "gridnoise.run_dir": str(Path(run_dir).resolve())}
            run_id = self.client.create_run(experiment, run_name=name, tags=tags).info.run_id
            write_json(record, {"mlflow_run_id": run_id, "mlflow_tracking_uri": uri})
        self.run_id: str = run_id

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def scalars(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image, key=tag, step=step)

    def finish(self, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        logged = self.client.get_run(self.run_id).data.params  # a resumed run has them already
        items = [p for p in items if p.key not in logged]
        for i in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + PARAMS_PER_BATCH])
        self.scalars({k: v for k, v in metrics.items() if np.isfinite(v)}, step)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def open_trackers(cfg: RunConfig, run_dir: Path, resume_step: int = 0) -> list[Tracker]:
    """The trackers `cfg.log.trackers` names, opened for the run in `run_dir`."""
    check_trackers(cfg.log.trackers)
    return [TensorBoardTracker(run_dir, resume_step) if name == "tensorboard" else MLflowTracker(cfg, run_dir)
            for name in cfg.log.trackers]


class RunLog:
    """What a training run logs to its trackers, and when (see the module's docstring); with no
    trackers every method returns at once."""

    def __init__(self, cfg: RunConfig, run_dir: Path, resume_step: int = 0,
                 points: np.ndarray | None = None):
        """`points` `(N, 2)`: the data in its own units, drawn over the grid figures."""
        self.cfg, self.run_dir = cfg, Path(run_dir)
        if points is not None and len(points) > DRAWN_POINTS:  # a seeded subsample, drawn over the grids
            points = points[np.random.default_rng(0).permutation(len(points))[:DRAWN_POINTS]]
        self.points = points
        self.trackers = open_trackers(cfg, self.run_dir, resume_step) if cfg.log.trackers else []
        self.since = resume_step  # the first step of the current loss window

    def _each(self, method: str, *args) -> None:
        for tracker in self.trackers:
            getattr(tracker, method)(*args)

    def training(self, trainer: Trainer) -> None:
        """Loss and MSE averaged since the last call, the learning rate, each grid's variance."""
        if not self.trackers or trainer.step <= self.since:
            return
        window = slice(self.since, trainer.step)
        values = {"train/loss": float(trainer.losses[window].mean()), "train/mse": float(trainer.mse[window].mean()),
                  "train/lr": float(trainer.lr_scheduler.get_last_lr()[0])}
        for name, grid in trainer.adaptation.grids().items():
            values[f"train/{grid_label(name)}_variance"] = grid_variance(grid)
        self._each("scalars", values, trainer.step)
        self.since = trainer.step

    def kl(self, step: int, value: float) -> None:
        if self.trackers:
            self._each("scalars", {"train/kl_divergence": value}, step)

    def grids(self, step: int, grids: dict[str, np.ndarray], extent) -> None:
        """The grids `(T, n, n)` by label at `figure_timesteps(T)` over the data, as the `grids` image."""
        if not self.trackers:
            return

        fig = grids_figure(grids, extent, points=self.points, title=f"learned noise scales g at step {step}")
        try:
            image = _png(fig)
        finally:
            plt.close(fig)
        self._each("image", "grids", image, step)

    def finish(self, metrics: dict[str, float], step: int) -> None:
        """Config and final metrics, and the run's figures (samples.png, loss.png, grids.png) as images."""
        if not self.trackers:
            return
        from matplotlib.image import imread


        self._each("finish", flat_params(self.cfg), metrics, step)
        for name in (rundir.SAMPLES_FIGURE, rundir.LOSS_FIGURE, rundir.GRIDS_FIGURE):
            if (self.run_dir / name).is_file():
                self._each("image", f"figures/{Path(name).stem}", _rgb(imread(self.run_dir / name)), step)

    def close(self, status: str = "FINISHED") -> None:
        self._each("close", status)
        self.trackers = []
