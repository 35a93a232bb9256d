"""The package's import graph: no cycles (imports inside functions and under TYPE_CHECKING count),
and the modules that read saved results never import training code."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "gridnoise"


def import_graph() -> dict[str, set[str]]:
    """module -> the gridnoise modules it imports anywhere in its source."""
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__main__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[0] != "gridnoise":
                    continue
                if len(parts) > 1:
                    deps.add(parts[1])
                else:  # from gridnoise import rundir
                    deps |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names
                         if a.name.startswith("gridnoise.") and len(a.name.split(".")) > 1}
        graph[name] = (deps & modules) - {name}
    return graph


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
    assert {"config", "run", "trainer", "plots", "results", "report"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_readers_of_saved_results_do_not_import_training_code():
    graph = import_graph()
    for reader in ("results", "plots", "report", "rundir", "animate"):
        assert not {"trainer", "run", "executor", "api"} & reachable(graph, reader), reader
