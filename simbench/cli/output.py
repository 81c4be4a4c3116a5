"""Plain-text tables for the terminal, shared by every command (the harness prints the same
tables, so the function lives in :mod:`simbench.bench.sanitize`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from simbench.bench.sanitize import text_table as table


def plain(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses and mappings as dicts, sequences and arrays as
    lists, numpy scalars as Python numbers, NaN and infinities as None, anything else as text.
    A dataclass field holding a spec (``spec``) is left out: it is the input, not a result."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "spec"}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy arrays and scalars
        return plain(tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return str(value)


__all__ = ["plain", "table"]
