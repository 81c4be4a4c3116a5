"""What a file is, and the refusal of pickled checkpoints.

Recordings and checkpoints both meet files a user hands in; a pickled one (``torch.save``,
``pickle``) could run code when loaded, so it is recognised by suffix or by its first bytes,
never unpickled, and refused with an error that says how to convert it to safetensors. This
module depends on nothing but :mod:`simbench.errors`, so the recording loader can use it
without pulling in the zoo.
"""

from __future__ import annotations

from pathlib import Path

from simbench.errors import CheckpointError

#: Suffixes of pickled checkpoints (torch.save, pickle): refused by name before reading a byte.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt")
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
CONVERT = ("import torch, safetensors.torch; safetensors.torch.save_file({{k: v.contiguous() "
           "for k, v in torch.load('{src}', weights_only=True).items()}}, '{dst}')")


def sniff(path: Path) -> str:
    """What a file is: 'safetensors', 'pickle', 'zip' (torch.save) or 'unknown'."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 0 < n < MAX_HEADER_BYTES and head[8:9] == b"{":
            return "safetensors"
    return "pickle" if head[:1] == b"\x80" else "zip" if head[:2] == b"PK" else "unknown"


def refuse_pickled(path: str | Path) -> None:
    """Raise a :class:`CheckpointError` if ``path`` is a pickled checkpoint; else return.

    Pickled checkpoints are recognised by suffix (``.pt``, ``.pth``, ``.pkl``, ...) or by their
    first bytes (a pickle, or the zip that ``torch.save`` writes); nothing is unpickled. The
    error says how to convert the file to safetensors where it is trusted.
    """
    path = Path(path)
    kind = sniff(path) if path.is_file() else "unknown"
    if kind == "safetensors" or (path.suffix.lower() not in PICKLE_SUFFIXES
                                 and kind not in ("pickle", "zip")):
        return
    what = {"pickle": "a Python pickle",
            "zip": "a torch.save archive (a pickle inside)"}.get(kind, "a pickled checkpoint")
    dst = path.with_suffix(".safetensors").name
    raise CheckpointError(
        f"refusing {what}: pickled checkpoints (.pt, .pth, .pkl) are never loaded, since "
        "unpickling can run arbitrary code; simbench reads safetensors checkpoints and netCDF "
        "recordings", file=path,
        fix=f"convert it once where you trust it: {CONVERT.format(src=path.name, dst=dst)} ; "
        f"then write {path.with_suffix('.json').name} (config, task, sha256) as `simbench zoo "
        "train` does, or wrap your own module in Python with "
        "simbench.systems.torch.TorchSystem")
