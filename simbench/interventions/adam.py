"""Adam for the engine's maps: the update of ``torch.optim.Adam``, without loading its compiler.

Every method of a ``torch.optim.Optimizer`` imports ``torch._dynamo`` on first use (1-2 s of a
2-core CPU before the first step). This class keeps the same state and calls the same
functional update (``torch.optim.adam.adam``) with the arguments ``torch.optim.Adam`` passes,
so each step is bit for bit its step (tests/test_engine_start.py compares them).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from torch.optim.adam import adam


class Adam:
    """Adam with torch's defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay, no amsgrad)."""

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3) -> None:
        self.params = list(params)
        self.lr = lr
        self.state: dict[int, dict[str, Tensor]] = {}

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``, as ``torch.optim`` does by default)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        params, grads, avgs, sqs, steps = [], [], [], [], []
        has_complex = False
        for p in self.params:
            if p.grad is None:
                continue
            has_complex |= torch.is_complex(p)
            state = self.state.get(id(p))
            if state is None:  # as torch.optim.Adam's lazy state, step on the host
                state = self.state[id(p)] = {
                    "step": torch.tensor(0.0, dtype=torch.get_default_dtype(), device="cpu"),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
            params.append(p)
            grads.append(p.grad)
            avgs.append(state["exp_avg"])
            sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        adam(params, grads, avgs, sqs, [], steps, foreach=None, capturable=False,
             differentiable=False, fused=None, grad_scale=None, found_inf=None,
             has_complex=has_complex, decoupled_weight_decay=False, amsgrad=False,
             beta1=self.betas[0], beta2=self.betas[1], lr=self.lr, weight_decay=0.0,
             eps=self.eps, maximize=False)
