"""Plain-text tables for the terminal, shared by every command (the harness prints the same
tables, so the function lives in :mod:`simbench.bench.sanitize`)."""

from __future__ import annotations

from simbench.bench.sanitize import text_table as table

__all__ = ["table"]
