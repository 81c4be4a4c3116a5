"""Starting subspaces from the data instead of at random, and choosing between the two per pair.

A random start spends most of its steps finding where the variance is; starting from the
data leaves training only the fine alignment:

- ``pca``: U_0 spans the top-k principal directions of the first system's centred latents;
  every other U_i is its orthogonal-Procrustes match to them on the same stimuli.
- ``data``: the same on the *raw* latents. An interchange swaps raw coordinates, so the
  networks' means in the subspace must agree too: on two zoo GRU seeds (k = 32) the raw start
  aligns 0.59 / 0.66 of the cross-model validation trials before training (centred: 0.56 /
  0.53) and reaches validation IIA 0.95 in 50 steps (centred 75, random 250).
- ``auto`` (MAS's default): the ``data`` start when its mean cross-model validation IIA (first
  :data:`AUTO_ROWS` rows per direction, no training) beats the random start's by
  :data:`AUTO_MARGIN`, else the random one, bit for bit. Where a linear match of raw latents
  says little about the causal alignment (GRU vs LSTM, or a transformer's layer 0) the data
  start aligns no more than chance and trains worse (GRU vs LSTM: 0.55-0.72 against 0.73).

Needs the systems' latents on the same stimuli; otherwise the map keeps its random start
(:func:`init_from_data` returns False).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

INITS = ("auto", "random", "pca", "data")
#: ``auto`` keeps the data start when its mean cross-model validation IIA beats the random
#: start's by at least this much (chance is ~0.1 on the zoo tasks; GRU seeds start at ~0.6,
#: GRU vs LSTM or transformer within 0.04 of the random start)
AUTO_MARGIN = 0.1
#: validation rows per direction the ``auto`` check scores for each start (the margin is
#: about 4 binomial standard errors of the difference there)
AUTO_ROWS = 300


def _paired_latents(parties: Sequence[Any], split: str = "train", *,
                    centre: bool = True) -> list[Tensor] | None:
    """Each party's latents at the positions every party can be intervened at, same stimuli
    (centred over those positions when ``centre``)."""
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
        out.append(h - h.mean(0) if centre else h)
    return out


def procrustes(h: Tensor, z: Tensor) -> Tensor:
    """The orthonormal U (d x k) maximising agreement of ``h @ U`` with ``z`` (Stiefel
    Procrustes: U = A B^T from the SVD A S B^T of h^T z)."""
    a, _, bt = torch.linalg.svd(h.T @ z, full_matrices=False)
    return a @ bt


def data_subspaces(parties: Sequence[Any], k: int, how: str = "data") -> list[Tensor] | None:
    """The ``how`` start (``pca``: centred, ``data``: raw; see the module docstring) as one
    d_i x k orthonormal matrix per party, or None when the parties saw different stimuli."""
    hs = _paired_latents(parties, centre=how == "pca")
    if hs is None:
        return None
    u0 = top_directions(hs[0], k)  # [d_0, k]
    z0 = hs[0] @ u0
    return [u0] + [procrustes(h, z0) for h in hs[1:]]


def top_directions(h: Tensor, k: int) -> Tensor:
    """The top-``k`` right singular vectors of ``h`` [n, d] as a d x k matrix: the leading
    eigenvectors of its second moment h^T h (d x d, in h's dtype: float64 here), what an SVD
    of the tall h gives at a fraction of its cost (~1 s of a 2-core CPU for a 2,000-stimulus
    pool). A column's sign is arbitrary, as an SVD's is: flipping a column of every start
    together changes no interchange (the coordinate and its write-back flip both)."""
    _, vecs = torch.linalg.eigh(h.T @ h)  # ascending eigenvalues
    return vecs.flip(1)[:, :k]


def set_subspaces(imap: Any, us: Sequence[Tensor]) -> None:
    """Start ``imap``'s trainable subspaces at ``us`` (through the orthogonal parametrization)."""
    with torch.no_grad():
        for sub, u in zip(imap.subspaces, us):
            sub.proj.weight = u.to(sub.proj.weight.dtype)


def init_from_data(imap: Any, parties: Sequence[Any], how: str) -> bool:
    """Set ``imap``'s subspaces from the parties' cached latents (``how``: ``pca`` or
    ``data``); False if it kept its start (``random``, or different stimuli). ``auto`` needs
    an engine to check the start: see :func:`choose_start`."""
    if how == "random":
        return False
    if how not in INITS or how == "auto":
        raise ValueError(f"unknown subspace init {how!r}: one of random, pca, data "
                         "(auto: choose_start)")
    us = data_subspaces(parties, imap.k, how)
    if us is None:
        return False
    set_subspaces(imap, us)
    return True


def choose_start(engine: Any, how: str) -> dict[str, Any]:
    """Start ``engine.imap`` as ``how`` says (``auto``: check the data start first); returns,
    for a score's attrs, ``init`` (the start used) and for ``auto`` ``init_check`` (each
    start's mean cross-model validation IIA). The random start is the map as built."""
    imap, parties = engine.imap, engine.parties
    if how != "auto":
        return {"init": how if init_from_data(imap, parties, how) else "random"}
    us = data_subspaces(parties, imap.k, "data")
    if us is None:
        return {"init": "random"}
    checked = [d for d in engine.trained if d[0] != d[1]] or list(engine.trained)
    if not checked:
        return {"init": "random"}
    random_state = {k: v.clone() for k, v in imap.state_dict().items()}
    random_iia = float(np.mean(list(engine.iia("val", checked, limit=AUTO_ROWS).values())))
    set_subspaces(imap, us)
    data_iia = float(np.mean(list(engine.iia("val", checked, limit=AUTO_ROWS).values())))
    check = {"random": round(random_iia, 4), "data": round(data_iia, 4),
             "margin": AUTO_MARGIN}
    if data_iia >= random_iia + AUTO_MARGIN:
        return {"init": "data", "init_check": check}
    imap.load_state_dict(random_state)
    return {"init": "random", "init_check": check}
