"""What a task's responses can be: which token each place of a response holds in the task's own
sequences, so a counterfactual whose determined tokens the task never produces is caught.

A counterfactual's determined tokens are the label a network is scored against; one that sets a
value the task cannot reach (a count beyond the largest) and writes it anyway, clipped or mapped
to some token, is a wrong label that fails nowhere. Places are counted from a response's end (the
last determined token is place 0); a counterfactual is *producible* when every determined token
is one the task's own samples hold at that place, which also bounds its length. Numpy only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from typing import Any

import numpy as np

#: stimuli sampled (every condition) to learn which tokens each response place holds
TABLE_N = 1024
TABLE_SEED = 0x5E5


@dataclasses.dataclass(frozen=True)
class ResponseTable:
    """``allowed[k, t]``: token id ``t`` ends up ``k`` places before a response's end."""

    allowed: np.ndarray  # bool [K, V]
    max_determined: int

    def producible(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """bool [n]: each sequence's determined tokens are ones the task produces there."""
        return ~self.offending(tokens, mask).any(1)

    def offending(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """bool [n, T]: determined tokens no response of the task holds at that place."""
        mask = np.asarray(mask, dtype=bool)
        bad = np.zeros(mask.shape, dtype=bool)
        r, c = np.nonzero(mask)
        o = places_from_end(mask)[r, c]
        tok = np.asarray(tokens)[r, c]
        k, v = self.allowed.shape
        ok = (o < k) & (tok >= 0) & (tok < v)
        ok[ok] = self.allowed[o[ok], tok[ok]]
        bad[r[~ok], c[~ok]] = True
        return bad


def places_from_end(mask: np.ndarray) -> np.ndarray:
    """int [n, T]: the k-th determined position counted from the last one (0), -1 elsewhere."""
    mask = np.asarray(mask, dtype=bool)
    count = np.cumsum(mask[:, ::-1], axis=1)[:, ::-1]
    return np.where(mask, count - 1, -1)


def table_of(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> ResponseTable:
    """The :class:`ResponseTable` of sequences ``tokens`` with determined positions ``mask``."""
    mask = np.asarray(mask, dtype=bool)
    most = int(mask.sum(1).max()) if mask.size else 0
    allowed = np.zeros((max(most, 1), vocab_size), dtype=bool)
    r, c = np.nonzero(mask)
    allowed[places_from_end(mask)[r, c], np.asarray(tokens)[r, c]] = True
    return ResponseTable(allowed, most)


_TABLES: weakref.WeakKeyDictionary[Any, ResponseTable | None] = weakref.WeakKeyDictionary()


def response_table(task: Any, *, n: int = TABLE_N, seed: int = TABLE_SEED
                   ) -> ResponseTable | None:
    """The :class:`ResponseTable` of ``task`` from ``n`` of its own stimuli (every condition,
    held-out ones included), cached per task object; None for a task that cannot sample (a
    behavioural task), whose counterfactuals are then not checked here."""
    try:
        return _TABLES[task]
    except (KeyError, TypeError):
        pass
    try:
        stim = task.sample(n, seed, counts="all")
        table: ResponseTable | None = table_of(stim.tokens, stim.response_mask, len(task.vocab))
    except Exception:  # a behavioural task, or one whose sample fails: checked elsewhere
        table = None
    with contextlib.suppress(TypeError):  # a task that cannot be weakly referenced: no cache
        _TABLES[task] = table
    return table


__all__ = ["ResponseTable", "places_from_end", "response_table", "table_of"]
