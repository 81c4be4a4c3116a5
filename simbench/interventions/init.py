"""Starting subspaces from the data instead of at random.

MAS learns one orthonormal U_i per system such that the systems' coordinates h_i U_i agree
on the same stimuli. A random start spends most of its steps finding where the variance is;
starting from the data leaves training only the fine alignment:

- ``pca``: U_0 spans the top-k principal directions of the first system's latents; every
  other U_i is its orthogonal-Procrustes match to them (the orthonormal d_i x k matrix whose
  coordinates h_i U_i best agree with h_0 U_0 over the same stimuli and positions).

Needs the systems' latents on the same stimuli (the same task and pool); otherwise the map
keeps its random start and :func:`init_from_data` says so by returning False.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

INITS = ("random", "pca")


def _paired_latents(parties: Sequence[Any], split: str = "train") -> list[Tensor] | None:
    """Each party's latents at the positions every party can be intervened at, same stimuli."""
    pools = [p.pools.get(split) for p in parties]
    latents = [p.latents.get(split) for p in parties]
    if any(x is None for x in (*pools, *latents)):
        return None
    tokens = [np.asarray(pool.tokens) for pool in pools]
    if any(t.shape != tokens[0].shape or not np.array_equal(t, tokens[0]) for t in tokens):
        return None
    allowed = np.logical_and.reduce([np.asarray(pool.allowed) for pool in pools])
    if not allowed.any():
        return None
    mask = torch.as_tensor(allowed, device=latents[0].device)
    out = []
    for lat in latents:
        h = lat[:, : mask.shape[1]][mask[:, : lat.shape[1]]].double()
        out.append(h - h.mean(0))
    return out


def procrustes(h: Tensor, z: Tensor) -> Tensor:
    """The orthonormal U (d x k) maximising agreement of ``h @ U`` with ``z`` (Stiefel
    Procrustes: U = A B^T from the SVD A S B^T of h^T z)."""
    a, _, bt = torch.linalg.svd(h.T @ z, full_matrices=False)
    return a @ bt


def init_from_data(imap: Any, parties: Sequence[Any], how: str) -> bool:
    """Set ``imap``'s subspaces from the parties' cached latents; False if it kept its start."""
    if how == "random":
        return False
    if how not in INITS:
        raise ValueError(f"unknown subspace init {how!r}: one of {', '.join(INITS)}")
    hs = _paired_latents(parties)
    if hs is None:
        return False
    k = imap.k
    _, _, vt = torch.linalg.svd(hs[0], full_matrices=False)
    u0 = vt[:k].T  # [d_0, k]
    z0 = hs[0] @ u0
    us = [u0] + [procrustes(h, z0) for h in hs[1:]]
    with torch.no_grad():
        for sub, u in zip(imap.subspaces, us):
            sub.proj.weight = u.to(sub.proj.weight.dtype)
    return True
