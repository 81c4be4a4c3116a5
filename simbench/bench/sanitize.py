"""Names from a spec or a store are data: make them safe for a terminal and for spreadsheets.

A store or spec someone sends you chooses the system aliases, measure labels and findings that
the boards print. Two ways such text can act instead of being shown:

- **Terminal escapes**: ESC, BEL and other control characters (and Unicode bidi overrides)
  printed raw can retitle the window, rewrite what is on screen or hide text.
  :func:`terminal_safe` shows each as a visible escape (``\\x1b``) instead.
- **Spreadsheet formulas**: a CSV cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a CR
  is a formula to Excel and LibreOffice (``=HYPERLINK(...)``). :func:`csv_cell` prefixes such a
  cell with a single quote, as the OWASP guidance on CSV injection says; numbers (``-0.5``)
  stay numbers.

:func:`text_table` is the plain left-aligned table every command and board prints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# C0 and C1 control characters, DEL, and the Unicode bidi controls ("Trojan source").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: Any, *, newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape (so a second pass changes
    nothing); ``newlines`` keeps line breaks."""
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    return pattern.sub(_visible, str(text))


#: a plain decimal number (``-0.5``, ``1e-3``): a spreadsheet reads it as a value
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell (see the module docstring)."""
    if not isinstance(value, str):
        return value
    head = value.lstrip(" ")
    if head.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned text table; floats with four decimals, None as ``-``."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)
