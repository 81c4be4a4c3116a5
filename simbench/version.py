"""The one source of simbench's version: ``pyproject.toml``.

A source checkout (editable install included) reads the version from the ``pyproject.toml``
beside the package, so a version bump there is seen at once even when the installed metadata
is stale; an installed wheel has no such file and reads its own metadata, which the build wrote
from the same ``pyproject.toml``. ``simbench.__version__``, ``simbench --version`` and the
provenance of every score all call :func:`package_version`.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

PACKAGE = "simbench"
UNKNOWN = "0+unknown"
_PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@functools.cache
def package_version() -> str:
    """simbench's version (e.g. ``"0.1.0"``); ``"0+unknown"`` when nothing records it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return _source_version(_PYPROJECT) or version(PACKAGE)
    except PackageNotFoundError:
        return UNKNOWN


def _source_version(path: Path) -> str | None:
    """``project.version`` of ``path`` when it is simbench's own ``pyproject.toml``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):  # no such file, too
        return None
    version = project.get("version")
    return version if project.get("name") == PACKAGE and isinstance(version, str) else None


__all__ = ["package_version"]
