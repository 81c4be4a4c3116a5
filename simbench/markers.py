"""The pluggy markers of simbench's plugin contract: ``@simbench.hookimpl`` and ``hookspec``.

They live apart from :mod:`simbench.hookspecs` so a plugin (the built-in tasks included) can
mark its hooks without importing the hook specifications and what they refer to.
"""

from __future__ import annotations

import pluggy

PROJECT = "simbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]
