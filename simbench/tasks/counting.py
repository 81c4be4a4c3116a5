"""The counting tasks: their shared causal model and the four built-in ones (Multi-Object,
Same-Object, Modulo, Rounding), which differ only in their demo tokens and f(n).

Sequences are ``BOS, D x n, T, R x f(n), EOS``. Causal variables:

- ``count``: in the demo phase, the number of demo tokens seen so far; the trigger ``T`` sets it
  to ``f(count)``; afterwards, the number of response tokens still to emit (each response lowers
  it by one, and ``EOS`` comes when it reaches 0). After ``BOS`` it is 0.
- ``phase``: 0 in the demo phase (``BOS`` and demo tokens), 1 from the trigger on.

Response positions (determined by the causal model): every token after ``T`` (the responses and
``EOS``). Intervenable positions: demo and response tokens (never padding, ``BOS``, ``EOS``, ``T``).
The built-in counting tasks use the shared vocabulary; a subclass may declare its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from simbench.errors import TaskError
from simbench.tasks.base import DEMO, RESP, SAME, UNDEFINED, Stimuli, Task


class CountingTask(Task):
    """A numeric-equivalence task: reproduce f(n) responses after seeing n demo tokens.

    Subclasses set ``demo_tokens``, ``response_token`` (ids, or token strings of ``vocab``) and
    :meth:`f`; ``trigger_token`` names the trigger. With a vocabulary of its own the task needs
    ``bos_token`` and ``eos_token`` in it too.
    """

    variables: ClassVar[tuple[str, ...]] = ("count", "phase")
    demo_tokens: ClassVar[tuple[int | str, ...]] = ()
    response_token: ClassVar[int | str] = 0
    trigger_token: ClassVar[str] = "T"

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        """The number of responses owed for ``n`` demo tokens."""
        raise NotImplementedError

    def _id(self, token: int | str) -> int:
        return self.token_id(token) if isinstance(token, str) else int(token)

    @property
    def demo_ids(self) -> np.ndarray:
        """The demo tokens' ids."""
        return np.array([self._id(t) for t in self.demo_tokens], dtype=np.int64)

    @property
    def response_id(self) -> int:
        """The response token's id."""
        return self._id(self.response_token)

    @property
    def trigger(self) -> int:
        """The trigger's id."""
        return self.token_id(self.trigger_token)

    def _specials(self) -> tuple[int, int, int, int]:
        """(pad, bos, eos, trigger) ids; a counting task needs all four."""
        bos, eos = self.bos, self.eos
        if bos is None or eos is None:
            raise TaskError(f"counting task '{self.name}' needs a bos_token and an eos_token",
                            field="bos_token" if bos is None else "eos_token",
                            fix="name them in the task's vocabulary")
        return self.pad, bos, eos, self.trigger

    def _items(self) -> np.ndarray:
        return np.array(sorted(set(self.demo_ids.tolist()) | {self.response_id}))

    def _check_grammar(self, arr: np.ndarray) -> None:
        allowed = np.concatenate([self._specials(), self._items()])
        bad = ~np.isin(arr, allowed)
        if bad.any():
            i, t = np.argwhere(bad)[0]
            raise TaskError(
                f"token {self.vocab[arr[i, t]]!r} (sequence {int(i)}, position {int(t)}) is not "
                f"used by {self.name}", field="tokens",
                fix=f"{self.name} uses: " + " ".join(self.vocab[int(t)] for t in allowed[1:]))

    def sample(self, n: int, seed: int, *, counts: Iterable[int] | str | None = None,
               held_out: bool = False) -> Stimuli:
        pad, bos, eos, trigger = self._specials()
        rng = np.random.default_rng(seed)
        pool = self.resolve_counts(counts, held_out)
        ns = rng.choice(pool, size=n)
        fs = self.f(ns)
        width = int((ns + fs).max()) + 3 if n else 3
        demo = rng.choice(self.demo_ids, size=(n, width))
        j = np.arange(width)[None, :]
        nn, ff = ns[:, None], fs[:, None]
        tokens = np.where(
            j == 0, bos, np.where(
                j <= nn, demo, np.where(
                    j == nn + 1, trigger, np.where(
                        j <= nn + 1 + ff, self.response_id,
                        np.where(j == nn + ff + 2, eos, pad))))).astype(np.int64)
        return self._stimuli(tokens, ns.astype(np.int64), ns.astype(np.int64) + 1, seed)

    # ---- causal model ---------------------------------------------------------------------
    def causal_model(self, tokens: Any) -> dict[str, np.ndarray]:
        arr = self.check_tokens(tokens)
        self._check_grammar(arr)
        pad, bos_id, _, trigger = self._specials()
        n, width = arr.shape
        count, phase = np.zeros((2, n), dtype=np.int64)
        out_c, out_p = np.full((2, n, width), UNDEFINED, dtype=np.int64)
        is_items = np.isin(arr, self._items())  # once, not per position
        for t in range(width):
            tok = arr[:, t]
            is_item = is_items[:, t]
            bos = tok == bos_id
            count[bos] = 0
            phase[bos] = 0
            up = is_item & (phase == 0)
            down = is_item & (phase == 1)
            count[up] += 1
            count[down] = np.maximum(count[down] - 1, 0)
            trig = (tok == trigger) & (phase == 0)
            count[trig] = self.f(count[trig])
            phase[trig] = 1
            real = tok != pad
            out_c[real, t] = count[real]
            out_p[real, t] = phase[real]
        return {"count": out_c, "phase": out_p}

    def response_mask(self, tokens: Any) -> np.ndarray:
        arr = self.check_tokens(tokens)
        phase = self.causal_model(arr)["phase"]
        before = np.zeros_like(phase)
        before[:, 1:] = phase[:, :-1]
        return (before == 1) & (arr != self.pad)

    def intervenable_positions(self, tokens: Any) -> np.ndarray:
        arr = self.check_tokens(tokens)
        return np.isin(arr, self._items())

    def counterfactual(self, target_tokens: Any, target_pos: Any, source_tokens: Any = None,
                       source_pos: Any = None, variable: str | Sequence[str] = "count", *,
                       source_value: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Counterfactual sequences (see :meth:`Task.counterfactual`).

        With the new (count c, phase p) at the target position:

        - p = 1 (response phase): the continuation is ``R x c, EOS``.
        - p = 0 and the target is still in its demo phase: its remaining demo tokens and ``T``
          follow unchanged (teacher-forced inputs, not in the mask); the trigger sets
          count := f(c + remaining), then ``R x f(c + remaining), EOS``.
        - p = 0 but the target is already past its trigger (only when ``phase`` is swapped): no
          demo inputs remain, so ``T`` follows at once (an input, not in the mask), then
          ``R x f(c), EOS``.

        Swapping ``phase`` alone can produce sequences off the task's grammar (responses without
        a trigger); they are still well-defined continuations of the causal model.
        """
        tgt, tpos, cur, new = self._resolve_values(target_tokens, target_pos, source_tokens,
                                                   source_pos, variable, source_value)
        _, _, eos, trigger = self._specials()
        # all rows at once: each is prefix (target up to tpos), then ``inputs`` (teacher-forced,
        # not in the mask: the rest of the demo and T, or T alone, or nothing in the response
        # phase), then ``owed`` responses and EOS (in the mask)
        n = tgt.shape[0]
        count = np.maximum(np.asarray(new["count"], dtype=np.int64), 0)
        responding = np.asarray(new["phase"]) == 1
        is_trig = tgt == trigger
        trig = np.where(is_trig.any(1), is_trig.argmax(1), -1)
        in_demo = ~responding & (np.asarray(cur["phase"]) == 0) & (trig > tpos)
        inputs = np.where(responding, 0, np.where(in_demo, trig - tpos, 1))
        owed = np.where(responding, count,
                        np.asarray(self.f(np.where(in_demo, count + inputs - 1, count)),
                                   dtype=np.int64))
        length = tpos + 1 + inputs + owed + 1
        width = int(length.max()) if n else 0
        j = np.arange(width)[None, :]
        first_out = (tpos + inputs)[:, None]  # the last input position
        row_tok = np.take_along_axis(tgt, np.minimum(j, tgt.shape[1] - 1).repeat(n, 0), 1)
        cf = np.where(j <= tpos[:, None], row_tok,
                      np.where(j <= first_out, np.where(in_demo[:, None], row_tok, trigger),
                               np.where(j <= first_out + owed[:, None], self.response_id,
                                        np.where(j == first_out + owed[:, None] + 1, eos,
                                                 self.pad)))).astype(np.int64)
        m = (j > first_out) & (j <= first_out + owed[:, None] + 1)
        return cf, m


class MultiObject(CountingTask):
    """``BOS, D x n, T, R x n, EOS``; demo tokens uniform on {D0, D1, D2}; f(n) = n."""

    name = "multi_object"
    short_name = "multi"
    title = "Multi-Object"
    description = "n demo tokens from {D0, D1, D2}, then n responses R"
    demo_tokens = DEMO
    response_token = RESP
    max_len = 43

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        return np.asarray(n, dtype=np.int64)


class SameObject(CountingTask):
    """``BOS, C x n, T, C x n, EOS``; f(n) = n. The phase is visible only through T."""

    name = "same_object"
    short_name = "same"
    title = "Same-Object"
    description = "n demo tokens C, then n responses C"
    demo_tokens = (SAME,)
    response_token = SAME
    max_len = 43
    f = staticmethod(MultiObject.f)


# Modulo and Rounding: GRUs memorise n -> f(n) per count (0.74 and 0.0-0.26 trial accuracy on
# held-out counts after 4000 steps), so the zoo trains them on every count.
class Modulo(CountingTask):
    """``BOS, D x n, T, R x (n mod 4), EOS`` (n = 8 gives ``T EOS``: no responses)."""

    name = "modulo"
    train_counts = "all"
    title = "Modulo"
    description = "n demo tokens from {D0, D1, D2}, then n mod 4 responses R"
    demo_tokens = DEMO
    response_token = RESP
    max_len = 26

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        return np.asarray(n, dtype=np.int64) % 4


class Rounding(CountingTask):
    """``BOS, D x n, T, R x round3(n), EOS``; round3(n) = 3 * round(n / 3) (no ties exist:
    n = 5 gives 6, n = 4 gives 3, n = 1 gives 0, n = 20 gives 21)."""

    name = "rounding"
    train_counts = "all"
    title = "Rounding"
    description = "n demo tokens from {D0, D1, D2}, then n rounded to a multiple of 3 responses R"
    demo_tokens = DEMO
    response_token = RESP
    max_len = 44

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        return 3 * ((np.asarray(n, dtype=np.int64) + 1) // 3)
