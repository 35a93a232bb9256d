"""Every file gridnoise reads, given bad content: each command ends in one line and exit status 2,
and writes nothing.

One table per kind of file: config TOML (`train --config`) and `--set` values, experiment TOML
(`run`), data files of every format (`train --dataset`, and in an experiment), a run's checkpoint
(`train --resume`, `sample`, `evaluate`), its config.toml (`train --resume`, `plot`, `animate`),
samples.npz and train_losses.npz (`plot`), metrics.json and evaluation.json, a study's task.json and
experiment.json (`report`, `evaluate`, `compare`, `run`), plug-in references, and file names that
are not UTF-8. Each row damages one file (missing, empty,
truncated, not UTF-8, wrong types, degenerate values), runs the command in-process through
`gridnoise.cli.main`, and checks the exit status, that stderr is one line starting `gridnoise:
error:` with the row's words (what is wrong and what to do), and that no file under the watched
directory was added, removed or rewritten. The run the rows damage is trained once, tiny.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from gridnoise.cli import main
from gridnoise.study.experiment import load_experiment

from conftest import TINY_STUDY

TINY = ["--steps", "20", "--timesteps", "20", "--n-points", "1000", "--num-samples", "200", "--batch-size", "64",
        "--no-progress"]
NOT_UTF8 = b"\xff\xfe\x00"
POINTS = np.random.default_rng(0).normal(size=(40, 2))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root`: relative path -> (size, mtime in ns)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_fails_cleanly(capsys, argv: list, watch: Path, *words: str) -> str:
    """`gridnoise argv` exits 2 with one line naming `words`, and leaves `watch` as it was."""
    before = snapshot(watch)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("gridnoise: error: "), err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    assert snapshot(watch) == before, "a failed command wrote files"
    return lines[0]


# -- a real run and a study holding it ------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad_files") / "run"
    assert main(["train", "--dataset", "moons", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the trained run, free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


EXPERIMENT = ('[experiment]\nname = "bad"\ndatasets = ["moons"]\nseeds = [0]\n' + TINY_STUDY
              + '[runs.base]\nvariant = "baseline"\n')


@pytest.fixture
def study(trained, tmp_path) -> tuple[Path, Path]:
    """(experiment file, study directory): the trained run as the study's one finished task."""
    experiment = tmp_path / "bad.toml"
    experiment.write_text(EXPERIMENT)
    exp = load_experiment(experiment)
    out = tmp_path / "study"
    shutil.copytree(trained, out / "base" / "moons" / "seed_0")
    (out / "experiment.json").write_text(json.dumps({
        "name": exp.name, "identity": exp.identity(), "description": "", "baseline": "base",
        "runs": [{"name": "base", "label": "base", "variant": "baseline"}], "datasets": ["moons"], "seeds": [0]}))
    (out / "base" / "moons" / "seed_0" / "task.json").write_text(json.dumps({
        "hash": exp.tasks()[0].config_hash, "run": "base", "dataset": "moons", "seed": 0}))
    return experiment, out


# -- config TOML: train --config ------------------------------------------------------------------

CONFIGS = {  # name -> (content, or None for no file, or "dir" for a directory; words of the error)
    "missing": (None, ["config file not found", "check the path"]),
    "directory": ("dir", ["is a directory", "give a TOML file"]),
    "empty": (b"", ["is empty (no settings)", "write the settings into it"]),
    "truncated": (b"[train]\nsteps = ", ["malformed TOML", "fix the file"]),
    "not_utf8": (NOT_UTF8, ["is not UTF-8", "save it as UTF-8"]),
    "wrong_type": (b'[train]\nsteps = "ten"\n', ["train.steps must be int"]),
    "table_not_value": (b"train = 5\n", ["[train] must be a table"]),
    "unknown_key": (b"[train]\nstpes = 5\n", ["unknown key(s) ['stpes']", "valid keys are"]),
    "infinite": (b"[train]\nlr = inf\n", ["train.lr = inf is not a finite number"]),
    "nan": (b"[model]\ninput_scale = nan\n", ["model.input_scale = nan is not a finite number"]),
    "zero_steps": (b"[train]\nsteps = 0\n", ["steps must be >= 1"]),
}


def put(path, content):
    """`path` holding `content` (bytes), a directory in its place ("dir"), or nothing (None)."""
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", CONFIGS)
def test_a_bad_config_file(capsys, tmp_path, case):
    content, words = CONFIGS[case]
    path = put(tmp_path / "config.toml", content)
    assert_fails_cleanly(capsys, ["train", "--config", path, "--dataset", "moons", *TINY, "--out", tmp_path / "out"],
                         tmp_path, str(path), *words)


SETTINGS = {  # --set values (item: argv as Python sees it; a non-UTF-8 byte is a lone surrogate)
    "not_utf8": ("train.lr=\udcff\udcfe", ["train.lr must be float", "\\udcff"]),
    "not_toml": ("train.lr=[1,", ["train.lr must be float", "[1,"]),
    "no_equals": ("train.lr", ["--set takes section.key=value"]),
    "no_key": ("=1", ["--set takes section.key=value"]),
    "table_as_value": ("train=5", ["[train] must be a table"]),
    "not_utf8_table": ("adaptation.grids={a=\udcff}", ["adaptation.grids must be a table"]),
    "unknown": ("train.nope=1", ["unknown key(s) ['nope']"]),
    "two_values": ("seed=1\n[train]\nsteps=1", ["more than one TOML value", "one value per --set"]),
}


@pytest.mark.parametrize("case", SETTINGS)
def test_a_bad_setting(capsys, tmp_path, case):
    item, words = SETTINGS[case]
    assert_fails_cleanly(capsys, ["train", "--dataset", "moons", *TINY, "--set", item, "--out", tmp_path / "out"],
                         tmp_path, *words)
    assert_fails_cleanly(capsys, ["config", "show", "--set", item], tmp_path, *words)


@pytest.mark.parametrize("flag, words", [("--config", ["config file not found"]),
                                         ("--dataset", ["data file not found"])])
def test_a_path_that_is_not_utf8(capsys, tmp_path, flag, words):
    # a file name with a byte that is not UTF-8 reaches Python as a lone surrogate
    name = str(tmp_path / "bad\udcff.csv") if flag == "--dataset" else str(tmp_path / "bad\udcff.toml")
    argv = ["train", "--dataset", "moons", *TINY, flag, name, "--out", tmp_path / "out"]
    line = assert_fails_cleanly(capsys, argv, tmp_path, *words, "check the path")
    assert "\\udcff" in line  # shown escaped: a terminal can print it


# -- experiment TOML: run -------------------------------------------------------------------------

EXPERIMENTS = {
    "missing": (None, ["experiment file not found", "check the path"]),
    "directory": ("dir", ["is a directory", "give a TOML file"]),
    "empty": (b"", ["experiment file", "is empty"]),
    "truncated": (b'[experiment]\nname = "x', ["malformed TOML", "fix the file"]),
    "not_utf8": (NOT_UTF8, ["is not UTF-8", "save it as UTF-8"]),
    "no_runs": (b'[experiment]\nname = "x"\n', ["needs at least one [runs.<name>] table"]),
    "datasets_not_list": (b'[experiment]\nname = "x"\ndatasets = 5\n[runs.a]\nvariant = "baseline"\n',
                          ["datasets must be a list of data set names"]),
    "dataset_not_str": (b'[experiment]\nname = "x"\ndatasets = [5]\n[runs.a]\nvariant = "baseline"\n',
                        ["datasets must be a list of data set names"]),
    "seeds_not_ints": (b'[experiment]\nname = "x"\nseeds = "0"\n[runs.a]\nvariant = "baseline"\n',
                       ["seeds must be a non-empty list of integers"]),
    "seeds_empty": (b'[experiment]\nname = "x"\nseeds = []\n[runs.a]\nvariant = "baseline"\n',
                    ["seeds must be a non-empty list"]),
    "experiment_not_table": (b'experiment = 5\n[runs.a]\nvariant = "baseline"\n', ["needs an [experiment] table"]),
    "defaults_not_table": (b'defaults = 5\n[experiment]\nname = "x"\n[runs.a]\nvariant = "baseline"\n',
                           ["[defaults] must be a table"]),
    "run_not_table": (b'[experiment]\nname = "x"\n[runs]\na = 5\n', ["[runs.a] needs a variant"]),
    "variant_not_str": (b'[experiment]\nname = "x"\n[runs.a]\nvariant = 5\n', ["unknown variant"]),
    "run_setting_wrong_type": (b'[experiment]\nname = "x"\n[runs.a]\nvariant = "baseline"\ntrain = 5\n',
                               ["[runs.a.train] must be a table"]),
    "infinite_default": (b'[experiment]\nname = "x"\n[defaults.train]\nlr = inf\n[runs.a]\nvariant = "baseline"\n',
                         ["train.lr = inf is not a finite number"]),
}


@pytest.mark.parametrize("case", EXPERIMENTS)
def test_a_bad_experiment_file(capsys, tmp_path, case):
    content, words = EXPERIMENTS[case]
    path = put(tmp_path / "exp.toml", content)
    assert_fails_cleanly(capsys, ["run", path, "--out", tmp_path / "study", "--workers", "1", "--no-progress"],
                         tmp_path, str(path), *words)


# -- data files: train --dataset FILE, and a study on one ---------------------------------------

def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return buf.getvalue()


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def text(rows, sep: str, header: str = "") -> bytes:
    lines = ([header] if header else []) + [sep.join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def identical(n: int = 40) -> np.ndarray:
    return np.tile([[1.5, -0.5]], (n, 1))


def with_value(value: float) -> np.ndarray:
    points = POINTS.copy()
    points[7, 1] = value
    return points


SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": " "}


def _cut_last_row(suffix: str) -> bytes:
    """A text file of POINTS whose last row stops after its x and separator (its y lost)."""
    sep = SEPARATORS[suffix]
    whole = text(POINTS, sep).decode()
    return whole[:whole.rindex(sep) + 1].encode()
# defect -> (bytes for a suffix or None where the defect does not apply to it, words of the error)
DATA_DEFECTS: dict[str, tuple[Callable[[str], bytes | None], list[str]]] = {
    "missing": (lambda s: None, ["data file not found", "check the path"]),
    "empty": (lambda s: b"", ["is empty"]),
    "not_utf8": (lambda s: NOT_UTF8, ["not"]),
    # cut inside the last row: a text file loses that row's y
    "truncated": (lambda s: {".npy": npy(POINTS)[:-20], ".npz": npz(points=POINTS)[:300]}.get(s) or _cut_last_row(s),
                  ["truncated"]),
    "identical_rows": (lambda s: npy(identical()) if s == ".npy" else npz(points=identical()) if s == ".npz"
                       else text(identical(), SEPARATORS[s]), ["the same point", "at least two distinct points"]),
    "infinite": (lambda s: npy(with_value(np.inf)) if s == ".npy" else npz(points=with_value(np.inf)) if s == ".npz"
                 else text(with_value(np.inf), SEPARATORS[s]), ["infinite value at row 8", "drop or fix"]),
    "nan": (lambda s: npy(with_value(np.nan)) if s == ".npy" else npz(points=with_value(np.nan)) if s == ".npz"
            else text(with_value(np.nan), SEPARATORS[s]), ["NaN", "at row 8", "drop or fix"]),
    "strings": (lambda s: npy(np.array([["a", "b"]] * 40)) if s == ".npy" else npz(points=np.array([["a", "b"]] * 40))
                if s == ".npz" else text([["a", "b"]] * 40, SEPARATORS[s], header=SEPARATORS[s].join("xy")),
                ["numeric"]),
    "one_column": (lambda s: npy(POINTS[:, 0]) if s == ".npy" else npz(points=POINTS[:, :1]) if s == ".npz"
                   else text(POINTS[:, :1], SEPARATORS[s]), ["one", "column", "x and y"]),
    "three_columns": (lambda s: npy(np.hstack([POINTS, POINTS[:, :1]])) if s == ".npy"
                      else text(np.hstack([POINTS, POINTS[:, :1]]), SEPARATORS[s]) if s != ".npz" else None,
                      ["3", "x and y"]),
    "header_only": (lambda s: None if s in (".npy", ".npz") else f"x{SEPARATORS[s]}y\n".encode(),
                    ["has a header but no rows"]),
    "text_cell": (lambda s: None if s in (".npy", ".npz") else text([*POINTS[:5], ["1.0", "oops"], *POINTS[5:]],
                                                                    SEPARATORS[s]), ["line 6", "oops"]),
    "two_arrays": (lambda s: npz(a=POINTS, b=POINTS) if s == ".npz" else None, ["choose one with --data-key"]),
    "pickled": (lambda s: npy(np.array([{"x": 1}] * 20, dtype=object)) if s == ".npy" else None,
                ["Object arrays cannot be loaded", "numpy.save"]),
}
DATA_CASES = [(suffix, defect) for defect, (make, _) in DATA_DEFECTS.items() for suffix in (".npy", ".npz", *SEPARATORS)
              if defect == "missing" or make(suffix) is not None]


@pytest.mark.parametrize("suffix, defect", DATA_CASES)
def test_a_bad_data_file_fails_before_the_run_is_written(capsys, tmp_path, suffix, defect):
    make, words = DATA_DEFECTS[defect]
    path = tmp_path / f"points{suffix}"
    if defect != "missing":
        path.write_bytes(make(suffix))
    if defect == "not_utf8":  # text must be UTF-8; numpy files are binary
        words = [*words, "save it as UTF-8" if suffix in SEPARATORS else "numpy.save"]
    assert_fails_cleanly(capsys, ["train", "--dataset", path, *TINY, "--out", tmp_path / "out"], tmp_path,
                         str(path), *words)


def test_a_bad_data_file_in_an_experiment_fails_before_the_study_is_written(capsys, tmp_path):
    path = tmp_path / "points.npy"
    path.write_bytes(npy(identical()))
    experiment = tmp_path / "exp.toml"
    experiment.write_text(EXPERIMENT.replace('["moons"]', json.dumps([str(path)])))
    assert_fails_cleanly(capsys, ["run", experiment, "--out", tmp_path / "study", "--workers", "1", "--no-progress"],
                         tmp_path, str(path), "the same point")


# -- a run's checkpoint: train --resume, sample, evaluate ----------------------------------------

def corrupt_checkpoint(run: Path, how: str) -> None:
    path = run / "checkpoint.pt"
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif how == "not_utf8":
        path.write_bytes(NOT_UTF8)
    elif how == "not_a_dict":
        torch.save([1, 2, 3], path)
    else:
        state = torch.load(path, weights_only=True)
        if how == "missing_keys":
            del state["ema"], state["model"]
        elif how == "config_wrong_type":
            state["config"] = 5
        elif how == "weights_wrong_shape":
            for key in ("model", "ema"):
                state[key] = {k: v[..., :1] if v.dim() else v for k, v in state[key].items()}
        elif how == "step_wrong_type":
            state["step"] = "ten"
        elif how == "infinite_weights":
            state["ema"] = {k: torch.full_like(v, float("inf")) if v.is_floating_point() else v
                            for k, v in state["ema"].items()}
            state["model"] = {k: torch.full_like(v, float("inf")) for k, v in state["model"].items()}
        torch.save(state, path)


CHECKPOINTS = {
    "missing": ["checkpoint not found"],
    "empty": ["is corrupt or not a gridnoise checkpoint", "retrain"],
    "truncated": ["is corrupt or not a gridnoise checkpoint", "retrain"],
    "not_utf8": ["is corrupt or not a gridnoise checkpoint", "retrain"],
    "not_a_dict": ["is not a gridnoise checkpoint"],
    "missing_keys": ["lacks ['ema', 'model']"],
    "config_wrong_type": ["holds an invalid config", "[config] must be a table", "retrain"],
    "weights_wrong_shape": ["does not fit the network its config builds", "size mismatch", "retrain"],
    "step_wrong_type": ["holds step 'ten', not a step count", "retrain"],
    "infinite_weights": ["are not finite", "retrain"],
}
COMMANDS = {
    "sample": lambda run, tmp: ["sample", run, "-n", "5", "--out", tmp / "s.npz"],
    "evaluate": lambda run, tmp: ["evaluate", run, "--metrics", "nll_elbo"],
    "resume": lambda run, tmp: ["train", "--out", run, "--resume", "--no-progress"],
}


@pytest.mark.parametrize("command, case", [(command, case) for command in COMMANDS for case in CHECKPOINTS
                                            if (command, case) != ("resume", "missing")])  # that starts afresh
def test_a_bad_checkpoint(capsys, run, tmp_path, command, case):
    if command == "resume":
        (run / "metrics.json").unlink()  # an interrupted run: resuming reads its checkpoint
    corrupt_checkpoint(run, case)
    assert_fails_cleanly(capsys, COMMANDS[command](run, tmp_path), tmp_path, *CHECKPOINTS[case])


# -- a run's own config.toml and result arrays: train --resume, plot, animate ---------------------

RUN_CONFIGS = {
    "empty": (b"", ["is empty (no settings)"]),
    "not_utf8": (NOT_UTF8, ["is not UTF-8", "save it as UTF-8"]),
    "truncated": (b"[train]\nsteps = ", ["malformed TOML"]),
    "wrong_type": (b'[train]\nsteps = "ten"\n', ["train.steps must be int"]),
}
RUN_CONFIG_COMMANDS = {
    "resume": lambda run, tmp: ["train", "--out", run, "--resume", "--no-progress"],
    "plot": lambda run, tmp: ["plot", run],
    "animate": lambda run, tmp: ["animate", run, "-n", "10", "--out", tmp / "r.gif"],
}


@pytest.mark.parametrize("case", RUN_CONFIGS)
@pytest.mark.parametrize("command", RUN_CONFIG_COMMANDS)
def test_a_bad_run_config(capsys, run, tmp_path, command, case):
    content, words = RUN_CONFIGS[case]
    (run / "config.toml").write_bytes(content)
    assert_fails_cleanly(capsys, RUN_CONFIG_COMMANDS[command](run, tmp_path), tmp_path, str(run / "config.toml"),
                         *words)


@pytest.mark.parametrize("defect", ["empty", "not_utf8", "truncated", "not_an_archive", "wrong_key"])
@pytest.mark.parametrize("name", ["samples.npz", "train_losses.npz"])
def test_a_bad_result_array(capsys, run, tmp_path, name, defect):
    path = run / name
    content = {"empty": b"", "not_utf8": NOT_UTF8, "truncated": path.read_bytes()[:200], "not_an_archive": npy(POINTS),
               "wrong_key": npz(other=POINTS)}[defect]
    path.write_bytes(content)
    words = ["lacks"] if defect == "wrong_key" else ["is not an .npz archive"] if defect == "not_an_archive" \
        else ["is corrupt"]
    assert_fails_cleanly(capsys, ["plot", run], tmp_path, str(path), *words, "restore it from a copy")


# -- JSON results: metrics.json, evaluation.json, task.json, experiment.json ----------------------

JSON_DEFECTS = {
    "empty": (b"", ["is corrupt"]),
    "truncated": (b'{"kl_divergence": 1.', ["is corrupt"]),
    "not_utf8": (NOT_UTF8, ["is corrupt"]),
    "not_an_object": (b"[1, 2]", ["is not a JSON object"]),
}


@pytest.mark.parametrize("defect", JSON_DEFECTS)
@pytest.mark.parametrize("name", ["metrics.json", "evaluation.json"])
def test_a_bad_run_result(capsys, run, tmp_path, name, defect):
    content, words = JSON_DEFECTS[defect]
    (run / name).write_bytes(content)
    assert_fails_cleanly(capsys, ["evaluate", run, "--metrics", "nll_elbo"], tmp_path, str(run / name), *words)


STUDY_FILES = {"metrics.json": "base/moons/seed_0/metrics.json", "evaluation.json": "base/moons/seed_0/evaluation.json",
               "task.json": "base/moons/seed_0/task.json", "experiment.json": "experiment.json"}
WRONG_VALUES = {  # study files whose JSON is fine but whose values are not what gridnoise wrote
    "metric_not_a_number": ("metrics.json", {"kl_divergence": "low"}, ["'kl_divergence'", "not a number"]),
    "runs_not_a_list": ("experiment.json", {"name": "x", "baseline": "base", "runs": 5, "datasets": ["moons"],
                                            "seeds": [0]}, ["experiment.json", "runs"]),
    "no_datasets": ("experiment.json", {"name": "x", "baseline": "base", "runs": [{"name": "base"}], "seeds": [0]},
                    ["experiment.json", "datasets"]),
    "seed_not_int": ("experiment.json", {"name": "x", "baseline": "base", "datasets": ["moons"], "seeds": ["0"],
                                         "runs": [{"name": "base", "label": "b", "variant": "baseline"}]},
                     ["experiment.json", "seeds"]),
    "primary_unknown": ("experiment.json", {"name": "x", "baseline": "base", "datasets": ["moons"], "seeds": [0],
                                            "runs": [{"name": "base", "label": "b", "variant": "baseline"}],
                                            "primary": "beauty"}, ["experiment.json", "'primary'", "nll_ode"]),
}
STUDY_COMMANDS = {
    "report": lambda exp, out: ["report", out],
    "compare": lambda exp, out: ["compare", out, out],
    "evaluate": lambda exp, out: ["evaluate", out, "--metrics", "nll_elbo", "--workers", "1"],
    "run": lambda exp, out: ["run", exp, "--out", out, "--workers", "1", "--no-progress"],
}


def study_cases():
    for command in STUDY_COMMANDS:
        for name in STUDY_FILES:
            if command == "run" and name in ("metrics.json", "evaluation.json"):
                continue  # `run` never reads a finished task's results
            for defect in JSON_DEFECTS:
                yield command, name, defect
        for defect, (name, _, _) in WRONG_VALUES.items():
            if command != "run" or name == "experiment.json":
                yield command, name, defect


@pytest.mark.parametrize("command, name, defect", list(study_cases()))
def test_a_bad_study_file(capsys, study, tmp_path, command, name, defect):
    experiment, out = study
    path = out / STUDY_FILES[name]
    if defect in JSON_DEFECTS:
        content, words = JSON_DEFECTS[defect]
        path.write_bytes(content)
    else:
        _, value, words = WRONG_VALUES[defect]
        path.write_text(json.dumps(value))
    assert_fails_cleanly(capsys, STUDY_COMMANDS[command](experiment, out), tmp_path, str(path), *words)


# -- plug-in references ---------------------------------------------------------------------------

PLUGIN_MODULE = '''
import numpy as np

def three_columns(n, rng):
    return rng.normal(size=(n, 3))

def words(n, rng):
    return [["a", "b"]] * n

def one_point(n, rng):
    return np.zeros((n, 2))

def infinite(n, rng):
    return np.full((n, 2), np.inf)

def crashes(n, rng):
    raise KeyError("the plug-in's own bug")

class NotAnAdaptation:
    pass

NOT_A_FUNCTION = 3
'''

PLUGINS = {  # name -> (flags, words)
    "missing_module": (["--dataset", "no_such_module_xyz:points"], ["cannot import module 'no_such_module_xyz'"]),
    "syntax_error": (["--dataset", "gridnoise_broken_plugin:points"], ["cannot import module", "SyntaxError"]),
    "missing_function": (["--dataset", "gridnoise_bad_plugins:nothing"], ["has no 'nothing'"]),
    "not_callable": (["--dataset", "gridnoise_bad_plugins:NOT_A_FUNCTION"], ["is not a function"]),
    "wrong_signature": (["--dataset", "json:dumps"], ["json:dumps"]),
    "wrong_shape": (["--dataset", "gridnoise_bad_plugins:three_columns"], ["shape (1000, 3)"]),
    "not_numbers": (["--dataset", "gridnoise_bad_plugins:words"], ["did not return numbers"]),
    "one_point": (["--dataset", "gridnoise_bad_plugins:one_point"], ["the same point"]),
    "infinite": (["--dataset", "gridnoise_bad_plugins:infinite"], ["NaN or infinite"]),
    "crashes": (["--dataset", "gridnoise_bad_plugins:crashes"], ["KeyError", "the plug-in's own bug"]),
    "adaptation_missing": (["--set", "adaptation.kind=no_such_module_xyz:Grid"], ["cannot import module"]),
    "adaptation_not_a_class": (["--set", "adaptation.kind=gridnoise_bad_plugins:one_point"],
                               ["is not a subclass of gridnoise.adaptation.NoiseAdaptation"]),
    "adaptation_wrong_class": (["--set", "adaptation.kind=gridnoise_bad_plugins:NotAnAdaptation"],
                               ["is not a subclass of gridnoise.adaptation.NoiseAdaptation"]),
}


@pytest.mark.parametrize("case", PLUGINS)
def test_a_bad_plugin_reference(capsys, monkeypatch, tmp_path_factory, tmp_path, case):
    modules = tmp_path_factory.getbasetemp() / "bad_plugin_modules"
    modules.mkdir(exist_ok=True)
    (modules / "gridnoise_bad_plugins.py").write_text(PLUGIN_MODULE)
    (modules / "gridnoise_broken_plugin.py").write_text("def points(n, rng)\n    return None\n")
    monkeypatch.syspath_prepend(str(modules))
    flags, words = PLUGINS[case]
    argv = ["train", *([] if "--dataset" in flags else ["--dataset", "moons"]), *flags, *TINY, "--out", tmp_path / "o"]
    assert_fails_cleanly(capsys, argv, tmp_path, *words)
