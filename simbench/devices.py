"""Choosing where torch work runs: the one device resolver every command and measure uses.

``auto`` takes a CUDA GPU when torch sees one, else the CPU; ``cpu``, ``cuda`` and ``cuda:N``
are taken as given (a CUDA device without a GPU is an error saying what to use instead).
:func:`to_device` moves host data there (pinned and non-blocking on a GPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simbench.errors import SimbenchError

if TYPE_CHECKING:
    import numpy as np
    import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device | None = "auto") -> str:
    """The concrete device for ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, never
    ``"auto"``. ``None`` means ``auto``; a ``torch.device`` is accepted as its string."""
    name = "auto" if device is None else str(device)
    prefix, _, index = name.partition(":")
    if name not in DEVICES and not (prefix == "cuda" and index.isdigit()):
        raise SimbenchError(f"unknown device '{name}'", field="device",
                            fix=f"use one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "cpu":
        return "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise SimbenchError(f"--device {name} was asked for, but torch sees no CUDA device",
                            field="device", fix="use --device auto or --device cpu")
    return name


def to_device(data: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``data`` (a host array or CPU tensor) as a tensor on ``device``.

    For a CUDA device the copy goes through pinned (page-locked) memory without blocking, so
    the host keeps queueing work while the copy runs; torch's pinned-memory allocator keeps
    the staging buffer alive until the copy is done. On the CPU the array's memory is shared,
    as ``torch.as_tensor`` would.
    """
    import torch

    tensor = data if isinstance(data, torch.Tensor) else torch.as_tensor(data)
    target = torch.device(device)
    if target.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(target, non_blocking=True)
    return tensor.to(target)


__all__ = ["DEVICES", "resolve_device", "to_device"]
