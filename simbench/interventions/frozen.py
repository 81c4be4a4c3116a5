"""Borrowing a caller's network for a measure and giving it back exactly as it was.

A causal measure runs a user's network on its own device, in eval mode, with no parameter
requiring a gradient (only the alignment map is trained). The network belongs to the caller,
though: a harness worker keeps its systems between jobs, a notebook keeps training its model.
:func:`frozen_on` sets the network up for the measure and, when the block ends (also by an
exception), puts back every parameter and buffer tensor it held (same objects, so the same
device and storage), each parameter's ``requires_grad`` and gradient, and every submodule's
train/eval mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def frozen_on(module: nn.Module, device: str | torch.device) -> Iterator[nn.Module]:
    """``module`` on ``device``, in eval mode, no parameter requiring grad, for the block."""
    modules = list(module.modules())
    modes = [(m, m.training) for m in modules]
    buffers = [(m, key, b) for m in modules for key, b in m._buffers.items() if b is not None]
    params = [(m, key, p, p.data, p.requires_grad, p.grad,
               None if p.grad is None else p.grad.data)
              for m in modules for key, p in m._parameters.items() if p is not None]
    try:
        module.to(device)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        yield module
    finally:
        for m, key, b in buffers:
            m._buffers[key] = b
        for m, key, p, data, requires_grad, grad, grad_data in params:
            m._parameters[key] = p
            p.data = data
            if grad is not None:
                grad.data = grad_data
            p.grad = grad
            p.requires_grad_(requires_grad)
        for m, training in modes:
            m.training = training


__all__ = ["frozen_on"]
