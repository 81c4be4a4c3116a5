"""Choosing where torch work runs: ``auto`` takes a GPU when there is one."""

from __future__ import annotations

from simbench.errors import SimbenchError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise SimbenchError(f"unknown device '{device}'", field="device",
                            fix=f"use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise SimbenchError("--device cuda was asked for, but torch sees no CUDA device",
                            field="device", fix="use --device auto or --device cpu")
    return device
