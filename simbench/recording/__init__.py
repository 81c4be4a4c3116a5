"""Recordings: one system's activity at named sites, as netCDF-4 through xarray.

Every name below is importable from ``simbench.recording``; the modules split it by concern:
:mod:`~simbench.recording.schema` (the file layout, in its docstring),
:mod:`~simbench.recording.validate` (site checks naming their field, and bounded-memory checks
of the activity in a file), :mod:`~simbench.recording.io` (netCDF files),
:mod:`~simbench.recording.lazy` (activity left in its file and read by rows),
:mod:`~simbench.recording.memory` (what a file declares against the memory simbench may use),
:mod:`~simbench.recording.brainscore` (Brain-Score assemblies) and
:mod:`~simbench.recording.tokens` (integer token codes: accepted with a warning where tokens are
not read, refused with the conversion line where they are).
"""

from __future__ import annotations

from simbench.recording.brainscore import BRAINSCORE_RENAMING, from_brainscore
from simbench.recording.io import (
    load_or_open,
    load_recording,
    name_tokens,
    open_recording,
    recording_problems,
    save_recording,
)
from simbench.recording.lazy import LAZY, is_lazy
from simbench.recording.memory import (
    MEMORY_ENV,
    MEMORY_FRACTION,
    STRING_BYTES,
    available_memory,
    check_declared_size,
    declared_variables,
    format_size,
)
from simbench.recording.schema import ACTIVITY, RESERVED_COORDS, SCHEMA, Recording, site_dataset
from simbench.recording.validate import (
    scanned_problems,
    site_problems,
    unwritten_problems,
    validate_site,
)

__all__ = [
    "ACTIVITY", "BRAINSCORE_RENAMING", "LAZY", "MEMORY_ENV", "MEMORY_FRACTION",
    "RESERVED_COORDS", "SCHEMA", "STRING_BYTES", "Recording", "available_memory",
    "check_declared_size", "declared_variables", "format_size", "from_brainscore", "is_lazy",
    "load_or_open", "load_recording", "name_tokens", "open_recording", "recording_problems", "save_recording",
    "scanned_problems", "site_dataset", "site_problems", "unwritten_problems", "validate_site",
]
