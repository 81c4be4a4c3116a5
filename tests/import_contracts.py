"""import-linter contract types of this project (``pyproject.toml`` names them in
``contract_types``; ``lint-imports`` runs them from the repository root).

``private_names``: no module imports another module's private names
(``from simbench.bench.jobs import _sites``).

import-linter's own contracts see modules, not the names taken from them; this one reads each
module of the graph with ``ast``. A name starting with one underscore (not a dunder) may be
imported only from a module of the importer's own package when it is a submodule there
(``from simbench_plugins import _causal`` inside ``simbench_plugins``): private helpers that
another module needs are made public in the right home instead.

``acyclic_modules``: no import circle between the modules of the root packages. Every import
counts, lazy and type-only ones included, and importing ``a.b.c`` also counts as importing the
packages ``a.b`` above it that the importer is not inside (their ``__init__`` runs first).
import-linter's own ``acyclic_siblings`` works on whole packages, which is a stricter question
than whether two modules can deadlock an import.
"""

from __future__ import annotations

import ast
import importlib.util
from collections import deque
from pathlib import Path

from importlinter.application import output
from importlinter.domain.contract import Contract, ContractCheck


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _source(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and origin.endswith(".py") else None


def private_imports(module: str, modules: set[str]) -> list[tuple[int, str]]:
    """(line, ``from X import _name``) for each private name ``module`` takes from another
    module; ``modules``: every module of the graph (to tell a private submodule)."""
    path = _source(module)
    if path is None:
        return []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        for alias in node.names:
            if not _private(alias.name) or base == module:
                continue
            sub = f"{base}.{alias.name}"
            if sub in modules and (module == base or module.startswith(base + ".")):
                continue  # a private submodule of the importer's own package
            found.append((node.lineno, f"from {base} import {alias.name}"))
    return found


class PrivateNamesContract(Contract):
    """No module of the root packages imports another module's ``_private`` names."""

    type_name = "private_names"

    def check(self, graph, verbose: bool) -> ContractCheck:  # type: ignore[no-untyped-def]
        modules = set(graph.modules)
        broken = [(module, line, text) for module in sorted(modules)
                  for line, text in private_imports(module, modules)]
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Private names imported from another module (make the shared "
                           "thing public in the right home):", bold=False)
        output.new_line()
        for module, line, text in check.metadata["broken"]:
            output.print_error(f"- {module} (l.{line}): {text}", bold=False)
        output.new_line()


def module_graph(graph) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    """Module -> the modules it imports, with the packages above each imported module that
    the importer is not itself inside (their ``__init__`` runs first)."""
    modules = set(graph.modules)
    out: dict[str, set[str]] = {m: set() for m in modules}
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                inside = importer == target or importer.startswith(target + ".")
                if target in modules and target != importer and (i == len(parts) or not inside):
                    out[importer].add(target)
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One shortest circle through each module that lies on one, each circle listed once."""
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(edges):
        parent: dict[str, str] = {}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            if start in edges[v]:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                found.setdefault(frozenset(path), path[::-1])
                break
            for w in sorted(edges[v]):
                if w not in parent and w != start:
                    parent[w] = v
                    queue.append(w)
    return sorted(found.values(), key=lambda c: (len(c), c))


class AcyclicModulesContract(Contract):
    """No import circle between the modules of the root packages."""

    type_name = "acyclic_modules"

    def check(self, graph, verbose: bool) -> ContractCheck:  # type: ignore[no-untyped-def]
        found = cycles(module_graph(graph))
        return ContractCheck(kept=not found, metadata={"cycles": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Import circles:", bold=False)
        output.new_line()
        for cycle in check.metadata["cycles"]:
            output.print_error("- " + " -> ".join([*cycle, cycle[0]]), bold=False)
        output.new_line()
