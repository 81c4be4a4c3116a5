"""Where the data simbench ships lives: the model zoo, the population recording, the specs.

They sit at the top of the source tree (``recordings/``, ``benchmarks/specs/``) and are
installed as the data-only packages ``simbench_recordings`` and ``simbench_specs``, so a source
checkout, an editable install and a plain wheel install all find them the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]
_SOURCE = {"simbench_recordings": _SOURCE_ROOT / "recordings",
           "simbench_specs": _SOURCE_ROOT / "benchmarks" / "specs"}


def _package_dir(package: str) -> Path:
    """The directory of an installed data package; the source tree's when it is not installed."""
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        found = None
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
