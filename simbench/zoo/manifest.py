"""The zoo's manifest: ``manifest.json`` in a zoo directory, model id -> entry with sha256 sums.

Shared by the numeric zoo (``recordings/zoo``) and the language-model zoo
(``recordings/lm_zoo``); both pass their own directory. Importing this module does not
import torch.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from simbench.errors import CheckpointError
from simbench.resources import recordings_dir

ZOO_DIR = recordings_dir() / "zoo"
MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "simbench-zoo/1"


#: What a float training run's bits depend on besides its seeds: the CPU kernels torch dispatches
#: to (AVX-512 and AVX2 sum in different orders) and the library versions (transformers also writes
#: its version into ``config.json``). A rebuild is byte-identical only where all of these match.
BUILD_ENV_KEYS = ("cpu_capability", "torch", "transformers")


def build_env() -> dict[str, str]:
    """The facts a zoo entry records about the machine and libraries that built it.

    ``cpu_capability`` is torch's own dispatch level (``AVX512``, ``AVX2``, ``DEFAULT``...), the
    one that decides which summation order its CPU kernels use.
    """
    import platform

    import numpy
    import torch

    env = {"cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
           "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version()}
    with contextlib.suppress(ImportError):  # the numeric zoo builds without it
        import transformers

        env["transformers"] = transformers.__version__
    return env


def same_build_env(recorded: dict[str, Any] | None, current: dict[str, Any] | None = None) -> bool:
    """Whether a rebuild here can reproduce ``recorded``'s files byte for byte."""
    if not recorded:
        return False
    current = build_env() if current is None else current
    return all(recorded.get(k) == current.get(k) for k in BUILD_ENV_KEYS)


def zoo_dir(directory: str | Path | None = None, default: Path = ZOO_DIR) -> Path:
    """``directory``, or the zoo's own (``default``: the numeric zoo's) when None."""
    return Path(directory) if directory is not None else default


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
