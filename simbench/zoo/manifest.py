"""The zoo's manifest: ``manifest.json`` in a zoo directory, model id -> entry with sha256 sums.

Shared by the numeric zoo (``recordings/zoo``) and the language-model zoo
(``recordings/lm_zoo``); both pass their own directory. Importing this module does not
import torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simbench.errors import CheckpointError
from simbench.resources import recordings_dir

ZOO_DIR = recordings_dir() / "zoo"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "simbench-zoo/1"


def zoo_dir(directory: str | Path | None = None) -> Path:
    return Path(directory) if directory is not None else ZOO_DIR


def read_manifest(directory: str | Path | None = None) -> dict[str, Any]:
    path = zoo_dir(directory) / MANIFEST
    if not path.exists():
        return {"schema": MANIFEST_SCHEMA, "models": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"manifest is not valid JSON: {exc}", file=path,
                              fix="restore it (git checkout) or `simbench zoo rebuild`") from None


def write_manifest(entries: dict[str, Any], directory: str | Path | None = None) -> Path:
    path = zoo_dir(directory) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"schema": MANIFEST_SCHEMA, "models": dict(sorted(entries.items()))}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path
