"""Two-alternative evidence accumulation: a complete simbench task plugin in one module.

A trial is ``fix``, six time bins that each show a flash on the left (``L``), on the right
(``R``) or nothing (``-``), the cue ``go``, then the answer: the side that flashed more often
(``left``, ``right``, or ``tie``) and ``done``::

    fix - L R - L -  go left done

The causal model keeps two counters, ``left`` and ``right`` (flashes seen so far on each side),
and ``diff`` = right - left + 4. The shift keeps ``diff`` non-negative: in simbench a causal
variable's value -1 means "undefined", so a signed quantity is stored with an offset
(0..8, 4 = balanced). The answer reads ``diff`` alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

import simbench
from simbench.tasks.base import UNDEFINED, Stimuli, Task, pad_sequences

N_BINS = 6  # stimulus bins per trial
BALANCED = 4  # diff when both sides flashed equally often (the most flashes a trial has)


class Evidence(Task):
    """Count flashes on each side over six bins, then report the side with more."""

    name = "evidence"
    title = "Evidence accumulation"
    description = "fix, 6 bins of L/R/- flashes, go, left|right|tie, done"
    variables = ("left", "right", "diff")
    vocab = ("<pad>", "fix", "-", "L", "R", "go", "left", "right", "tie", "done")
    pad_token = "<pad>"
    bos_token = "fix"
    eos_token = "done"
    token_aliases: ClassVar[dict[str, str]] = {}
    # a trial's condition ("count" in simbench's sampling API): how many bins flash
    all_counts = (1, 2, 3, 4)
    held_out_counts = (3,)  # networks never train on 3-flash trials
    max_len = N_BINS + 4

    # ---- stimuli ---------------------------------------------------------------------------
    def sample(self, n: int, seed: int, *, counts: Iterable[int] | str | None = None,
               held_out: bool = False) -> Stimuli:
        rng = np.random.default_rng(seed)
        flashes = rng.choice(self.resolve_counts(counts, held_out), size=n)
        # which bins flash: the first `flashes` of a random order of the bins
        order = np.argsort(rng.random((n, N_BINS)), axis=1)
        lit = np.zeros((n, N_BINS), dtype=bool)
        np.put_along_axis(lit, order, np.arange(N_BINS)[None, :] < flashes[:, None], axis=1)
        side = np.where(rng.random((n, N_BINS)) < 0.5, self.token_id("L"), self.token_id("R"))
        bins = np.where(lit, side, self.token_id("-"))
        head = np.full((n, 1), self.token_id("fix"))
        cue = np.full((n, 1), self.token_id("go"))
        # the answer and `done` are placeholders here: the causal model fills them in
        tokens = np.concatenate([head, bins, cue, cue, cue], axis=1).astype(np.int64)
        tokens[:, -2] = self._answer(self._count(bins, "R") - self._count(bins, "L") + BALANCED)
        tokens[:, -1] = self.eos
        go = np.full(n, N_BINS + 1, dtype=np.int64)
        return self._stimuli(tokens, flashes.astype(np.int64), go, seed)

    def _count(self, tokens: np.ndarray, side: str) -> np.ndarray:
        return (tokens == self.token_id(side)).sum(axis=-1)

    def _answer(self, diff: np.ndarray) -> np.ndarray:
        """The answer's token id for a final ``diff``."""
        ids = [self.token_id(t) for t in ("left", "tie", "right")]
        return np.asarray(ids)[np.sign(np.asarray(diff) - BALANCED) + 1]

    # ---- causal model ----------------------------------------------------------------------
    def causal_model(self, tokens: Any) -> dict[str, np.ndarray]:
        arr = self.check_tokens(tokens)
        real = arr != self.pad
        left = np.cumsum(arr == self.token_id("L"), axis=1)
        right = np.cumsum(arr == self.token_id("R"), axis=1)
        out = {"left": left, "right": right, "diff": right - left + BALANCED}
        return {k: np.where(real, v, UNDEFINED).astype(np.int64) for k, v in out.items()}

    def response_mask(self, tokens: Any) -> np.ndarray:
        arr = self.check_tokens(tokens)
        after_go = np.cumsum(arr == self.token_id("go"), axis=1) - (arr == self.token_id("go"))
        return (after_go > 0) & (arr != self.pad)

    def intervenable_positions(self, tokens: Any) -> np.ndarray:
        arr = self.check_tokens(tokens)
        bins = np.isin(arr, [self.token_id(t) for t in ("-", "L", "R")])
        seen_go = np.cumsum(arr == self.token_id("go"), axis=1) > 0
        return bins & ~seen_go

    def counterfactual(self, target_tokens: Any, target_pos: Any, source_tokens: Any = None,
                       source_pos: Any = None, variable: str | Sequence[str] = "diff", *,
                       source_value: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Set variables at ``target_pos``, replay the target's remaining bins, then answer.

        When ``diff`` is set it decides the answer; otherwise the answer follows from the
        (possibly set) ``left`` and ``right``. The remaining bins and ``go`` are inputs
        (not in the mask); the answer and ``done`` are determined (in the mask).
        """
        tgt, tpos, _cur, new = self._resolve_values(target_tokens, target_pos, source_tokens,
                                                    source_pos, variable, source_value)
        names = {variable} if isinstance(variable, str) else set(variable)
        diff = new["diff"] if "diff" in names else new["right"] - new["left"] + BALANCED
        seqs, masks = [], []
        for i in range(len(tgt)):
            row, t = tgt[i], int(tpos[i])
            go = int(np.flatnonzero(row == self.token_id("go"))[0])
            rest = row[t + 1: go + 1]  # remaining bins and the cue, as the animal saw them
            final = diff[i] + self._count(rest, "R") - self._count(rest, "L")
            seqs.append([*row[: go + 1], int(self._answer(final)), self.eos])
            masks.append([False] * (go + 1) + [True, True])
        cf = pad_sequences(seqs, pad=self.pad)
        mask = np.zeros(cf.shape, dtype=bool)
        for i, m in enumerate(masks):
            mask[i, : len(m)] = m
        return cf, mask


@simbench.hookimpl
def simbench_tasks() -> list[type[Task]]:
    return [Evidence]
