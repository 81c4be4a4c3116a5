"""Aligned subspaces: one matrix U_i with orthonormal columns per system.

With row vectors, an intervention from source s into target t replaces the part of h_t that
lies in span(U_t) by the source's coordinates in its own subspace:

    h'_t = h_t + (h_s U_s - h_t U_t) U_t^T

This equals the full-rotation form ``((1 - m) * (h_t R_t) + m * (h_s R_s)) R_t^T`` with
U = R[:, :k], but costs O(d k) instead of a d x d matrix exponential per step. Widths may differ
across systems (U_s is d_s x k, U_t is d_t x k).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import parametrizations

from simbench.errors import ParameterError


def seeded_orthogonal(module: nn.Linear, generator: torch.Generator | None, *,
                      orthogonal_map: str | None = None) -> None:
    """``parametrizations.orthogonal`` on ``module.weight``, reproducibly.

    For a non-square weight torch completes it to a square orthogonal base with the *global*
    RNG; that base steers every later step, so a score would depend on whatever used the
    global RNG before (earlier jobs in the same worker, model construction). The completion is
    drawn here under a seed taken from ``generator`` instead, leaving the global RNG as it was.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parametrizations.orthogonal(module, "weight", orthogonal_map=orthogonal_map)


class Subspace(nn.Module):
    """A d x k matrix with orthonormal columns, trained through torch's orthogonal map."""

    def __init__(self, d: int, k: int, *, generator: torch.Generator | None = None,
                 orthogonal_map: str | None = None) -> None:
        super().__init__()
        if not 1 <= k <= d:
            raise ValueError(f"subspace size k={k} must be between 1 and the site width {d}")
        self.d, self.k = d, k
        self.proj = nn.Linear(k, d, bias=False)  # weight: [d, k]
        with torch.no_grad():
            init = torch.randn(d, k, generator=generator)
            self.proj.weight.copy_(torch.linalg.qr(init).Q)
        seeded_orthogonal(self.proj, generator, orthogonal_map=orthogonal_map)

    @property
    def U(self) -> torch.Tensor:
        return self.proj.weight

    def extra_repr(self) -> str:
        return f"d={self.d}, k={self.k}"


def patch_subspace(h_t: torch.Tensor, z: torch.Tensor, u_t: torch.Tensor) -> torch.Tensor:
    """Replace h_t's coordinates in span(U_t) by ``z`` (a source's coordinates, h_s U_s)."""
    return h_t + (z - h_t @ u_t) @ u_t.T


def interchange(h_t: torch.Tensor, h_s: torch.Tensor, u_t: torch.Tensor,
                u_s: torch.Tensor) -> torch.Tensor:
    """Replace h_t's coordinates in span(U_t) by h_s's coordinates in span(U_s)."""
    return patch_subspace(h_t, h_s @ u_s, u_t)


def random_subspace(d: int, k: int, seed: int) -> torch.Tensor:
    """A fixed random d x k orthonormal matrix (the untrained control: IIA near chance).

    Drawn on the CPU, so a seed gives the same matrix whatever the device; the caller moves it
    to the engine's device."""
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(d, k, generator=g)).Q


def check_subspace_size(k: int, widths: Sequence[tuple[str, int]], site: str) -> None:
    """An aligned subspace of size ``k`` must fit in every system's site (``widths``: each
    system's id and its site's width)."""
    for system_id, width in widths:
        if k > width:
            raise ParameterError(f"k = {k} is larger than the width of site '{site}' of "
                                 f"'{system_id}' ({width})", site=site, field="k",
                                 fix=f"use --k {width} or less")
