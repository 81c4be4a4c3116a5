"""Checkpoints: safetensors weights plus a JSON sidecar, verified by sha256 on every load.

A checkpoint ``NAME.safetensors`` has a sidecar ``NAME.json`` (config, task, dtype, sha256 and
what training recorded; the documentation's guide lists the fields under "Checkpoints"). Loading
never unpickles anything and never loads weights it cannot verify: without a sha256 the error
shows the file's current one, so trusting a file is a deliberate edit (no trust on first use).
Weights are stored as float16 to keep the zoo small; the recorded accuracy is measured on the
weights as loaded back, so it is what a user gets. Importing this module does not import torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simbench.digest import sha256_file
from simbench.errors import CheckpointError
from simbench.pickled import MAX_HEADER_BYTES, PICKLE_SUFFIXES, refuse_pickled, sniff

__all__ = ["MAX_HEADER_BYTES", "PICKLE_SUFFIXES", "refuse_pickled", "sha256_file"]

if TYPE_CHECKING:
    import torch

    from simbench.zoo.models import ZooModel

SIDECAR_SCHEMA = "simbench-checkpoint/1"
STORE_DTYPE = "float16"
#: safetensors header dtype codes of the dtypes a sidecar may declare.
SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}


def save_model(model: ZooModel, path: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``path`` (.safetensors, float16) and its JSON sidecar; returns the sidecar dict."""
    import torch
    from safetensors.torch import save_file

    from simbench.zoo.models import n_params

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", getattr(torch, STORE_DTYPE)).contiguous()
               for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt", "arch": model.config.arch})
    side = {"schema": SIDECAR_SCHEMA, **meta, "config": model.config.to_dict(),
            "arch": model.config.arch, "n_params": n_params(model), "dtype": STORE_DTYPE,
            "file": path.name, "sha256": sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(side, indent=1, sort_keys=True) + "\n")
    return side


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of checkpoint ``path`` (``NAME.json`` next to ``NAME.safetensors``),
    refused without a usable ``config``, or with a ``dtype`` simbench cannot check."""
    from simbench.zoo.models import ModelConfig

    side = Path(path).with_suffix(".json")
    if not side.exists():
        raise CheckpointError("checkpoint has no JSON sidecar", file=side,
                              fix="keep NAME.json next to NAME.safetensors (written by "
                              "simbench zoo train)")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"sidecar is not valid JSON: {exc}", file=side,
                              fix="restore the sidecar, or rewrite it as JSON") from None
    if not isinstance(meta, dict):
        raise CheckpointError("sidecar is not a JSON object", file=side,
                              fix="the sidecar is an object with config, task and sha256")
    keys = ", ".join(ModelConfig.__dataclass_fields__)
    config = meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError("sidecar has no 'config' object (the model's architecture and "
                              "sizes)", file=side, field="config",
                              fix=f"add \"config\": {{...}} with the keys {keys}, as `simbench "
                              "zoo train` writes it")
    unknown = sorted(set(config) - set(ModelConfig.__dataclass_fields__))
    if unknown:
        raise CheckpointError(f"sidecar config has unknown keys {unknown}", file=side,
                              field="config", fix=f"config keys are {keys}")
    dtype = meta.get("dtype")
    if dtype is not None and dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"sidecar dtype {dtype!r} is not a float dtype simbench stores",
                              file=side, field="dtype",
                              fix=f"use one of {', '.join(SAFETENSORS_DTYPES)}")
    return meta


def verify_sha256(path: Path, meta: dict[str, Any], expected_sha256: str | None) -> None:
    """Check the file's sha256 against the sidecar's and the manifest's; at least one needed."""
    digest = sha256_file(path)
    side_sha = meta.get("sha256")
    if side_sha is not None and not (isinstance(side_sha, str)
                                     and re.fullmatch(r"[0-9a-f]{64}", side_sha)):
        raise CheckpointError(f"sidecar sha256 {side_sha!r} is not 64 lowercase hex digits",
                              file=path.with_suffix(".json"), field="sha256",
                              fix=f"if you trust {path.name}, set \"sha256\": \"{digest}\"")
    if side_sha is None and expected_sha256 is None:
        raise CheckpointError(
            "the sidecar has no sha256, so the weights cannot be verified; unverified "
            "checkpoints are not loaded", file=path.with_suffix(".json"), field="sha256",
            fix=f"if you trust {path.name}, add \"sha256\": \"{digest}\" to "
            f"{path.with_suffix('.json').name} (its sha256 now; `sha256sum {path.name}` shows "
            "the same)")
    for label, want in (("sidecar", side_sha), ("manifest", expected_sha256)):
        if want is not None and want != digest:
            raise CheckpointError(
                f"sha256 mismatch: the {label} expects {want[:16]}..., the file is "
                f"{digest[:16]}...; the weights were changed or corrupted", file=path,
                fix="restore the file (git checkout recordings/zoo) or rebuild it with "
                "`simbench zoo rebuild`")


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """The tensor entries of a safetensors file's header, checked against the file's size.

    A safetensors file is an 8-byte little-endian header length, a JSON header mapping each
    tensor name to its dtype, shape and byte range, then the bytes. Anything else raises a
    :class:`CheckpointError` (the safetensors library would raise an untyped error).
    """
    path = Path(path)
    size = path.stat().st_size
    fix = ("the file is corrupt or truncated: restore it, or write it again with "
           "safetensors.torch.save_file")
    with path.open("rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= min(size - 8, MAX_HEADER_BYTES):
            raise CheckpointError(f"malformed safetensors header: it declares {n} header bytes "
                                  f"in a {size}-byte file", file=path, fix=fix)
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"malformed safetensors header: not valid JSON ({exc})",
                              file=path, fix=fix) from None
    if not isinstance(header, dict):
        raise CheckpointError("malformed safetensors header: not a JSON object", file=path,
                              fix=fix)
    data = size - 8 - n
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    for name, entry in tensors.items():
        ok = (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
              and isinstance(entry.get("shape"), list)
              and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
              and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
              and all(isinstance(o, int) for o in entry["data_offsets"])
              and 0 <= entry["data_offsets"][0] <= entry["data_offsets"][1] <= data)
        if not ok:
            raise CheckpointError(f"malformed safetensors header: tensor {name!r} has no valid "
                                  f"dtype, shape and byte range within the {data} data bytes",
                                  file=path, fix=fix)
    return tensors


def check_dtype(path: Path, meta: dict[str, Any], tensors: dict[str, Any]) -> None:
    """Refuse tensors stored in another dtype than the sidecar's ``dtype`` says."""
    want = meta.get("dtype")
    wrong = {} if want is None else {name: e["dtype"] for name, e in tensors.items()
                                     if e["dtype"] != SAFETENSORS_DTYPES[want]}
    if wrong:
        name, got = next(iter(sorted(wrong.items())))
        found = {v: k for k, v in SAFETENSORS_DTYPES.items()}.get(got, got)
        raise CheckpointError(
            f"dtype mismatch: the sidecar says {want}, but {len(wrong)} of {len(tensors)} "
            f"tensors are stored otherwise (e.g. {name!r} is {found})", file=path,
            field="dtype", fix=f"set \"dtype\": \"{found}\" in {path.with_suffix('.json').name}"
            " if the weights are right, or restore the checkpoint")


def load_checkpoint(path: str | Path, *, expected_sha256: str | None = None,
                    device: str | torch.device = "cpu") -> tuple[ZooModel, dict[str, Any]]:
    """Load a safetensors checkpoint after checking its format, sidecar, sha256 and dtype.

    Raises :class:`CheckpointError`, naming the file and the fix, for a missing file, anything
    but safetensors (never unpickled), a sidecar without ``config``, weights with no sha256 to
    verify against (neither the sidecar nor ``expected_sha256``) or a different one, a malformed
    header, tensors whose dtype is not the sidecar's, or weights that do not fit the config.
    """
    from safetensors.torch import load_file

    from simbench.zoo.models import ModelConfig, build_model

    path = Path(path)
    if not path.exists():
        raise CheckpointError("no such checkpoint", file=path,
                              fix="check the path, or `simbench zoo list` for shipped ids")
    refuse_pickled(path)
    if sniff(path) != "safetensors" and path.suffix != ".safetensors":
        raise CheckpointError(
            "refusing to load a file that is not safetensors: only safetensors checkpoints "
            "are accepted", file=path,
            fix="convert it where you trust it with safetensors.torch.save_file(state_dict, "
            "'model.safetensors'), and write a JSON sidecar with its config")
    meta = read_sidecar(path)
    verify_sha256(path, meta, expected_sha256)
    check_dtype(path, meta, safetensors_header(path))
    try:
        cfg = ModelConfig(**meta["config"])
        model = build_model(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"sidecar config does not build a model: {exc}",
                              file=path.with_suffix(".json"), field="config",
                              fix="restore the sidecar written with the checkpoint") from None
    try:
        state = {k: v.float() for k, v in load_file(str(path)).items()}
    except Exception as exc:  # the library's SafetensorError is untyped
        raise CheckpointError(f"cannot read the weights: {str(exc).splitlines()[0]}",
                              file=path, fix="restore the file, or write it again with "
                              "safetensors.torch.save_file") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit a {cfg.arch} with the sidecar's config: "
                              f"{str(exc).splitlines()[0]}", file=path) from None
    return model.to(device).eval(), meta
