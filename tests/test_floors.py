"""The house's floors, read from the imports of every project module (parsed, never run).

Low to high, as ARCHITECTURE.md draws them: `domain` (pure, imports nothing of the project)
< `activities`, `workflows`, `settings`, `logs` < `connect` < `worker` < `starter`. A module
imports from its own floor or below, never above: so `workflows` and `activities` import no
`connect`, `worker` or `starter`, and `worker.py` nothing from `starter/`. On one floor, a
workflow calls its activities, never the reverse: `activities` imports no `workflows`. And
no project modules import each other in a circle (the `visits` root assembles its
sub-commands; they import `starter.cli.common`, never the root).
"""

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS = {
    "domain": 0,
    "activities": 1,
    "workflows": 1,
    "settings": 1,
    "logs": 1,
    "connect": 2,
    "worker": 3,
    "starter": 4,
}
SIDEWAYS_FORBIDDEN = {("activities", "workflows")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [ROOT / f"{top}.py" for top in FLOORS] + [
        p for top in FLOORS if (ROOT / top).is_dir() for p in (ROOT / top).rglob("*.py")
    ]
    return {module_name(p): p for p in files if p.is_file()}


def imports(path: Path, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Each project module `path` imports (the deepest one a dotted name names), with its line."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            # `from a.b import c` imports the module a.b.c when there is one, else a name of a.b.
            prefixes = (name.rsplit(".", cut)[0] for cut in range(name.count(".") + 1))
            found = next((prefix for prefix in prefixes if prefix in modules), None)
            if found is not None:
                yield found, node.lineno


def graph() -> dict[str, dict[str, int]]:
    """Module → the project modules it imports, each with the line of its first import."""
    modules = project_modules()
    edges: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges[name] = {}
        for target, line in imports(path, modules):
            if target != name:
                edges[name].setdefault(target, line)
    return edges


def top(module: str) -> str:
    return module.partition(".")[0]


def test_every_top_level_module_of_the_project_has_a_floor():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    declared = {top(p) for p in tool["packages"]} | set(tool["py-modules"])
    assert declared == set(FLOORS), "every package and module in pyproject.toml needs a floor here"
    assert {top(m) for m in project_modules()} == set(FLOORS), "a floor without its module's files"


def test_no_import_runs_up_a_floor_or_from_activities_to_workflows():
    wrong = [
        f"{source} -> {target} (line {line})"
        for source, targets in graph().items()
        for target, line in targets.items()
        if FLOORS[top(target)] > FLOORS[top(source)] or (top(source), top(target)) in SIDEWAYS_FORBIDDEN
    ]
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def test_no_project_modules_import_each_other_in_a_circle():
    edges = graph()

    def path(start: str, goal: str) -> list[str] | None:
        """The import path from `start` to `goal`, breadth first; None when there is none."""
        came: dict[str, str | None] = {start: None}
        queue = [start]
        for node in queue:
            if node == goal:
                steps = [node]
                while (previous := came[steps[-1]]) is not None:
                    steps.append(previous)
                return steps[::-1]
            for nxt in edges.get(node, {}):
                if nxt not in came:
                    came[nxt] = node
                    queue.append(nxt)
        return None

    circles: dict[frozenset[str], str] = {}
    for source, targets in sorted(edges.items()):
        for target in targets:
            if (back := path(target, source)) is not None:
                circles.setdefault(frozenset(back), " -> ".join([source, *back]))
    assert not circles, "import circles:\n" + "\n".join(circles.values())
