"""What gridnoise knows about its metrics and samplers, in one place.

Every module that names a metric (training, `gridnoise evaluate`, a study's results, the report,
its figures and report.html) or a sampler (configs, the command line, the schedulers) reads it
here. Adding a metric is one `Metric` entry plus the function that computes it; adding a sampler
is one `Sampler` entry plus its steps. The entries are plain data, so reading them imports
nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["sample", "likelihood", "loss", "time", "diagnostic"]


@dataclass(frozen=True)
class Metric:
    """One metric a run records.

    kind: "sample" (the samples against the data), "likelihood" (of held-out data under the model),
    "loss" (the training objective), "time" (seconds), "diagnostic" (describes a run, better in no
    direction). `comparable`: whether values of different variants can be set side by side (the
    eval loss cannot where the forward noise differs). `needs`: what computing it takes: "samples",
    "data", "checkpoint", "density" (the data's exact density), or another metric's name.
    `source`: "training" (metrics.json), "evaluate" (a `gridnoise evaluate --metrics` choice, in
    evaluation.json) or "derived" (written with another metric, named in `needs`). `description`:
    what it measures and how, as the documentation's metric reference shows it.
    """

    name: str
    title: str
    unit: str = ""
    direction: Literal["lower", "higher"] | None = "lower"
    kind: Kind = "sample"
    comparable: bool = True
    needs: tuple[str, ...] = ("samples", "data")
    source: Literal["training", "evaluate", "derived"] = "training"
    caveat: str = ""  # what a reader must know when comparing it
    description: str = ""  # what it measures and how (the reference page of the documentation lists it)

    @property
    def from_ode(self) -> bool:
        """Whether it comes from the probability-flow ODE (none where the flow slides on a cell edge)."""
        return self.name == "nll_ode" or "nll_ode" in self.needs


_LIKELIHOOD = ("checkpoint", "data")
# In the order reports list them.
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("kl_divergence", "KL divergence (bits)", "bits",
           description="k-NN (k = 5, max-norm) estimate of KL(data ‖ samples) in bits, 100000 data points against "
                       "10000 samples"),
    Metric("w2", "Wasserstein-2",
           description="exact Wasserstein-2 distance (POT `emd2`) between 2000 samples and 2000 data points, "
                       "seeded subsamples; finite samples keep it above 0 even for a perfect model, so compare "
                       "variants at the same n"),
    Metric("sliced_w2", "Sliced Wasserstein-2",
           description="sliced Wasserstein-2 over 100 seeded directions, 4000 against 4000 points"),
    Metric("mmd", "MMD^2 (RBF, unbiased)",
           description="squared MMD, unbiased, RBF kernel with the median pairwise distance as bandwidth, 1000 "
                       "against 1000 points"),
    Metric("precision", "Precision (k-NN)", direction="higher",
           description="k-NN precision (Kynkäänniemi et al. 2019, k = 3): the share of samples inside the data's "
                       "manifold"),
    Metric("recall", "Recall (k-NN)", direction="higher",
           description="k-NN recall (Kynkäänniemi et al. 2019, k = 3): the share of data points inside the "
                       "samples' manifold"),
    Metric("eval_loss", "Eval loss", kind="loss", comparable=False, needs=("checkpoint", "data"),
           caveat="not comparable across variants whose forward noise differs",
           description="noise MSE over one pass of the data, with the trained weights"),
    Metric("training_time", "Training time (s)", "s", kind="time", needs=(),
           description="seconds of the training loop"),
    Metric("inference_time", "Inference time (s)", "s", kind="time", needs=(),
           description="seconds to draw the run's samples (`eval.num_samples`, 10000 by default)"),
    Metric("grid_variance", "Grid variance", direction=None, kind="diagnostic", needs=("checkpoint",),
           description="unbiased variance over all entries of a run's one grid (the original study's \"noise "
                       "adaptation effectiveness\")"),
    Metric("coarse_grid_variance", "Coarse grid variance", direction=None, kind="diagnostic", needs=("checkpoint",),
           description="the same for a multi-scale run's coarse grid"),
    Metric("fine_grid_variance", "Fine grid variance", direction=None, kind="diagnostic", needs=("checkpoint",),
           description="the same for a multi-scale run's fine grid"),
    Metric("nll_elbo", "Variational bound on -log p (bits/dim)", "bits/dim", kind="likelihood", needs=_LIKELIHOOD,
           source="evaluate",
           description="variational bound on -log p(x) of held-out points, bits per dimension in the data's units, "
                       "with `nll_elbo_stderr`"),
    Metric("nll_ode", "ODE likelihood -log p (bits/dim)", "bits/dim", kind="likelihood", needs=_LIKELIHOOD,
           source="evaluate",
           description="exact -log p(x) of the probability-flow ODE, bits per dimension, with `nll_ode_stderr`, "
                       "`nll_ode_solver_gap`, `nll_ode_crossings` and `nll_ode_nontransversal`; for models whose "
                       "reverse step is the standard posterior one (not `reverse_variance`), with the density's "
                       "jump added at every grid cell edge a trajectory crosses, and none where the flow slides "
                       "along an edge (`nll_ode_skipped` says why)"),
    Metric("kl_exact", "Exact KL (bits)", "bits", kind="likelihood", needs=(*_LIKELIHOOD, "density", "nll_ode"),
           source="evaluate",
           description="KL(data ‖ model) in bits: the cross-entropy from `nll_ode` minus the data set's exact "
                       "entropy, with `kl_exact_stderr`; data sets with a known density only"),
    Metric("kl_bound", "KL upper bound from the variational bound (bits)", "bits", kind="likelihood",
           needs=(*_LIKELIHOOD, "density", "nll_elbo"), source="derived",
           description="the same from `nll_elbo`: an upper bound on KL(data ‖ model)"),
)}


def metric_title(name: str) -> str:
    """How reports and figures name a metric (its own name for one the registry does not know)."""
    return METRICS[name].title if name in METRICS else name


def metrics_where(*, kind: tuple[str, ...] | None = None, source: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Names of the registered metrics of these kinds and sources, in registry order."""
    return tuple(m.name for m in METRICS.values()
                 if (kind is None or m.kind in kind) and (source is None or m.source in source))


# The sample metrics `gridnoise.metrics.sample_quality` returns (all but the k-NN KL, which has its own estimator).
SAMPLE_QUALITY = tuple(m for m in metrics_where(kind=("sample",)) if m != "kl_divergence")
# The metrics `gridnoise evaluate --metrics` computes.
EVALUATED = metrics_where(source=("evaluate",))
# Compared with the baseline in every report's difference tables (likelihoods have their own section).
COMPARED = metrics_where(kind=("sample", "loss", "time"))
# Drawn as forest plots of the paired difference from the baseline.
FOREST = metrics_where(kind=("sample", "likelihood"), source=("training", "evaluate"))
# What an experiment may declare as its primary metric (`[experiment] primary`): comparable, with a direction.
PRIMARY_CHOICES = tuple(m.name for m in METRICS.values() if m.kind in ("sample", "likelihood") and m.direction
                        and m.comparable)
LOWER_IS_BETTER = frozenset(m.name for m in METRICS.values() if m.direction == "lower")


@dataclass(frozen=True)
class Sampler:
    """A reverse-process sampler: its name, what it does, and the noise scheduler whose timesteps and
    schedule it uses (`gridnoise.schedulers.SCHEDULERS`)."""

    name: str
    description: str
    scheduler: Literal["ddpm", "ddim"]


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("ddpm", "DDPM's ancestral steps, all T of them (Ho et al. 2020, Algorithm 2)", "ddpm"),
    Sampler("ddim", "DDIM over `steps` timesteps with noise `eta` (Song et al. 2021, eq. 12)", "ddim"),
    Sampler("cell", "the original grid mechanism's consistent sampler: the clean point's cell as a latent "
                    "(gridnoise.cell_sampler)", "ddpm"),
)}
