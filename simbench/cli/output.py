"""Plain-text tables for the terminal, shared by every command."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, floatfmt: str = ".4f") -> str:
    """A left-aligned text table; floats formatted with ``floatfmt``."""
    cells = [[_fmt(v, floatfmt) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _fmt(value: Any, floatfmt: str) -> str:
    if isinstance(value, float):
        return "nan" if value != value else format(value, floatfmt)
    if value is None:
        return "-"
    return str(value)


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
