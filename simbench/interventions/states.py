"""Counterfactual latents of a recording-only system: recorded states matched by their variables.

The *counterfactual latent* of an intervention into a recording-only system B is a recorded
latent of B whose causal variables all equal the counterfactual ones
(:func:`counterfactual_states`); :class:`StateIndex` draws one (seeded) and says what is
missing when the recording has no such state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

from simbench.errors import RecordingError
from simbench.interventions.data import Pool


def counterfactual_states(source: Pool, target: Pool, src_idx: np.ndarray, spos: np.ndarray,
                          tgt_idx: np.ndarray, tpos: np.ndarray,
                          carry: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Every causal variable of the target task right after the intervention.

    The target's own values at the patched step, with its aligned variable (and ``carry``)
    set to the source's values there.
    """
    tv = target.stimuli.variables
    out = {k: v[tgt_idx, tpos].copy() for k, v in tv.items()}
    for sv, tvar in zip(source.variables, target.variables):
        out[tvar] = source.joint[sv][src_idx, spos]
    for name in carry:
        out[name] = source.stimuli.variables[name][src_idx, spos]
    return out


class StateIndex:
    """Recorded states of one split of a party, looked up by their causal variables.

    Candidate states are valid steps with every variable defined, except steps that read EOS
    (the causal model has finished there).
    """

    def __init__(self, pool: Pool, label: str = "") -> None:
        self.pool, self.label = pool, label
        self.names = tuple(pool.task.variables)
        var = pool.stimuli.variables
        task = pool.task
        ok = pool.tokens != task.pad
        if task.eos is not None:
            ok &= pool.tokens != task.eos
        for name in self.names:
            ok &= var[name] >= 0
        self.rows, self.pos = np.nonzero(ok)
        self.base = max(int(max(var[n].max() for n in self.names)) + 2, 2)
        keys = self._key({n: var[n][self.rows, self.pos] for n in self.names})
        order = np.argsort(keys, kind="stable")
        self.keys, self.rows, self.pos = keys[order], self.rows[order], self.pos[order]

    def _key(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        key = np.zeros(len(next(iter(values.values()))), dtype=np.int64)
        for name in self.names:
            v = np.asarray(values[name], dtype=np.int64)
            key = key * self.base + np.where((v >= 0) & (v < self.base), v + 1, 0)
        return key

    def match(self, states: Mapping[str, np.ndarray],
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A random recorded (stimulus, step) per requested state; raises when one is absent."""
        keys = self._key(states)
        lo = np.searchsorted(self.keys, keys, side="left")
        hi = np.searchsorted(self.keys, keys, side="right")
        found = hi > lo
        if not found.all():
            miss = ~found
            combos: dict[tuple[int, ...], int] = {}
            for i in np.flatnonzero(miss):
                combo = tuple(int(states[n][i]) for n in self.names)
                combos[combo] = combos.get(combo, 0) + 1
            listed = "; ".join(
                ", ".join(f"{n}={v}" for n, v in zip(self.names, c)) + f" ({k} counterfactuals)"
                for c, k in sorted(combos.items(), key=lambda kv: -kv[1])[:6])
            n_states = len(np.unique(self.keys))
            raise RecordingError(
                f"{int(miss.sum())} of {len(keys)} counterfactuals need a recorded state that "
                f"the {self.label or 'recording'} split does not have ({len(combos)} missing "
                f"states: {listed}); it has {len(self.pool)} stimuli with {len(self.keys)} "
                f"usable steps over {n_states} distinct states",
                field="stimulus", fix="record more stimuli so that every state of the task "
                "(e.g. every count in both phases) occurs in every split; about 30 stimuli "
                "per count is enough")
        pick = lo + (rng.random(len(keys)) * (hi - lo)).astype(np.int64)
        return self.rows[pick], self.pos[pick]


@dataclasses.dataclass
class Match:
    """For each intervention of one direction and split: the matched recorded latent."""

    idx: Tensor
    pos: Tensor
