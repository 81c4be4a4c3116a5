"""Seeded random streams: one independent, reproducible generator per purpose.

Every random draw in simbench comes from ``rng(seed, purpose, ...)``: the user's seed and a
fixed tag naming what the draw is for (a bootstrap, a permutation null, a shuffle), so changing
one parameter never reshuffles an unrelated draw and the same seed gives the same stream on
every machine. Tags are module constants next to their use. Pure numpy.
"""

from __future__ import annotations

import numpy as np


def stream(seed: int, purpose: int, *more: int) -> np.random.SeedSequence:
    """The seed sequence of one purpose's stream (``more``: further keys, e.g. a size)."""
    return np.random.SeedSequence([int(seed), purpose, *(int(m) for m in more)])


def rng(seed: int, purpose: int, *more: int) -> np.random.Generator:
    """A generator for one purpose, derived from the user's seed (same seed, same stream)."""
    return np.random.default_rng(stream(seed, purpose, *more))


__all__ = ["rng", "stream"]
