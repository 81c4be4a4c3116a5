"""Intervention maps: how a source latent becomes a patched target latent.

Every causal measure is the same engine with a different map: :class:`SubspaceMap` (MAS, DAS,
CLMAS: one U_i per system, the target keeping what lies outside its subspace),
:class:`StitchMap` (model stitching: rank-k, replacing the target latent by ``h_s A B (+ b)``)
and :class:`OrthogonalStitchMap` (latent stitching: ``h_s Q``). A map splits into
``code(s, t, h_s)`` and ``apply(t, h_t, z)`` so the engine computes source codes once per step.
Maps are initialised from a seeded CPU generator: a seed gives the same map on every device.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from simbench.interventions.subspace import Subspace, patch_subspace, seeded_orthogonal


class InterventionMap(nn.Module):
    """Base: ``apply(t, h_t, code(s, t, h_s))`` is the patched target latent."""

    def code(self, s: int, t: int, h_s: Tensor) -> Tensor:
        raise NotImplementedError

    def apply(self, t: int, h_t: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError


class SubspaceMap(InterventionMap):
    """One orthonormal d_i x k matrix per system: O(N) parameters for N systems."""

    def __init__(self, widths: list[int], k: int, *, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = k
        self.subspaces = nn.ModuleList(Subspace(d, k, generator=g) for d in widths)
        self._fixed: list[Tensor | None] = [None] * len(widths)

    def U(self, i: int) -> Tensor:
        fixed = self._fixed[i]
        return fixed if fixed is not None else self.subspaces[i].U

    def fix(self, i: int, u: Tensor) -> None:
        """Use a fixed matrix for system i (the untrained random control)."""
        self._fixed[i] = u

    def code(self, s: int, t: int, h_s: Tensor) -> Tensor:
        return h_s @ self.U(s)

    def apply(self, t: int, h_t: Tensor, z: Tensor) -> Tensor:
        return patch_subspace(h_t, z, self.U(t))


class Replacing(InterventionMap):
    """A map that replaces the target latent by the source's code, one module per direction
    (``maps["s->t"]``)."""

    maps: nn.ModuleDict

    def code(self, s: int, t: int, h_s: Tensor) -> Tensor:
        return self.maps[f"{s}->{t}"](h_s)

    def apply(self, t: int, h_t: Tensor, z: Tensor) -> Tensor:
        return z.to(h_t.dtype)


class StitchMap(Replacing):
    """Rank-k linear stitch per direction: h'_t = h_s A B (+ b), replacing h_t entirely."""

    def __init__(self, widths: list[int], directions: list[tuple[int, int]], rank: int, *,
                 bias: bool = True, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.maps = nn.ModuleDict()
        for s, t in directions:
            down = nn.Linear(widths[s], rank, bias=False)
            up = nn.Linear(rank, widths[t], bias=bias)
            with torch.no_grad():
                down.weight.copy_(torch.randn(rank, widths[s], generator=g) / widths[s] ** 0.5)
                up.weight.copy_(torch.randn(widths[t], rank, generator=g) / rank ** 0.5)
                if bias:
                    up.bias.zero_()
            self.maps[f"{s}->{t}"] = nn.Sequential(down, up)


class OrthogonalStitchMap(Replacing):
    """One orthogonal map per direction (d_s x d_t, semi-orthogonal when widths differ)."""

    def __init__(self, widths: list[int], directions: list[tuple[int, int]], *,
                 seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.maps = nn.ModuleDict()
        for s, t in directions:
            lin = nn.Linear(widths[s], widths[t], bias=False)
            with torch.no_grad():
                q = torch.linalg.qr(torch.randn(max(widths[s], widths[t]),
                                                min(widths[s], widths[t]), generator=g)).Q
                lin.weight.copy_(q if widths[t] >= widths[s] else q.T)
            seeded_orthogonal(lin, g)
            self.maps[f"{s}->{t}"] = lin


class InverseStitch(Replacing):
    """The Moore-Penrose inverse of a trained stitch ``s -> t``, used as a stitch ``t -> s``.

    ``h'_s = (h_t - b) W^+`` with ``W = A B`` the trained map (rank k, so h'_s lies in a
    k-dimensional subspace of the source's space). Keeps the trained direction working too.
    """

    def __init__(self, stitch: Any, s: int, t: int) -> None:
        super().__init__()
        self.stitch, self.s, self.t = stitch, s, t
        seq = stitch.maps[f"{s}->{t}"]
        with torch.no_grad():
            w = seq[0].weight.T @ seq[1].weight.T  # [d_s, d_t]
            self.register_buffer("pinv", torch.linalg.pinv(w.double()).float())  # [d_t, d_s]
            b = seq[1].bias
            self.register_buffer("bias", b.detach().clone() if b is not None
                                 else torch.zeros(w.shape[1], device=w.device))

    def code(self, s: int, t: int, h_s: Tensor) -> Tensor:
        if (s, t) == (self.t, self.s):
            return (h_s - self.bias) @ self.pinv
        return self.stitch.code(s, t, h_s)
