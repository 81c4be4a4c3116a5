"""Borrowing a caller's network for a measure and giving it back exactly as it was.

A causal measure runs a user's network on its own device, in eval mode, with no parameter
requiring a gradient; the network still belongs to the caller (a harness worker keeps it
between jobs, a notebook keeps training it). :func:`frozen_on` puts back, when the block ends,
every parameter and buffer tensor (the same objects), each ``requires_grad`` and gradient, and
every submodule's train/eval mode. On CUDA, where cuDNN runs an RNN's backward pass only in
train mode, recurrent layers go to train mode where that changes nothing (no dropout between
layers), and cuDNN is switched off where it would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

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
    stack = ExitStack()
    try:
        module.to(device)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        if torch.device(device).type == "cuda" and not cudnn_backward_ready(module):
            stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        yield module
    finally:
        stack.close()
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


def cudnn_backward_ready(module: nn.Module) -> bool:
    """Put ``module``'s recurrent layers in train mode where that changes nothing (no dropout
    between layers), so cuDNN can run their backward pass; False if some layer would change."""
    ready = True
    for m in module.modules():
        if isinstance(m, nn.RNNBase):
            if m.dropout == 0 or m.num_layers == 1:
                m.train()
            else:
                ready = False
    return ready


__all__ = ["cudnn_backward_ready", "frozen_on"]
