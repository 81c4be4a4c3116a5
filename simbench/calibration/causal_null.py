"""Nulls for causal measures: the trained alignment scored on counterfactuals whose source is
shuffled.

The IIA of a trained alignment is evidence that the subspace carries the *source* stimulus's
value into the target. The shuffled-counterfactual null breaks exactly this link: the held-out
interventions are kept (targets, positions, expected counterfactual outputs) but each one's
patched latents come from the source state of another, randomly chosen intervention of the same
direction (stimulus and position moved together, so every patched state is a real one). Under
the null hypothesis that the patched latents carry no information about the labelled source
value, source states and labels are exchangeable, so ``p = (1 + #{null >= observed}) / (1 + N)``
is a valid p-value.

Why not shuffle the labels: re-pairing sources runs the networks on the patched states, so a
target that ignores the patch scores the same under the null and is not rewarded, and each
label stays with its own target stimulus. A null hit still happens when the random source holds
the labelled value, which is the chance level the observed IIA must beat. The random-subspace
null (``null_draw = "subspaces"``) asks instead whether *training* the subspace mattered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from simbench.seeds import rng

#: random stream tag of the shuffled-source permutations
SHUFFLE_STREAM = 0x5F1
#: how a shuffled-counterfactual null is described on the Score
SHUFFLED_METHOD = ("{n} re-pairings of held-out interventions with the source state of another "
                   "intervention of the same direction (trained alignment kept, labels kept; "
                   "seed {seed}), IIA pooled over {dirs}")


def shuffled_source_null(engine: Any, directions: Sequence[tuple[int, int]], n: int, seed: int
                         ) -> list[float]:
    """IIA of ``engine``'s current alignment over ``directions`` for ``n`` re-pairings of each
    held-out intervention with another intervention's source state (mean trial IIA over the
    directions, as the scores pool them). Seeded; the held-out data are restored afterwards."""
    import torch

    gen = rng(seed, SHUFFLE_STREAM)
    data = engine.data["test"]
    originals = {d: data[d] for d in directions if d in data}
    out: list[float] = []
    try:
        for _ in range(int(n)):
            for d, orig in originals.items():
                perm = torch.as_tensor(gen.permutation(len(orig.src_idx)),
                                       device=orig.src_idx.device)
                data[d] = dataclasses.replace(orig, src_idx=orig.src_idx[perm],
                                              spos=orig.spos[perm])
            results = engine.evaluate("test")
            scored = [d for d in originals if d in results]
            out.append(float(np.mean([results[d]["trial"] for d in scored])))
    finally:
        data.update(originals)
    return out


def shuffled_null_result(observed: float, samples: Sequence[float], *, seed: int,
                         directions: Sequence[tuple[int, int]], names: Sequence[str]) -> Any:
    """The :class:`~simbench.calibration.permutation.NullResult` of :func:`shuffled_source_null`
    draws, described for the Score."""
    from simbench.calibration.permutation import NullResult

    dirs = ", ".join(f"{names[s]}->{names[t]}" for s, t in directions)
    return NullResult.from_samples(observed, samples, SHUFFLED_METHOD.format(
        n=len(samples), seed=seed, dirs=dirs))


#: untrained random subspace ``j`` of a null for system ``i`` is drawn with seed
#: ``seed + NULL_SEED_STRIDE * (j + 1) + i`` (apart from the control's ``seed + i``)
NULL_SEED_STRIDE = 100_003


def random_subspace_null(engine: Any, widths: Sequence[int], k: int, n: int, seed: int,
                         directions: Sequence[tuple[int, int]]) -> list[float]:
    """``n`` pooled test IIAs of ``engine`` over ``directions`` with every system's subspace
    replaced by an untrained random one of size ``k`` (the map is left holding the last)."""
    from simbench.interventions.subspace import random_subspace
    from simbench.stats import pooled_iia

    out = []
    for j in range(n):
        for i, width in enumerate(widths):
            sub = random_subspace(width, k, seed + NULL_SEED_STRIDE * (j + 1) + i)
            engine.imap.fix(i, sub.to(engine.cfg.device))
        out.append(pooled_iia(engine.evaluate("test"), directions)[0])
    return out


def random_subspace_null_result(observed: float, samples: Sequence[float], *, k: int, seed: int,
                                what: str = "counterfactuals") -> Any:
    """The :class:`~simbench.calibration.permutation.NullResult` of :func:`random_subspace_null`
    draws, described for the Score (``what`` the held-out test items are called)."""
    from simbench.calibration.permutation import NullResult

    how = (f"{len(samples)} sets of untrained random subspaces of k = {k} (seeds {seed} + "
           f"{NULL_SEED_STRIDE} x draw + system), IIA on the same held-out {what}")
    return NullResult.from_samples(observed, samples, how)


__all__ = ["NULL_SEED_STRIDE", "SHUFFLED_METHOD", "random_subspace_null",
           "random_subspace_null_result", "shuffled_null_result", "shuffled_source_null"]
