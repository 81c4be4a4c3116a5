"""Aligned subspaces: one matrix U_i with orthonormal columns per system.

An intervention from source s into target t replaces the part of h_t in span(U_t) by the
source's coordinates in its own subspace, ``h'_t = h_t + (h_s U_s - h_t U_t) U_t^T``: the
full-rotation form ``((1 - m) * (h_t R_t) + m * (h_s R_s)) R_t^T`` with U = R[:, :k], at O(d k)
instead of a d x d matrix exponential per step. Widths may differ across systems.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from simbench.errors import ParameterError


def seeded_orthogonal(module: nn.Linear, generator: torch.Generator | None) -> None:
    """``parametrizations.orthogonal`` on ``module.weight``, reproducibly: torch completes a
    non-square weight to an orthogonal base with the *global* RNG, so a score would depend on
    whatever used it before; here that draw is seeded from ``generator`` instead, leaving the
    global RNG as it was."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    n, k = module.weight.shape
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if n > k and not module.weight.is_complex():  # torch's default map: householder
            parametrize.register_parametrization(module, "weight", Householder(), unsafe=True)
        else:
            parametrizations.orthogonal(module, "weight")


class Householder(nn.Module):
    """torch's orthogonal parametrization of a tall n x k weight (its default ``householder``
    map) in compact WY form: the same parameter, ``base`` buffer, initial weight and keys.

    The weight is ``base @ (H_1 ... H_k)[:, :k] * signs``, ``H_i = I - tau_i v_i v_i^T`` with
    ``v_i`` the columns of the parameter's strictly lower part plus a unit diagonal and
    ``tau_i = 2 / |v_i|^2``; the product is ``I - V T V^T`` with ``T^-1 = striu(V^T V) +
    diag(1 / tau)`` (Schreiber and Van Loan): one k x k triangular solve forward and backward,
    where ``householder_product``'s backward applies the reflections one at a time (128 x 32 on
    2 CPU cores: about 10 ms of a 110 ms MAS step, against under 1 ms here).
    """

    base: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("base", None)

    def forward(self, x: Tensor) -> Tensor:
        n, k = x.shape
        eye = torch.eye(n, k, dtype=x.dtype, device=x.device)
        v = x.tril(-1) + eye
        gram = v.T @ v
        t_inv = gram.triu(1) + torch.diag(gram.diagonal() / 2)  # 1 / tau_i = |v_i|^2 / 2
        q = eye - v @ torch.linalg.solve_triangular(t_inv, v[:k].T, upper=True)
        return self.base @ (q * x.diagonal().int().unsqueeze(-2))

    @torch.no_grad()
    def right_inverse(self, q: Tensor) -> Tensor:
        """Make ``q`` the weight: complete it to an orthogonal ``base`` (drawing the missing
        columns from the global RNG, as torch does) and return the parameter that maps to
        its first k columns."""
        n, k = q.shape
        full = torch.cat([q, torch.randn(n, n - k, dtype=q.dtype, device=q.device)], 1)
        a, tau = torch.geqrf(full)
        self.base = torch.linalg.householder_product(a, tau) * a.diagonal().sgn().unsqueeze(-2)
        start = torch.zeros_like(q)
        start.diagonal().fill_(-1.0)
        return start


class Subspace(nn.Module):
    """A d x k matrix with orthonormal columns, trained through torch's orthogonal map."""

    def __init__(self, d: int, k: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 1 <= k <= d:
            raise ValueError(f"subspace size k={k} must be between 1 and the site width {d}")
        self.d, self.k = d, k
        self.proj = nn.Linear(k, d, bias=False)  # weight: [d, k]
        with torch.no_grad():
            init = torch.randn(d, k, generator=generator)
            self.proj.weight.copy_(torch.linalg.qr(init).Q)
        seeded_orthogonal(self.proj, generator)

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
