"""File hashing: one sha256 reader for checkpoints, model directories, recordings and plugins.

Files are read 1 MiB at a time, so hashing a multi-gigabyte recording or weights file holds one
block in memory, never the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BLOCK = 1 << 20


def update_with_file(h: Any, path: str | Path) -> Any:
    """Feed a file's bytes into the hash object ``h`` (e.g. ``hashlib.sha256()``), a block at a
    time, and return ``h`` (for hashes over several files)."""
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(BLOCK), b""):
            h.update(block)
    return h


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read a block at a time."""
    import hashlib

    return update_with_file(hashlib.sha256(), path).hexdigest()
