"""The one device resolver: ``auto`` is a GPU when torch sees one; bad names say what works."""

from __future__ import annotations

import pytest
import torch

from simbench.devices import resolve_device
from simbench.errors import SimbenchError


def test_auto_is_cuda_exactly_when_torch_sees_a_gpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected
    assert resolve_device() == expected


def test_concrete_devices_pass_through() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(torch.device("cpu")) == "cpu"


def test_unknown_device_names_the_valid_ones() -> None:
    with pytest.raises(SimbenchError, match=r"(?s)unknown device 'tpu'.*auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(SimbenchError, match="unknown device 'cuda:x'"):
        resolve_device("cuda:x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_cuda_without_a_gpu_is_refused() -> None:
    for name in ("cuda", "cuda:0"):
        with pytest.raises(SimbenchError, match=f"--device {name} was asked for"):
            resolve_device(name)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_is_used_when_present() -> None:
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"
