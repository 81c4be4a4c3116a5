"""Where the data simbench ships lives: the model zoo, the population recording, the specs.

They sit at the top of the source tree (``recordings/``, ``benchmarks/specs/``,
``benchmarks/results/``) and are installed as the data-only packages ``simbench_recordings``,
``simbench_specs`` and ``simbench_results``, so a source checkout, an editable install and a
plain wheel install all find them the same way. The shipped results stores are read-only
material: ``simbench leaderboard paper`` reads them, ``simbench bench run`` never writes them.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]
_SOURCE = {"simbench_recordings": _SOURCE_ROOT / "recordings",
           "simbench_specs": _SOURCE_ROOT / "benchmarks" / "specs",
           "simbench_results": _SOURCE_ROOT / "benchmarks" / "results"}


def _package_dir(package: str) -> Path:
    """The directory of an installed data package; the source tree's when it is not installed."""
    with contextlib.suppress(ImportError, ValueError):
        found = importlib.util.find_spec(package)
        if found is not None and found.submodule_search_locations:
            return Path(next(iter(found.submodule_search_locations)))
    return _SOURCE[package]


def recordings_dir() -> Path:
    """``recordings/``: the zoo, shipped alignments and the population recording."""
    return _package_dir("simbench_recordings")


def specs_dir() -> Path:
    """``benchmarks/specs/``: the demo and paper benchmark specs."""
    return _package_dir("simbench_specs")


def shipped_specs() -> dict[str, Path]:
    """Name (file stem) -> path of every spec shipped with simbench, e.g. ``demo``, ``paper``."""
    return {p.stem: p for p in sorted(specs_dir().glob("*.toml"))}


def results_dir() -> Path:
    """``benchmarks/results/``: the shipped results stores of the shipped specs."""
    return _package_dir("simbench_results")


def shipped_stores() -> dict[str, Path]:
    """Spec name -> the shipped results store of that spec (``paper``:
    ``benchmarks/results/paper.sqlite``), for every shipped spec that has one."""
    return {p.stem: p for p in sorted(results_dir().glob("*.sqlite"))
            if p.stem in shipped_specs()}


def is_shipped_store(path: str | Path) -> bool:
    """True when ``path`` is one of the shipped results stores (never to be written)."""
    try:
        resolved = Path(path).resolve()
    except OSError:
        return False
    return any(resolved == p.resolve() for p in results_dir().glob("*.sqlite"))
