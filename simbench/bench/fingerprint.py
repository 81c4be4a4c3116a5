"""Which code computed a result: a fingerprint of the source files a measure's score runs (a
stored result with another fingerprint is *stale*, see :mod:`simbench.bench.jobs`).

Which files count, and why:

- the module that defines the measure class (for a spec's ``.py`` plugin: that file), because
  its ``score`` is the computation;
- every module of the measure's own top-level package and of ``simbench`` that it imports,
  followed transitively, because helpers it calls (pairing, the intervention engine, CKA
  estimators) change results as much as the measure's own code does;
- the same closure from :mod:`simbench.api` (``simbench.score``), which holds what every job
  runs: turning recordings and checkpoints into systems (:mod:`simbench.systems.resolve`),
  running the measure under guard (:func:`simbench.registry.run_measure`), the ``Score``;
- the ``__init__.py`` of every package on the way, since importing a module runs them.

Imports are read from the source with :mod:`ast`, never executed: every ``import`` statement,
also those inside functions (simbench imports torch and the engines lazily), and every string
literal that names a module of a tracked package (``import_module("simbench.api")``, the lazy
attribute table of ``simbench/__init__.py``). Over-counting only marks results stale that did
not need it; under-counting would hide a change, so the scan errs on the wide side.

Left out: the harness (``simbench.bench``, ``simbench.cli``), which schedules jobs and stores
outcomes but computes no value; third-party libraries (numpy, torch: their versions are in
each score's provenance); helper modules next to a ``.py`` spec plugin that are not part of a
package (put shared code in the plugin file or in a package). The fingerprint hashes the
files' bytes (line endings normalised), so any edit of a counted file, a comment included,
marks its results stale: conservative, and independent of the Python version.

Computing it never imports a plugin (:func:`_locate`), so ``bench status`` can check a store
without running anything the store names.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

ENGINE_ROOTS = ("simbench.api",)
EXCLUDED = ("simbench.bench", "simbench.cli")
SCHEME = "v1"

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_PARSED: dict[tuple[str, int, int], tuple[str, tuple[str, ...]]] = {}


def measure_root(measure: Any) -> dict[str, str | None]:
    """Where a measure's code starts: its class's module name and source file."""
    module = type(measure).__module__
    path = getattr(sys.modules.get(module), "__file__", None)
    return {"module": module, "file": None if path is None else str(Path(path).resolve())}


def fingerprint(root: dict[str, str | None]) -> str:
    """``v1:<sha256>`` over (module name, file digest) of every counted file, sorted."""
    files = code_files(root)
    h = hashlib.sha256(SCHEME.encode())
    for name in sorted(files):
        digest, _imports = _parse(files[name])
        h.update(f"\n{name}\0{digest}".encode())
    return f"{SCHEME}:{h.hexdigest()}"


def code_files(root: dict[str, str | None]) -> dict[str, str]:
    """Module name -> source file, for every file :func:`fingerprint` counts."""
    module = root.get("module") or "<plugin>"
    top = module.split(".")[0]
    tracked = {"simbench"}
    file = root.get("file")
    if file is None:
        file, _ = _locate(module)
    is_package_module = "." in module or (file is not None and Path(file).name == "__init__.py")
    if is_package_module and _locate(top)[1] is not None:
        tracked.add(top)  # a plugin package: follow its own modules too
    found: dict[str, str] = {}
    todo: list[tuple[str, str]] = []
    if file is not None and Path(file).exists():
        todo.append((module, file))
        if is_package_module:
            todo += _parents(module)
    for name in ENGINE_ROOTS:
        path, _ = _locate(name)
        if path is not None:
            todo.append((name, path))
            todo += _parents(name)
    while todo:
        name, path = todo.pop()
        if name in found:
            continue
        found[name] = path
        package = name if Path(path).name == "__init__.py" else name.rpartition(".")[0]
        _digest, imports = _parse(path)
        for ref in imports:
            target = _absolute(ref, package)
            for candidate in _with_parents(target):
                if candidate in found or not _counted(candidate, tracked):
                    continue
                where, _ = _locate(candidate)
                if where is not None:
                    todo.append((candidate, where))
    return found


def _counted(name: str, tracked: set[str]) -> bool:
    if name.split(".")[0] not in tracked:
        return False
    return not any(name == ex or name.startswith(ex + ".") for ex in EXCLUDED)


def _parents(name: str) -> list[tuple[str, str]]:
    """(module, source file) of each package above ``name`` that has a source file."""
    return [(parent, path) for parent in _with_parents(name)[:-1]
            if (path := _locate(parent)[0]) is not None]


def _with_parents(name: str) -> list[str]:
    """``a``, ``a.b``, ``a.b.c`` for ``a.b.c``: the module and every package above it."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _absolute(ref: str, package: str) -> str:
    """Resolve a relative import (``.x``, ``..y.z``) against ``package``."""
    if not ref.startswith("."):
        return ref
    level = len(ref) - len(ref.lstrip("."))
    base = package.split(".")
    base = base[: len(base) - (level - 1)] if level > 1 else base
    rest = ref[level:]
    return ".".join([*base, rest] if rest else base)


def _parse(path: str) -> tuple[str, tuple[str, ...]]:
    """(sha256 of the file's bytes, every module name it may import), cached on mtime."""
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        if key in _PARSED:
            return _PARSED[key]
        data = Path(path).read_bytes().replace(b"\r\n", b"\n")
    except OSError:  # gone or unreadable (another user's install): it cannot match
        return "unreadable", ()
    digest = hashlib.sha256(data).hexdigest()
    refs: list[str] = []
    try:
        tree = ast.parse(data, filename=path)
    except (SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])  # unparsable: its bytes still count
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            refs += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            refs.append(base)
            sep = "" if base.endswith(".") else "."
            refs += [f"{base}{sep}{alias.name}" for alias in node.names if alias.name != "*"]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and _DOTTED.match(node.value)):
            refs.append(node.value)
    out = (digest, tuple(dict.fromkeys(refs)))
    _PARSED[key] = out
    return out


@functools.cache
def _locate(name: str) -> tuple[str | None, tuple[str, ...] | None]:
    """(source file, package search locations) of a module, found without importing it."""
    parent, _, _leaf = name.rpartition(".")
    spec: Any = None
    try:
        if not parent:
            mod = sys.modules.get(name)
            spec = getattr(mod, "__spec__", None) if mod is not None else None
            if spec is None:
                spec = importlib.util.find_spec(name)  # top level: runs no module code
        else:
            _, locations = _locate(parent)
            if locations:
                spec = importlib.machinery.PathFinder.find_spec(name, list(locations))
    except (ImportError, ValueError, AttributeError):
        spec = None
    origin = getattr(spec, "origin", None) if spec is not None else None
    if origin is not None and not str(origin).endswith(".py"):
        origin = None  # built-in, frozen or compiled: no source to hash
    locations = getattr(spec, "submodule_search_locations", None) if spec is not None else None
    return (None if origin is None else str(Path(origin).resolve()),
            None if locations is None else tuple(locations))
