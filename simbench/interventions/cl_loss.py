"""The counterfactual-latent (CL) loss and its held-out fit.

A patched latent ``h`` of a recording-only system is compared with its counterfactual latent
``c`` (:mod:`~simbench.interventions.states`): the loss trains a map, the fit reports held-out.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cl_loss(h: Tensor, c: Tensor) -> Tensor:
    """``0.5 * [(1 - cos(h, c)) + MSE(h, c)]``, averaged over rows.

    The cosine term asks for the right direction, the MSE term for the right scale: a patched
    latent fits only when it is the recorded one, not a scaled copy of it.
    """
    cos = F.cosine_similarity(h, c, dim=-1, eps=1e-8)
    mse = ((h - c) ** 2).mean(-1)
    return (0.5 * ((1 - cos) + mse)).mean()


def cl_fit(h: Tensor, c: Tensor) -> dict[str, float]:
    """Held-out fit of intervened latents to counterfactual ones: mean cosine, R^2, MSE.

    R^2 is ``1 - SS_res / SS_tot`` over all units, SS_tot about each unit's mean of ``c``.
    """
    cos = F.cosine_similarity(h, c, dim=-1, eps=1e-8).mean()
    ss_res = ((h - c) ** 2).sum()
    ss_tot = ((c - c.mean(0, keepdim=True)) ** 2).sum().clamp(min=1e-12)
    return {"cosine": float(cos), "r2": float(1 - ss_res / ss_tot),
            "mse": float(((h - c) ** 2).mean())}
