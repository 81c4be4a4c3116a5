"""Arithmetic: a running sum over a few additions and subtractions, written out step by step.

Sequence: ``BOS n_ops v0 op a = v1 , op a = v2 , ... op a = v_n EOS`` with values 0..20, ops
``+``/``-`` and operands a >= 1 chosen so that every result stays in 0..20 (``n_ops`` is 1..4,
so sequences are at most 23 tokens).

Causal variables (their value after each token):

- ``cumu_val``: the running value: ``v0`` after ``v0``; ``v_i`` after each result ``v_i``;
  unchanged by ``op``, ``a``, ``=`` and ``,``. Undefined (-1) on ``BOS`` and ``n_ops``.
- ``rem_ops``: the number of results still to write: ``n_ops`` after the ``n_ops`` token,
  lowered by one at each result. Undefined (-1) on ``BOS``.

Responses (positions the causal model determines, in the response mask): each result ``v_i``
(i >= 1), each ``,`` and the final ``EOS`` (``,`` when ``rem_ops > 0`` after a result, ``EOS``
when it is 0). Inputs, teacher-forced when generating: ``n_ops``, ``v0``, every ``op``, operand
``a`` and ``=``. The "count" that :meth:`sample`'s ``counts``/``held_out`` refer to is ``v0``
(held-out starting values 4, 9, 14, 17).

Intervenable positions: from ``v0`` up to the last result (``v0``, ops, operands, ``=``, results
and commas); never ``BOS``, ``n_ops``, ``EOS`` or padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from simbench.errors import TaskError
from simbench.tasks.base import (
    BOS,
    COMMA,
    EOS,
    EQUALS,
    MINUS,
    NUM0,
    PAD,
    PLUS,
    UNDEFINED,
    VOCAB,
    Stimuli,
    Task,
    pad_sequences,
)

MAX_VAL = 20
# parser states: what the grammar expects next
_N_OPS, _V0, _AFTER_VAL, _OP, _ARG, _EQ, _RESULT, _DONE = range(8)


def _is_num(tok: int) -> bool:
    return NUM0 <= tok <= NUM0 + MAX_VAL


def _room(c: int, op: int) -> int:
    """The largest operand ``op`` takes from ``c`` with the result in 0..20."""
    return MAX_VAL - c if op == PLUS else c


def _apply(c: int, op: int, a: int) -> int:
    """Saturating arithmetic on 0..20 (saturation happens only in counterfactuals whose pending
    operation no longer fits the new value)."""
    v = c + a if op == PLUS else c - a
    return min(max(v, 0), MAX_VAL)


def _fit(c: int, op: int, a: int) -> tuple[int, int]:
    """Keep a future (op, a) when it stays in range from c; else flip the op; else clamp a."""
    if a <= _room(c, op):
        return op, a
    other = MINUS if op == PLUS else PLUS
    if a <= _room(c, other):
        return other, a
    best = max((PLUS, MINUS), key=lambda o: _room(c, o))
    return best, max(1, min(a, _room(c, best)))


def _draw_op(c: int, rng: np.random.Generator) -> tuple[int, int]:
    """A uniformly random op whose operand a >= 1 can keep the result in 0..20."""
    op = PLUS if rng.random() < 0.5 else MINUS
    if _room(c, op) < 1:
        op = MINUS if op == PLUS else PLUS
    return op, int(rng.integers(1, _room(c, op) + 1))


class Arithmetic(Task):
    """Running value of a chain of additions and subtractions (see the module docstring)."""

    name = "arithmetic"
    short_name = "arith"
    #: the built-in vocabulary (the grammar below reads its number, operator and special ids)
    vocab: ClassVar[tuple[str, ...]] = VOCAB
    title = "Arithmetic"
    description = "BOS n_ops v0 (op a = v ,)* EOS; values 0..20, ops + and -"
    variables: ClassVar[tuple[str, ...]] = ("cumu_val", "rem_ops")
    all_counts: ClassVar[tuple[int, ...]] = tuple(range(MAX_VAL + 1))
    max_ops: ClassVar[int] = 4
    max_len = 5 * 4 + 3

    # ---- parsing --------------------------------------------------------------------------
    def _parse(self, tokens: Any) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Run the grammar: (tokens, variables, state-before-each-token [n, T])."""
        arr = self.check_tokens(tokens)
        n, width = arr.shape
        cumu, rem = np.full((2, n, width), UNDEFINED, dtype=np.int64)
        before = np.full((n, width), _DONE, dtype=np.int64)
        for i in range(n):
            state, c, r = None, UNDEFINED, UNDEFINED
            for t in range(width):
                tok = int(arr[i, t])
                if tok == PAD:  # (in a truncated sequence the rest stays undefined)
                    break
                before[i, t] = -1 if state is None else state
                if state is None:
                    ok, state = tok == BOS, _N_OPS
                elif state == _N_OPS:
                    ok, r, state = _is_num(tok) and tok > NUM0, tok - NUM0, _V0
                elif state == _V0:
                    ok, c, state = _is_num(tok), tok - NUM0, _OP
                elif state == _AFTER_VAL:
                    ok, state = tok in (COMMA, EOS), _OP if tok == COMMA else _DONE
                elif state == _OP:
                    ok, state = tok in (PLUS, MINUS), _ARG
                elif state == _ARG:
                    ok, state = _is_num(tok), _EQ
                elif state == _EQ:
                    ok, state = tok == EQUALS, _RESULT
                elif state == _RESULT:
                    ok, c, r, state = _is_num(tok), tok - NUM0, max(r - 1, 0), _AFTER_VAL
                else:
                    ok = False
                if not ok:
                    raise TaskError(
                        f"token {self.vocab[tok]!r} at sequence {i}, position {t} does not fit the "
                        "arithmetic grammar", field="tokens",
                        fix="sequences read BOS n_ops v0 op a = v1 , op a = v2 ... EOS")
                cumu[i, t] = c if c >= 0 else UNDEFINED
                rem[i, t] = r
        return arr, {"cumu_val": cumu, "rem_ops": rem}, before

    def causal_model(self, tokens: Any) -> dict[str, np.ndarray]:
        return self._parse(tokens)[1]

    def response_mask(self, tokens: Any) -> np.ndarray:
        arr, _, before = self._parse(tokens)
        return ((before == _RESULT) | (before == _AFTER_VAL)) & (arr != PAD)

    def intervenable_positions(self, tokens: Any) -> np.ndarray:
        arr, variables, _ = self._parse(tokens)
        return (variables["cumu_val"] != UNDEFINED) & (arr != EOS) & (arr != PAD)

    def sample(self, n: int, seed: int, *, counts: Iterable[int] | str | None = None,
               held_out: bool = False) -> Stimuli:
        rng = np.random.default_rng(seed)
        pool = self.resolve_counts(counts, held_out)
        v0s = rng.choice(pool, size=n)
        n_ops = rng.integers(1, self.max_ops + 1, size=n)
        seqs = []
        for v0, k in zip(v0s.tolist(), n_ops.tolist()):
            seq, c = [BOS, NUM0 + k, NUM0 + v0], v0
            for j in range(k):
                op, a = _draw_op(c, rng)
                c = _apply(c, op, a)
                seq += [op, NUM0 + a, EQUALS, NUM0 + c, COMMA if j < k - 1 else EOS]
            seqs.append(seq)
        tokens = pad_sequences(seqs)
        return self._stimuli(tokens, v0s.astype(np.int64), np.full(n, 2, dtype=np.int64), seed)

    def counterfactual(self, target_tokens: Any, target_pos: Any, source_tokens: Any = None,
                       source_pos: Any = None, variable: str | Sequence[str] = "cumu_val", *,
                       source_value: Any = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Counterfactual sequences (see :meth:`Task.counterfactual`).

        From the new (cumu_val c, rem_ops r) at the target position the program runs on: the
        target's own later operations are reused (as inputs, not in the mask), each flipped or
        clamped when it would leave 0..20 from the new value; when ``r`` asks for more
        operations than the target has, extra ones are drawn from ``seed``. An operation already
        begun at the target position (its op or operand is in the prefix) is completed, so
        ``r`` counts at least 1 there, and its result saturates at 0 or 20 if needed. Results,
        commas and EOS are in the mask.
        """
        tgt, tpos, _, new = self._resolve_values(target_tokens, target_pos, source_tokens,
                                                   source_pos, variable, source_value)
        _, _, before = self._parse(tgt)
        rng = np.random.default_rng(seed)
        seqs, masks = [], []
        for i in range(tgt.shape[0]):
            t = int(tpos[i])
            row = tgt[i].tolist()
            c = min(max(int(new["cumu_val"][i]), 0), MAX_VAL)
            r = max(int(new["rem_ops"][i]), 0)
            after = int(before[i, t + 1]) if t + 1 < len(row) and row[t + 1] != PAD else _DONE
            state = _AFTER_VAL if after == _DONE else after
            # the target's own later operations, as (op, a) pairs
            future = [(row[k], row[k + 1] - NUM0) for k in range(t + 1, len(row) - 1)
                      if row[k] in (PLUS, MINUS) and before[i, k] == _OP]
            pend_op = pend_a = None
            if state == _ARG:
                pend_op = row[t]
                if t + 1 < len(row) and _is_num(row[t + 1]):
                    pend_a = row[t + 1] - NUM0
            elif state in (_EQ, _RESULT):
                k = t if state == _EQ else t - 1
                pend_op, pend_a = row[k - 1], row[k] - NUM0
            if state in (_OP, _ARG, _EQ, _RESULT):
                r = max(r, 1)
            out, mask = row[: t + 1], [False] * (t + 1)

            def emit(toks: list[int], flag: bool, out: list = out, mask: list = mask) -> None:
                out.extend(toks)
                mask.extend([flag] * len(toks))

            if state == _AFTER_VAL:
                emit([COMMA if r > 0 else EOS], True)
                state = _OP if r > 0 else _DONE
            while state != _DONE:
                if state == _OP:
                    op, a = future.pop(0) if future else _draw_op(c, rng)
                    op, a = _fit(c, op, a)
                    emit([op, NUM0 + a, EQUALS], False)
                elif state == _ARG:
                    op = pend_op
                    a = pend_a if pend_a is not None else _draw_op(c, rng)[1]
                    room = _room(c, op)
                    a = a if a <= room or room < 1 else max(1, min(a, room))
                    emit([NUM0 + a, EQUALS], False)
                elif state == _EQ:
                    op, a = pend_op, pend_a
                    emit([EQUALS], False)
                else:  # _RESULT
                    op, a = pend_op, pend_a
                c = _apply(c, op, a)
                r -= 1
                emit([NUM0 + c, COMMA if r > 0 else EOS], True)
                state = _OP if r > 0 else _DONE
            seqs.append(out)
            masks.append(mask)
        cf = pad_sequences(seqs)
        return cf, pad_sequences(masks, cf.shape[1], pad=0).astype(bool)
