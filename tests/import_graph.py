"""The import graph of a package, read from its source with ``ast``, and the cycles in it.

Usage: ``python tests/import_graph.py PACKAGE_DIR`` prints JSON ``{"modules", "edges",
"cycles"}``; each cycle is a list of module names whose last item imports the first.

Every import statement counts, wherever it is: at module level, inside a function (a lazy
import), under ``if TYPE_CHECKING:`` and in ``try`` blocks, plus ``import_module("literal")``
calls. Type-only and lazy edges are counted on purpose: a lazy import still runs the other
module's top level at call time, and a type-only cycle is a design knot even when it cannot
fail at run time; the package is meant to be layered without either.

Importing ``a.b.c`` runs the ``__init__`` of ``a.b`` first, so it also adds an edge to every
package above the target that the importer is not itself inside (the importer's own packages
are already being imported when it runs).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path


def module_names(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is_package) for every ``.py`` file under the package."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _imported(node: ast.AST, package: str) -> list[str]:
    """Dotted names an import node (or ``import_module("x")`` call) refers to."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        return [base, *(f"{base}.{alias.name}" for alias in node.names)]
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "import_module":
            return [node.args[0].value]
    return []


def build_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the modules it imports (within the package)."""
    modules = module_names(package_dir)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = _imported(node, package)
            if isinstance(node, ast.ImportFrom) and names:
                # `from a import b`: the submodule a.b when there is one, else the module a
                subs = [n for n in names[1:] if n in modules]
                names = subs if len(subs) == len(names) - 1 else [names[0], *subs]
            for target in names:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if not target:
                    continue
                for hop in _with_ancestors(target, importer=name, modules=modules):
                    if hop != name:
                        graph[name].add(hop)
    return graph


def _with_ancestors(target: str, *, importer: str, modules: dict) -> list[str]:
    out = [target]
    parts = target.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        inside = importer == parent or importer.startswith(parent + ".")
        if parent in modules and not inside:
            out.append(parent)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Concrete cycles: in every strongly connected component (Tarjan) with more than one
    module, the shortest cycle through each of its modules, each cycle listed once."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found: dict[tuple[str, ...], list[str]] = {}
    for component in components:
        if len(component) > 1:
            for start in sorted(component):
                cycle = _a_cycle(graph, set(component), start)
                first = cycle.index(min(cycle))  # one rotation per cycle: from its least name
                found.setdefault(tuple(cycle[first:] + cycle[:first]), cycle)
    return sorted(found.values(), key=lambda c: (len(c), c))


def _a_cycle(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """A shortest cycle from ``start`` back to itself inside ``members`` (breadth first)."""
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("a strongly connected component always has a cycle")


def main(argv: list[str]) -> int:
    graph = build_graph(Path(argv[0]))
    print(json.dumps({"modules": len(graph), "edges": sum(map(len, graph.values())),
                      "graph": {k: sorted(v) for k, v in graph.items()},
                      "cycles": cycles(graph)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
