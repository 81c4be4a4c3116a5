"""simbench: do two neural systems solve a task the same way?

Similarity measures (MAS, CLMAS, DAS, stitching, RSA, CKA) are pluggy plugins over
xarray-labelled recordings stored as netCDF. Heavy libraries (torch, rsatoolbox) load only when
a measure runs, so importing simbench and starting the CLI stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from simbench.errors import SimbenchError
from simbench.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

_LAZY = {
    "score": "simbench.api",
    "Score": "simbench.score",
    "Measure": "simbench.measure",
    "Param": "simbench.measure",
    "Recording": "simbench.recording",
    "load_recording": "simbench.recording",
    "save_recording": "simbench.recording",
    "site_dataset": "simbench.recording",
    "from_brainscore": "simbench.recording",
    "get_registry": "simbench.registry",
    "RecordedSystem": "simbench.systems",
    "TorchSystem": "simbench.systems.torch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simbench' has no attribute '{name}'")


__all__ = ["SimbenchError", "hookimpl", "hookspec", *_LAZY]
