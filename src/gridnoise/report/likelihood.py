"""The report's likelihood sections, for a study whose runs `gridnoise evaluate` gave likelihoods.

- **Likelihood verdict:** per data set, every run against the baseline on the variational bound
  (`nll_elbo`) and the probability-flow ODE (`nll_ode`), in bits per dimension: paired differences
  over seeds with 95% intervals and Holm-corrected paired t-tests, and a plain statement of whether
  any grid adaptation improves likelihood anywhere, and on `scales`, where local scales differ most.
  A run with extra samplers (the original mechanism's `cell` sampler) appears once per sampler.
- **The study's KL, checked:** the k-nearest-neighbour KL of the samples next to the exact KL
  (ODE cross-entropy minus the data's entropy, `densities`), and whether the two rank the runs the
  same way (Kendall's tau over the runs' means).
"""

from __future__ import annotations

import math

from scipy.stats import kendalltau

from gridnoise import rundir
from gridnoise.report.blocks import ALPHA, Block, Section, Table, fmt, fmt_ci, paired_tests, verdict
from gridnoise.report.stats import paired_comparison
from gridnoise.study.results import StudyResults

LIKELIHOODS = (("nll_elbo", "bound"), ("nll_ode", "ODE"))
SCALES_DATASET = "scales"  # where local noise scales differ most


def _has(results: StudyResults, metric: str) -> bool:
    return any(metric in m for m in results.metrics.values())


def samplers(results: StudyResults, run: str) -> list[str]:
    """The metric prefixes of a run's samplers with a bound: "" (its own) and each extra one's."""
    names = {k[: -len("nll_elbo")] for key, m in results.metrics.items() if key[0] == run for k in m
             if k.endswith("nll_elbo")}
    return sorted(names, key=lambda p: (p != "", p))


def _label(run: dict, prefix: str = "") -> str:
    return f"{run['name']} {run['label']}" + (f" ({prefix.rstrip('_')} sampler)" if prefix else "")


def share_text(share: float) -> str:
    """A share of points as a percentage that never rounds a few points to "0%": 21%, 0.4%, <0.1%."""
    if share >= 0.01 or share == 0:
        return f"{share:.0%}"
    return f"{share:.1%}" if share >= 0.001 else "<0.1%"


def ode_absent(results: StudyResults, run: str, dataset: str) -> str:
    """Why a (run, data set) has no ODE likelihood, in a few words for a table cell."""
    sliding = results.sliding(run, dataset)
    if sliding:
        low, high = min(sliding), max(sliding)
        share = share_text(high) if share_text(low) == share_text(high) else f"{share_text(low)}-{share_text(high)}"
        seeds = len(results.seeds(run, dataset))
        where = "" if len(sliding) == seeds else f" on {len(sliding)} of {seeds} seeds"
        return f"none: the flow slides along cell edges ({share} of points{where}), not invertible"
    for seed in results.seeds(run, dataset):
        path = results.run_dir(run, dataset, seed) / rundir.EVALUATION_FILE
        reason = rundir.read_json(path, rundir.EVALUATION_FILE).get("nll_ode_skipped") if path.is_file() else None
        if reason:
            return "none: " + reason.split(": ", 1)[-1]
    return "-"


def _pairs(results: StudyResults, metric: str) -> dict:
    """(run label, data set) -> ({seed: baseline value}, {seed: run value}) for every non-baseline run and
    sampler (the baseline's own `metric` against `<sampler>_<metric>`)."""
    pairs = {}
    for run in results.runs:
        prefixes = samplers(results, run["name"]) if metric == "nll_elbo" else [""]
        for prefix in prefixes:
            if run["name"] == results.baseline and not prefix:
                continue
            label = _label(run, prefix)
            for dataset in results.datasets:
                pairs[(label, dataset)] = (results.values(results.baseline, dataset, metric),
                                           results.values(run["name"], dataset, prefix + metric))
    return pairs


def likelihood_section(results: StudyResults, claims: dict) -> Section:
    """Every run against the baseline on each likelihood the study has, per data set, and the verdict.
    A run's own sampler is judged as the whole report judges it (`claims`: `claims.study_tests`); the
    extra samplers' bounds are Holm-corrected among themselves."""
    found = [(metric, name) for metric, name in LIKELIHOODS if _has(results, metric)]
    if not found:
        return Section(None)
    own = {_label(run): run["name"] for run in results.runs}
    tests = {}
    for metric, _ in found:
        extra = {key: pair for key, pair in _pairs(results, metric).items() if key[0] not in own}
        label_of = {run: label for label, run in own.items()}
        tests[metric] = {(label_of[run], d): (c.test, c.p_holm, c.verdict)
                         for (run, d), c in claims.get(metric, {}).items()}
        tests[metric].update({key: (test, p, _word(verdict(test, p)))
                              for key, (test, p) in paired_tests(extra).items()})
    blocks: list[Block] = [
        "Negative log-likelihood of held-out points in bits per dimension (lower is better), as "
        "`gridnoise evaluate` measured it: the variational bound (an upper bound for every variant, with "
        "each variant's own reverse step) and the exact likelihood of the probability-flow ODE (models whose "
        "reverse step is the standard posterior one; where a grid's g makes the field jump at a cell edge, the "
        "density's jump is added at each crossing, and a model whose flow slides along an edge has none, since "
        "its flow is not invertible there). Differences are run - baseline on the same seeds, with "
        f"95% t-intervals and paired t-tests at {ALPHA}, Holm-corrected as in the difference tables (an extra "
        "sampler's bound: over the extra samplers' rows). `better`/`worse` on the bound means a tighter/looser "
        "bound."]
    absent = own
    models = {_label(run, prefix) for run in results.runs for prefix in samplers(results, run["name"]) if prefix}
    better: dict[str, list[str]] = {name: [] for _, name in found}
    for dataset in results.datasets:
        rows = []
        labels = sorted({label for metric, _ in found for (label, d) in tests[metric] if d == dataset})
        for label in labels:
            cells = []
            for metric, name in found:
                if (label, dataset) not in tests[metric]:
                    why = "-"
                    if metric == "nll_ode" and label in absent:
                        why = ode_absent(results, absent[label], dataset)
                    elif metric == "nll_ode" and label in models:
                        why = "the model's, with its standard sampler"
                    cells += [why, "-"]
                    continue
                test, p, v = tests[metric][(label, dataset)]
                ci = "" if math.isnan(test.ci_lo) else f" [{fmt(test.ci_lo)}, {fmt(test.ci_hi)}]"
                cells += [f"{fmt(test.mean_diff)}{ci}", v]
                if v == "better":
                    better[name].append(f"{label} on {dataset} ({name}: {fmt(test.mean_diff)} bits/dim)")
            rows.append([label] + cells)
        if rows:
            header = ["run"] + [h for _, name in found for h in (f"{name} diff [95% CI]", f"{name} verdict")]
            blocks.append(Table(header, rows, dataset))
    blocks.append(_verdict_text(results, better, [name for _, name in found]))
    return Section("Likelihood: every variant against the baseline", blocks)


def _word(verdict_mark: str) -> str:
    """`blocks.verdict`'s mark in the claims' words (better, worse, tied, n/a)."""
    return {"better*": "better", "worse*": "worse", "n.s.": "tied"}.get(verdict_mark, verdict_mark)


def _verdict_text(results: StudyResults, better: dict[str, list[str]], names: list[str]) -> str:
    """What the tests say, in words that match each measure: a tighter bound is not a better likelihood."""
    words = {"bound": "A significantly tighter variational bound", "ODE": "A significantly better ODE likelihood"}
    parts = []
    for name in names:
        wins = better[name]
        parts.append(f"**{words[name]} than the baseline:** " + ("; ".join(wins) or "none") + ".")
    if "bound" in names and better["bound"]:
        parts.append("A tighter bound is not a better likelihood: the bound is an upper bound on -log p, and only the "
                     "ODE measures -log p itself.")
    if SCALES_DATASET in results.datasets:
        on_scales = [w for name in names for w in better[name] if f" on {SCALES_DATASET} " in w]
        parts.append(f"On `{SCALES_DATASET}`, where local scales differ most: "
                     + ("; ".join(on_scales) if on_scales else "no variant beats the baseline") + ".")
    return " ".join(parts)


def knn_vs_exact_section(results: StudyResults) -> Section:
    """The k-NN KL of the samples next to the exact KL, and whether they rank the runs alike."""
    if not _has(results, "kl_exact"):
        return Section(None)
    blocks: list[Block] = [
        "The original study's k-nearest-neighbour estimate of KL(data || samples) next to the exact "
        "KL(data || model) = cross-entropy (the ODE likelihood of held-out data) - the data's differential "
        "entropy (closed form, quadrature or Monte Carlo; `gridnoise.data.densities`), both in bits, mean [95% CI] "
        "over seeds. The exact KL is exact up to Monte Carlo error; `kl_bound` (from the variational bound) is "
        "an upper bound for runs without an ODE likelihood."]
    agreement = []
    for dataset in results.datasets:
        rows, knn, exact = [], {}, {}
        for run in results.runs:
            values = {m: results.values(run["name"], dataset, m) for m in ("kl_divergence", "kl_exact", "kl_bound")}
            if not any(values.values()):
                continue
            cells = [fmt_ci(list(v.values())) if v else "-" for v in values.values()]
            if results.sliding(run["name"], dataset):
                cells[1] = ode_absent(results, run["name"], dataset)
            if values["kl_divergence"] and values["kl_exact"]:
                knn[run["name"]], exact[run["name"]] = values["kl_divergence"], values["kl_exact"]
            rows.append([f"{run['name']} {run['label']}"] + cells)
        if rows:
            blocks.append(Table(["run", "k-NN KL", "exact KL", "KL bound"], rows, dataset))
        if len(knn) >= 2:
            agreement.append(_agreement(dataset, knn, exact))
    if agreement:
        blocks.append(Table(["data set", "runs", "Kendall tau", "same ranking", "by k-NN KL (best first)",
                             "by exact KL (best first)", "pairs the exact KL separates", "k-NN KL agrees on"],
                            agreement, "Do the two KLs rank the runs alike?"))
        blocks.append("A ranking of means also orders runs the exact KL cannot tell apart. The last two columns "
                      "count the pairs of runs whose exact KLs differ (95% paired t-interval over their common seeds "
                      "excludes 0) and, of those, the pairs the k-NN KL orders the same way.")
    return Section("The study's KL, checked against the exact KL", blocks)


def _agreement(dataset: str, knn: dict[str, dict[int, float]], exact: dict[str, dict[int, float]]) -> list[str]:
    """A row of the ranking table: the two KLs' rankings of the runs' means, and their agreement on
    the pairs the exact KL separates. `knn`, `exact`: run -> {seed: value}."""
    def mean(v: dict[int, float]) -> float:
        return sum(v.values()) / len(v)

    names = sorted(knn)
    tau = kendalltau([mean(knn[n]) for n in names], [mean(exact[n]) for n in names]).statistic
    by_knn, by_exact = sorted(names, key=lambda n: mean(knn[n])), sorted(names, key=lambda n: mean(exact[n]))
    separated = agreed = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            test = paired_comparison(exact[a], exact[b])
            if test.n >= 2 and (test.ci_lo > 0 or test.ci_hi < 0):
                separated += 1
                agreed += (paired_comparison(knn[a], knn[b]).mean_diff > 0) == (test.mean_diff > 0)
    return [dataset, str(len(names)), f"{tau:+.2f}", "yes" if by_knn == by_exact else "no", ", ".join(by_knn),
            ", ".join(by_exact), str(separated), str(agreed)]
