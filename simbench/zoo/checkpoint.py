"""Checkpoints: safetensors weights plus a JSON sidecar, verified by sha256 on every load.

A checkpoint ``NAME.safetensors`` has a sidecar ``NAME.json`` holding the model config, task,
architecture, seed, accuracy, parameter count and the sha256 of the ``.safetensors`` file.
Loading refuses anything that is not safetensors (pickles, ``torch.save`` zips) without ever
unpickling it, and refuses weights whose sha256 differs from the sidecar's (or the manifest's).
Weights are stored as float16 to keep the zoo small; the recorded accuracy is measured on the
weights as loaded back (float32 compute), so it is what a user gets.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from simbench.errors import CheckpointError
from simbench.zoo.models import ModelConfig, ZooModel, build_model, n_params

SIDECAR_SCHEMA = "simbench-checkpoint/1"
STORE_DTYPE = torch.float16


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sniff(path: Path) -> str:
    """What a file is: 'safetensors', 'pickle', 'zip' (torch.save) or 'unknown'."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:2] == b"PK":
        return "zip"
    return "unknown"


def save_model(model: ZooModel, path: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (.safetensors, float16) and its JSON sidecar; returns the sidecar dict."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", STORE_DTYPE).contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", "arch": model.config.arch})
    side = {"schema": SIDECAR_SCHEMA, **meta, "config": model.config.to_dict(),
            "arch": model.config.arch, "n_params": n_params(model), "dtype": "float16",
            "file": path.name, "sha256": sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    return side


def read_sidecar(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    side = path.with_suffix(".json")
    if not side.exists():
        raise CheckpointError("checkpoint has no JSON sidecar", file=side,
                              fix="keep NAME.json next to NAME.safetensors (written by "
                              "simbench zoo train)")
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"sidecar is not valid JSON: {exc}", file=side) from None


def load_checkpoint(path: str | Path, *, expected_sha256: str | None = None,
                    device: str | torch.device = "cpu") -> tuple[ZooModel, dict[str, Any]]:
    """Load a safetensors checkpoint after checking its format and sha256.

    Raises :class:`CheckpointError` for a missing file, a pickle or ``torch.save`` archive (never
    unpickled), a sha256 that differs from the sidecar's or ``expected_sha256``, or weights that do
    not fit the sidecar's config.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise CheckpointError("no such checkpoint", file=path,
                              fix="check the path, or `simbench zoo list` for shipped ids")
    kind = _sniff(path)
    if kind != "safetensors":
        what = {"pickle": "a Python pickle", "zip": "a torch.save archive (pickle inside)"}.get(
            kind, "not a safetensors file")
        raise CheckpointError(
            f"refusing to load {what}: only safetensors checkpoints are accepted (a pickle can "
            "run arbitrary code)", file=path,
            fix="convert it where you trust it: safetensors.torch.save_file(model.state_dict(), "
            "'model.safetensors'), and write a JSON sidecar with its config")
    meta = read_sidecar(path)
    digest = sha256_file(path)
    for label, want in (("sidecar", meta.get("sha256")), ("manifest", expected_sha256)):
        if want is not None and want != digest:
            raise CheckpointError(
                f"sha256 mismatch: the {label} expects {want[:16]}..., the file is "
                f"{digest[:16]}...; the weights were changed or corrupted", file=path,
                fix="restore the file (git checkout recordings/zoo) or rebuild it with "
                "`simbench zoo rebuild`")
    cfg = ModelConfig(**meta["config"])
    model = build_model(cfg)
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit a {cfg.arch} with the sidecar's config: "
                              f"{str(exc).splitlines()[0]}", file=path) from None
    return model.to(device).eval(), meta
