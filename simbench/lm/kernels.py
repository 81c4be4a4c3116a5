"""Faster kernels for a frozen language model's patched passes, swapped in for one measure.

Stepwise MAS at ``embedding`` reruns the whole model on every training step, so the model's
own kernels set its speed. Two swaps compute the same function with fewer, fused operations
(logits equal to about 1e-5, tested):

- GPT-2's ``gelu_new`` (eight element-wise operations, each kept for the backward pass)
  becomes ``torch.nn.GELU(approximate="tanh")``, the same formula in one fused kernel;
- on the CPU, attention runs as plain matrix products (``eager``) instead of
  ``scaled_dot_product_attention``, whose CPU flash kernel is slow for the zoo's tiny heads.

:func:`fast_kernels` restores the model when the block ends. bf16 is not used: it pays only
where the processor multiplies it natively, and then only with a tolerance on the scores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

#: activation classes replaced by the fused tanh GELU (same function, one kernel)
TANH_GELU_CLASSES = frozenset({"NewGELUActivation", "GELUTanh"})


def _swap_activations(module: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Replace every tanh-GELU submodule by the fused one; returns what to put back."""
    swapped = []
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child).__name__ in TANH_GELU_CLASSES:
                setattr(parent, name, nn.GELU(approximate="tanh"))
                swapped.append((parent, name, child))
    return swapped


@contextlib.contextmanager
def fast_kernels(module: nn.Module, device: str | torch.device) -> Iterator[nn.Module]:
    """``module`` with the fused activation and, on the CPU, eager attention, for the block
    (see the module docstring); everything is put back afterwards."""
    swapped = _swap_activations(module)
    config = getattr(module, "config", None)
    attn_before = getattr(config, "_attn_implementation", None)
    eager = (torch.device(device).type == "cpu" and attn_before not in (None, "eager")
             and hasattr(module, "set_attn_implementation"))
    if eager:
        try:
            module.set_attn_implementation("eager")  # type: ignore[operator]
        except (ValueError, ImportError, NotImplementedError):
            eager = False
    try:
        yield module
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
        if eager:
            module.set_attn_implementation(attn_before)  # type: ignore[operator]


__all__ = ["TANH_GELU_CLASSES", "fast_kernels"]
