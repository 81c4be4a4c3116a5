"""Recordings: one system's activity at named sites, as netCDF-4 through xarray.

The package is split by concern; every name below is importable from ``simbench.recording``:

- :mod:`~simbench.recording.schema`: the schema (:class:`Recording`, :func:`site_dataset`,
  ``SCHEMA``, ``ACTIVITY``, ``RESERVED_COORDS``); read its docstring for the file layout.
- :mod:`~simbench.recording.validate`: checks of a site naming its field (:func:`site_problems`,
  :func:`validate_site`) and of its activity in the file, in bounded memory
  (:func:`unwritten_problems`, :func:`scanned_problems`).
- :mod:`~simbench.recording.io`: netCDF files (:func:`save_recording`, :func:`load_recording`,
  :func:`open_recording`, :func:`load_or_open`, :func:`recording_problems`,
  :func:`name_tokens`).
- :mod:`~simbench.recording.lazy`: activity left in its file and read by rows
  (:func:`is_lazy`, ``LAZY``).
- :mod:`~simbench.recording.memory`: what a file declares against the memory simbench may use
  (:func:`available_memory`, :func:`declared_variables`, :func:`check_declared_size`,
  ``MEMORY_FRACTION``, ``MEMORY_ENV``, ``STRING_BYTES``).
- :mod:`~simbench.recording.brainscore`: Brain-Score assemblies (:func:`from_brainscore`).
- :mod:`~simbench.recording.tokens`: integer token codes, accepted with a warning by measures
  that do not read tokens, refused with the conversion line by what reads them.
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
