"""The import graph shows the architecture (ARCHITECTURE.md): no circles, and every import
points down a layer or stays inside its own package.

    cli/                      the commands                            4
    apps, releases, deploy... the deploy core, flat in podku/         3
    image/, runtime/, proxy/  the parts a release is made of         2  (never each other)
    host/                     what podku runs on: systemd, podman...  1
    errors, output, names,    what everything uses                    0
    naming
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
FOUNDATION = {"podku", "podku.errors", "podku.output", "podku.names", "podku.naming"}
PARTS = ("podku.image", "podku.runtime", "podku.proxy")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in (SRC / "podku").rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "podku":
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    edges[name].add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                edges[name] |= {alias.name for alias in node.names if alias.name.split(".")[0] == "podku"}
        edges[name].discard(name)
    return edges


def layer(module: str) -> tuple[int, str]:
    """(layer, package) of a module; the package tells siblings of one layer apart."""
    if module in FOUNDATION:
        return 0, "foundation"
    for rank, package in ((1, "podku.host"), (4, "podku.cli"), *((2, part) for part in PARTS)):
        if module == package or module.startswith(package + "."):
            return rank, package
    return (4, "podku.cli") if module == "podku.__main__" else (3, "podku")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in edges.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while (member := stack.pop()) != module:
                component.append(member)
            if component:
                found.append(sorted([module, *component]))

    for module in edges:
        if module not in index:
            visit(module)
    return found


def test_no_import_circles():
    assert cycles(graph()) == []


def test_imports_point_down_or_stay_in_their_package():
    wrong = []
    for module, targets in graph().items():
        rank, package = layer(module)
        for target in targets:
            target_rank, target_package = layer(target)
            if target_rank > rank or (target_rank == rank and target_package != package):
                wrong.append(f"{module} -> {target}")
    assert sorted(wrong) == []


def test_only_the_commands_import_the_export():
    """podku.export sits on the core (it reads apps, releases, domains...): nothing below it
    may import it."""
    wrong = [f"{module} -> {target}" for module, targets in graph().items() for target in targets
             if target.startswith("podku.export") and not module.startswith(("podku.export", "podku.cli"))]
    assert wrong == []


def test_the_checks_see_a_circle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert layer("podku.host.paths") < layer("podku.swap") < layer("podku.cli.main")
    assert layer("podku.image.build")[1] != layer("podku.proxy.caddy")[1]
