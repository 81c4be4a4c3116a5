"""simbench: do two neural systems solve a task the same way?

Similarity measures (MAS, CLMAS, DAS, stitching, RSA, CKA) are pluggy plugins over
xarray-labelled recordings stored as netCDF. Heavy libraries (torch, rsatoolbox) load only when
a measure runs, so importing simbench and starting the CLI stay fast: every name below but the
error base class and the plugin markers is imported on first use.

The plugin API is the top-level names: :class:`Measure`, :class:`Param`, :class:`Score`,
:func:`pair_sites`, :func:`bootstrap_ci`, :data:`hookimpl`, :class:`SimbenchError` (and
:class:`ParameterError` for bad parameters) and the recording helpers (:class:`Recording`,
:func:`load_recording`, :func:`save_recording`, :func:`open_recording`, :func:`site_dataset`).
A plugin that imports only these keeps working when simbench's modules move. The previous
release's ``from simbench.score import Score, bootstrap_ci`` still works, with a
``DeprecationWarning`` naming the new path, until the next release.
"""

from __future__ import annotations

import sys
import types
import warnings
from importlib import import_module
from importlib.machinery import ModuleSpec
from typing import Any

from simbench.errors import SimbenchError
from simbench.markers import hookimpl, hookspec

_LAZY = {name: module for module, names in (
    ("simbench.api", ("score", "sweep")),
    ("simbench.systems.resolve", ("resolve_system",)),
    ("simbench.result", ("Score",)),
    ("simbench.measure", ("Measure", "Param")),
    ("simbench.pairing", ("pair_sites",)),
    ("simbench.stats", ("bootstrap_ci",)),
    ("simbench.errors", ("ParameterError",)),
    ("simbench.recording", ("Recording", "load_recording", "open_recording", "save_recording",
                            "site_dataset", "from_brainscore")),
    ("simbench.importers", ("from_spike_times", "from_nwb")),
    ("simbench.simulate", ("simulate_animal",)),
    ("simbench.registry", ("get_registry",)),
    ("simbench.systems", ("RecordedSystem",)),
    ("simbench.systems.torch", ("TorchSystem",)),
) for name in names}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from simbench.version import package_version

        return package_version()
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simbench' has no attribute '{name}'")


class _OldScoreModule(types.ModuleType):
    """``simbench.score`` as a module, as the previous release had it, for one release.

    ``from simbench.score import Score, bootstrap_ci`` (the previous plugin guide) gets the
    top-level names with a ``DeprecationWarning``; ``simbench.score`` itself stays the scoring
    function (this object, called, is that function too). A file ``simbench/score.py`` would
    replace the function by the module on import, so the module lives here instead.
    """

    _MOVED = ("Score", "bootstrap_ci")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return import_module("simbench.api").score(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name not in self._MOVED:
            raise AttributeError(f"module 'simbench.score' has no attribute '{name}'")
        warnings.warn(f"'from simbench.score import {name}' is deprecated and stops working in "
                      f"the next release: use 'from simbench import {name}'",
                      DeprecationWarning, stacklevel=2)
        return __getattr__(name)


sys.modules.setdefault("simbench.score", _OldScoreModule(
    "simbench.score", "Deprecated: the previous release's module of Score and bootstrap_ci."))
sys.modules["simbench.score"].__spec__ = ModuleSpec("simbench.score", None)

__all__ = ["SimbenchError", "__version__", "hookimpl", "hookspec", *_LAZY]
