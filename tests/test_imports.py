"""The package's import graph: no cycles, and the modules that read saved results never import
training code.

Every way one module can load another counts: `import` and `from ... import` statements anywhere
(inside functions and under TYPE_CHECKING too, relative ones included), and any string constant
naming a gridnoise module, which is how `importlib.import_module`, `__import__` and a module
`__getattr__` reach one. A dynamic import whose target is not such a constant is refused outside
the one place that loads users' own code (plug-ins).
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = ROOT / "gridnoise"
MODULE_NAME = re.compile(r"gridnoise(\.\w+)+")
# Modules that may import a name they only learn at run time: users' plug-in references.
DYNAMIC_IMPORTERS = {"gridnoise.plugins"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module and package of gridnoise."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    files.pop("gridnoise.__main__", None)
    return files


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest gridnoise module that `name` (a dotted name, maybe ending in an attribute) names."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def imports_of(name: str, path: Path, modules: set[str]) -> tuple[set[str], list[str]]:
    """(the gridnoise modules `name` loads, its dynamic imports of targets no constant names)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps, unknown = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps |= {_resolve(a.name, modules) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                deps.add(_resolve(f"{base}.{alias.name}", modules))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.split(":")[0]  # a "module:Name" reference names its module
            if text in modules and MODULE_NAME.fullmatch(text):
                deps.add(text)
        elif _is_dynamic_import(node):
            arg = node.args[0] if node.args else None  # type: ignore[attr-defined]
            if not (isinstance(arg, ast.Constant) or _constant_table_lookup(arg, tree)):
                unknown.append(f"{name}:{node.lineno}")
    return (deps - {None, name}), unknown  # type: ignore[return-value]


def _constant_table_lookup(arg: ast.AST | None, tree: ast.Module) -> bool:
    """`TABLE[key]` where TABLE is a module-level dict of string constants (their strings are edges)."""
    if not (isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name)):
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == arg.value.id
                                                for t in node.targets):
            return isinstance(node.value, ast.Dict) and all(isinstance(v, ast.Constant) for v in node.value.values)
    return False


def import_graph() -> dict[str, set[str]]:
    """module -> the gridnoise modules it loads anywhere in its source."""
    files = module_files()
    return {name: imports_of(name, path, set(files))[0] for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"gridnoise.config", "gridnoise.run", "gridnoise.trainer", "gridnoise.report.run_figures",
            "gridnoise.study.results", "gridnoise.report.sections", "gridnoise.data.toy"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_every_dynamic_import_names_its_module():
    files = module_files()
    unknown = [u for name, path in files.items() if name not in DYNAMIC_IMPORTERS
               for u in imports_of(name, path, set(files))[1]]
    assert unknown == []


def test_the_graph_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "gridnoise" / "x.py"
    source.parent.mkdir()
    source.write_text("import importlib\nfrom . import a\nimport gridnoise.b.c\n"
                      "def f():\n    from gridnoise.d import e\n"
                      "def __getattr__(name):\n    return importlib.import_module('gridnoise.f')\n"
                      "g = __import__('gridnoise.g')\nh = importlib.import_module(name)\n"
                      "ENTRY = 'gridnoise.k:Name'\n")
    modules = {"gridnoise", "gridnoise.x", "gridnoise.a", "gridnoise.b", "gridnoise.b.c", "gridnoise.d",
               "gridnoise.d.e", "gridnoise.f", "gridnoise.g", "gridnoise.k"}
    deps, unknown = imports_of("gridnoise.x", source, modules)
    assert deps == {"gridnoise.a", "gridnoise.b.c", "gridnoise.d.e", "gridnoise.f", "gridnoise.g", "gridnoise.k"}
    assert unknown == ["gridnoise.x:9"]


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_readers_of_saved_results_do_not_import_training_code():
    graph = import_graph()
    readers = {m for m in graph if m.startswith("gridnoise.report.")} | {"gridnoise.study.results",
                                                                          "gridnoise.rundir"}
    training = {"gridnoise.trainer", "gridnoise.run", "gridnoise.study.executor", "gridnoise.api"}
    for reader in sorted(readers):
        assert not training & reachable(graph, reader), reader


def test_the_command_line_starts_without_numpy_torch_matplotlib_or_dask():
    """`import gridnoise` and `gridnoise --help` load none of the heavy libraries (a fraction of a second)."""
    code = ("import sys, gridnoise, gridnoise.cli; gridnoise.cli.build_parser().format_help(); "
            "print(sorted(m for m in ('numpy', 'torch', 'matplotlib', 'dask', 'distributed', 'scipy') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_a_task_worker_starts_without_scipy_stats():
    """A study's worker imports the task code (training, a run's figures, trials) without scipy.stats,
    a quarter of a second of every worker's and command's start-up: only reports and the moons density
    use it, and import it where they do."""
    code = ("import sys, gridnoise.run, gridnoise.study.executor, gridnoise.study.trials, gridnoise.data.densities; "
            "print('scipy.stats' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False", proc.stdout
