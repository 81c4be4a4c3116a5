"""simbench: do two neural systems solve a task the same way?

Similarity measures (MAS, CLMAS, DAS, stitching, RSA, CKA) are pluggy plugins over
xarray-labelled recordings stored as netCDF. Heavy libraries (torch, rsatoolbox) load only when
a measure runs, so importing simbench and starting the CLI stay fast: every name below but the
error base class and the plugin markers is imported on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from simbench.errors import SimbenchError
from simbench.markers import hookimpl, hookspec

_LAZY = {
    "score": "simbench.api",
    "sweep": "simbench.api",
    "resolve_system": "simbench.systems.resolve",
    "Score": "simbench.result",
    "Measure": "simbench.measure",
    "Param": "simbench.measure",
    "Recording": "simbench.recording",
    "load_recording": "simbench.recording",
    "save_recording": "simbench.recording",
    "site_dataset": "simbench.recording",
    "from_brainscore": "simbench.recording",
    "from_spike_times": "simbench.importers",
    "from_nwb": "simbench.importers",
    "get_registry": "simbench.registry",
    "RecordedSystem": "simbench.systems",
    "TorchSystem": "simbench.systems.torch",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from simbench.version import package_version

        return package_version()
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simbench' has no attribute '{name}'")


__all__ = ["SimbenchError", "__version__", "hookimpl", "hookspec", *_LAZY]
