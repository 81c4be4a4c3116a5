"""The task contract shared by every task, and the vocabulary the built-in tasks share.

A task is a symbolic program (its *causal model*) over token sequences. It knows how to

- sample stimuli (seeded, with held-out counts kept out of training),
- run its causal model on any token array (the value of every causal variable after every token),
- build counterfactual sequences (set a variable at one position to another run's value and let
  the causal model continue), and
- score generated sequences against those counterfactuals (trial- and token-level).

Everything here is numpy: importing a task never imports torch, so the CLI starts fast.

The vocabulary is the task's (see :class:`Task`): everything that turns ids into strings or
back, pads, or stops generation asks the task (or a model's config, which records the task's
vocabulary size and special ids), never a global table.

The built-in tasks share one vocabulary, :data:`VOCAB` (and the ids ``PAD``, ``BOS``, ``EOS``,
``TRIGGER`` below are *its* ids): every zoo model then has the same input and output space, so a
GRU trained on Modulo and one trained on Multi-Object can be compared (and intervened across)
token for token.

Stimulus ids identify content (:func:`content_id`), so the same tokens get the same id whatever
``n`` or seed drew them; a repeat within one batch gets ``-2``, ``-3``, ... (:func:`unique_ids`).

Conventions used throughout (all arrays are batched, padded on the right with the task's pad
id):

- ``tokens`` int64 [n, T]; position 0 is the task's first token (``BOS`` for the built-ins).
- ``variables[name]`` int64 [n, T]: the variable's value *after* reading the token at that
  position; ``UNDEFINED`` (-1) on padding and where the variable has no value yet.
- ``response_mask`` bool [n, T]: True at positions whose *token* is determined by the causal
  model (responses and ``EOS``). A model predicts the token at position t from its output at
  t - 1, so the loss for position t uses logits[:, t - 1].
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from simbench.errors import TaskError

#: ids of the built-in vocabulary's special tokens (a task's own are ``task.pad`` etc.)
PAD, BOS, EOS, TRIGGER = 0, 1, 2, 3
#: the vocabulary the built-in tasks share (ids are indices; never reorder it: the zoo's
#: checkpoints embed these ids)
VOCAB: tuple[str, ...] = (
    "PAD", "BOS", "EOS", "T", "D0", "D1", "D2", "C", "R",
    *(str(i) for i in range(21)),
    "+", "-", "=", ",",
)
TOKEN_ID: dict[str, int] = {tok: i for i, tok in enumerate(VOCAB)}
DEMO = tuple(TOKEN_ID[t] for t in ("D0", "D1", "D2"))
SAME = TOKEN_ID["C"]
RESP = TOKEN_ID["R"]
NUM0 = TOKEN_ID["0"]  # number k has id NUM0 + k
PLUS, MINUS, EQUALS, COMMA = (TOKEN_ID[t] for t in ("+", "-", "=", ","))
UNDEFINED = -1
HELD_OUT_COUNTS: tuple[int, ...] = (4, 9, 14, 17)
ALL_COUNTS: tuple[int, ...] = tuple(range(1, 21))
ID_HASH_BYTES = 6  # 12 hex digits: collisions need ~16 million distinct sequences to be likely


def content_id(task: str, tokens: Sequence[str]) -> str:
    """The stimulus id of a sequence of token strings (padding excluded): ``{task}-{hash}``.

    The hash is BLAKE2b (6 bytes, hex) of the tokens joined by the unit separator ``\\x1f``, so
    anyone can recompute an id from a recording's ``token`` coordinate.
    """
    digest = hashlib.blake2b("\x1f".join(tokens).encode(), digest_size=ID_HASH_BYTES)
    return f"{task}-{digest.hexdigest()}"


def unique_ids(ids: Iterable[str]) -> np.ndarray:
    """``ids`` with the k-th repeat (k >= 2) of an id suffixed ``-k``, in order of appearance."""
    seen: collections.Counter[str] = collections.Counter()
    out = []
    for i in ids:
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}-{seen[i]}")
    return np.array(out, dtype=str)


@functools.lru_cache(maxsize=256)
def _vocab_index(task: str, vocab: tuple[str, ...]) -> dict[str, int]:
    """token -> id of a task's vocabulary, checked once per (task, vocabulary)."""
    label = f"task '{task}'" if task else "the task"
    if not isinstance(vocab, tuple) or not vocab:
        raise TaskError(f"{label} declares no vocabulary (vocab = {vocab!r})", field="vocab",
                        fix="set vocab to a tuple of token strings on the task class")
    bad = [t for t in vocab if not isinstance(t, str) or not t]
    if bad:
        raise TaskError(f"{label}'s vocabulary holds {bad[:3]!r}, which are not non-empty "
                        "strings", field="vocab", fix="every token is a non-empty string")
    dup = sorted(t for t, count in collections.Counter(vocab).items() if count > 1)
    if dup:
        raise TaskError(f"{label}'s vocabulary repeats {dup[:5]}", field="vocab",
                        fix="list every token once (its id is its index)")
    return {tok: i for i, tok in enumerate(vocab)}


@functools.lru_cache(maxsize=256)
def _distinct_specials(task: str, pad: str | None, bos: str | None, eos: str | None) -> None:
    """Refuse a task whose special tokens share a token: padding would read as the end of a
    sequence (or its start), and generation would stop, or pad, in the wrong place."""
    named = [(a, t) for a, t in (("pad_token", pad), ("bos_token", bos), ("eos_token", eos))
             if t is not None]
    for i, (a, t) in enumerate(named):
        for b, u in named[i + 1:]:
            if t == u:
                raise TaskError(f"task '{task}' declares {a} and {b} as the same token {t!r}",
                                field=b, fix="give each special token its own entry in the "
                                "vocabulary (check a task with `simbench tasks --check NAME`)")


@dataclasses.dataclass
class Stimuli:
    """A batch of task sequences with everything a model or a measure needs about them.

    ``counts`` is the object count n of each sequence (for Arithmetic: the starting value v0),
    ``trigger_pos`` the position of the trigger ``T`` (Arithmetic: the position of ``v0``, after
    which the first response is computed). ``pad`` is the task's pad id.
    """

    task: str
    tokens: np.ndarray
    lengths: np.ndarray
    ids: np.ndarray
    variables: dict[str, np.ndarray]
    response_mask: np.ndarray
    trigger_pos: np.ndarray
    counts: np.ndarray
    pad: int = PAD

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """bool [n, T]: False on padding."""
        return self.tokens != self.pad


def pad_sequences(seqs: Sequence[Sequence[int]], width: int | None = None, *,
                  pad: int = PAD) -> np.ndarray:
    """Right-pad integer sequences with ``pad`` (a task's pad id) into int64 [n, width]."""
    width = max((len(s) for s in seqs), default=0) if width is None else width
    out = np.full((len(seqs), width), pad, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


class Task:
    """Base class of every task (built-in or from a plugin).

    Subclasses set ``name``, ``title``, ``variables`` and implement :meth:`sample`,
    :meth:`causal_model`, :meth:`counterfactual` and :meth:`intervenable_positions`.

    A task with its own tokens sets ``vocab`` (a tuple of distinct strings; a token's id is its
    index) and names its special tokens in it: ``pad_token`` (required: fills sequences on the
    right), ``bos_token`` and ``eos_token`` (``None`` when the task has none; generation stops
    after ``eos``). ``token_aliases`` maps shorthand strings :meth:`encode` accepts to tokens
    (``"D"`` for ``"D0"`` in the built-in vocabulary); an alias never shadows a real token. The
    defaults are the built-in vocabulary and its specials.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    variables: ClassVar[tuple[str, ...]] = ()
    #: False for a behavioural task with no symbolic causal model (its counterfactual is a
    #: system's own behaviour, e.g. a language model's continuation): no sampler, no
    #: causal_model, and the contract check stops after the vocabulary and variables
    symbolic: ClassVar[bool] = True
    vocab: ClassVar[tuple[str, ...]] = VOCAB
    pad_token: ClassVar[str] = "PAD"
    bos_token: ClassVar[str | None] = "BOS"
    eos_token: ClassVar[str | None] = "EOS"
    token_aliases: ClassVar[Mapping[str, str]] = {"D": "D0"}
    held_out_counts: ClassVar[tuple[int, ...]] = HELD_OUT_COUNTS
    all_counts: ClassVar[tuple[int, ...]] = ALL_COUNTS
    #: longest sequence :meth:`sample` can produce (models size nothing on it; it is a hint)
    max_len: ClassVar[int] = 64
    #: the task's part of a zoo id (``multi`` in ``gru_multi_s1``); empty: ``name``
    short_name: ClassVar[str] = ""
    #: counts zoo models train on by default: None = the training counts (held-out counts
    #: excluded), "all" = every count (for tasks whose answers do not interpolate to an unseen
    #: count, so that held-out accuracy is then on fresh sequences)
    train_counts: ClassVar[str | None] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ---- vocabulary -----------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def token_index(self) -> dict[str, int]:
        """token string -> id in this task's vocabulary (checked: distinct non-empty strings)."""
        return _vocab_index(self.name, tuple(self.vocab))

    def token_id(self, token: str) -> int:
        """The id of one token string (or alias); unknown tokens raise :class:`TaskError`."""
        return int(self.token_ids([token])[0])

    def token_ids(self, tokens: Iterable[str]) -> np.ndarray:
        """The ids (int64 [k]) of token strings; unknown ones raise :class:`TaskError` naming
        up to five of them and listing the vocabulary."""
        index = self.token_index
        toks = [t if t in index else self.token_aliases.get(t, t) for t in tokens]
        unknown = list(dict.fromkeys(t for t in toks if t not in index))
        if unknown:
            raise TaskError(f"{len(unknown)} token(s) are not in the {self.name or 'task'} "
                            f"vocabulary: {', '.join(repr(t) for t in unknown[:5])}"
                            + (" ..." if len(unknown) > 5 else ""), field="tokens",
                            fix="use one of: " + " ".join(t for t in self.vocab
                                                          if t != self.pad_token))
        return np.array([index[t] for t in toks], dtype=np.int64)

    def _special(self, attr: str) -> int | None:
        token = getattr(self, attr)
        if token is None:
            return None
        if token not in self.token_index:
            raise TaskError(f"task '{self.name}' declares {attr} = {token!r}, which is not in "
                            "its vocabulary", field=attr,
                            fix=f"name one of its tokens: {' '.join(self.vocab)}")
        _distinct_specials(self.name, self.pad_token, self.bos_token, self.eos_token)
        return self.token_index[token]

    @property
    def pad(self) -> int:
        """The pad id (fills sequences on the right; never a real step)."""
        pad = self._special("pad_token")
        if pad is None:
            raise TaskError(f"task '{self.name}' declares no pad_token", field="pad_token",
                            fix="set pad_token to a token of its vocabulary")
        return pad

    @property
    def bos(self) -> int | None:
        """The begin-of-sequence id, or None when the task has none."""
        return self._special("bos_token")

    @property
    def eos(self) -> int | None:
        """The end-of-sequence id (generation stops after it), or None when the task has none."""
        return self._special("eos_token")

    def encode(self, seqs: str | Sequence[str] | Sequence[Sequence[str] | str]) -> np.ndarray:
        """Token strings to an int64 [n, T] array (padded with the task's pad id).

        Accepts one sequence as a space-separated string (``"BOS D0 T R EOS"``) or a list of
        token strings, or a list of such sequences. Aliases in ``token_aliases`` are accepted
        (``D`` stands for ``D0`` in the built-in vocabulary). Unknown tokens raise
        :class:`TaskError` naming the token.
        """
        if isinstance(seqs, str) or (
            len(seqs) > 0 and all(isinstance(s, str) and " " not in s for s in seqs)
        ):
            seqs = [seqs]  # one sequence: a string, or a flat list of token strings
        rows = (seq.split() if isinstance(seq, str) else seq for seq in seqs)
        return pad_sequences([self.token_ids(row) for row in rows], pad=self.pad)

    def decode(self, tokens: np.ndarray | Sequence[int]) -> list[list[str]]:
        """An int array [n, T] (or one sequence [T]) back to token strings, padding dropped."""
        arr = self.check_tokens(tokens)
        pad = self.pad
        return [[self.vocab[t] for t in row if t != pad] for row in arr]

    def token_strings(self, tokens: Any) -> np.ndarray:
        """Token ids [n, T] as a str array [n, T] of the task's token strings (what a
        recording's ``token`` coordinate holds; padding is the pad token's string)."""
        arr = self.check_tokens(tokens)
        return np.asarray(self.vocab, dtype=str)[arr]

    def stimulus_ids(self, tokens: Any) -> np.ndarray:
        """Content ids of token sequences [n, T] (see :func:`content_id`); a sequence repeated
        within the batch gets ``-2``, ``-3``, ... on its later copies, so ids stay unique."""
        arr = self.check_tokens(tokens)
        vocab, pad = self.vocab, self.pad
        return unique_ids(content_id(self.name, [vocab[t] for t in row if t != pad])
                          for row in arr.tolist())

    def check_tokens(self, tokens: Any) -> np.ndarray:
        """Validate and return tokens as int64 [n, T]; out-of-vocabulary ids raise TaskError."""
        arr = np.asarray(tokens.cpu() if hasattr(tokens, "cpu") else tokens)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise TaskError(f"tokens must be an integer array [n, T], got {arr.dtype} {arr.shape}",
                            field="tokens", fix="encode token strings with task.encode(...)")
        bad = (arr < 0) | (arr >= len(self.vocab))
        if bad.any():
            i, t = np.argwhere(bad)[0]
            raise TaskError(
                f"token id {int(arr[i, t])} at sequence {int(i)}, position {int(t)} is outside "
                f"the vocabulary (ids 0..{len(self.vocab) - 1})", field="tokens",
                fix="encode token strings with task.encode(...); see task.vocab")
        return arr.astype(np.int64, copy=False)

    # ---- sampling -------------------------------------------------------------------------
    def resolve_counts(self, counts: Iterable[int] | str | None, held_out: bool) -> np.ndarray:
        """The counts to sample from: explicit ``counts``; ``"all"``; held-out ones; or training."""
        if isinstance(counts, str):
            if counts != "all":
                raise TaskError(f"counts={counts!r} is not understood",
                                fix="pass 'all', a list of counts, or None")
            return np.array(self.all_counts)
        if counts is not None:
            arr = np.array(sorted(set(int(c) for c in counts)))
            bad = [int(c) for c in arr if c not in self.all_counts]
            if bad or arr.size == 0:
                raise TaskError(f"counts {bad or '[]'} are outside {self.name}'s range "
                                f"{self.all_counts[0]}..{self.all_counts[-1]}", field="counts")
            return arr
        if held_out:
            return np.array(self.held_out_counts)
        return np.array([c for c in self.all_counts if c not in self.held_out_counts])

    def sample(self, n: int, seed: int, *, counts: Iterable[int] | str | None = None,
               held_out: bool = False) -> Stimuli:
        """``n`` seeded stimuli.

        By default counts come from the training set (``all_counts`` minus ``held_out_counts``);
        ``held_out=True`` draws only held-out counts; ``counts="all"`` (what alignment data uses)
        or an explicit list overrides both.
        """
        raise NotImplementedError

    def _stimuli(self, tokens: np.ndarray, counts: np.ndarray, trigger_pos: np.ndarray,
                 seed: int = 0, tag: str = "") -> Stimuli:
        """Stimuli of sampled ``tokens`` with content ids (``seed``/``tag`` are not part of an
        id: the same sequence has the same id whichever sample drew it)."""
        return dataclasses.replace(self.stimuli_from_tokens(tokens), counts=counts,
                                   trigger_pos=trigger_pos)

    def stimuli_from_tokens(self, tokens: Any, ids: Any = None, *,
                            strict: bool = True) -> Stimuli:
        """Stimuli of given token sequences (e.g. a recording's) with content ids (or ``ids``).

        ``variables`` and ``response_mask`` come from the causal model; ``trigger_pos`` is the
        step before the first causally determined token; ``counts`` are 0 (unknown). With
        ``strict`` False, sequences the causal model refuses (another task's grammar) are kept
        without variables (``variables`` empty, no response positions): enough to record a
        network's activity on them.
        """
        arr = self.check_tokens(tokens)
        n = len(arr)
        pad = self.pad
        try:
            variables = self.causal_model(arr)
            mask = self.response_mask(arr)
        except TaskError:
            if strict:
                raise
            variables, mask = {}, np.zeros(arr.shape, dtype=bool)
        if ids is not None and len(ids) != n:
            raise TaskError(f"{len(ids)} stimulus ids for {n} sequences", field="ids",
                            fix="give one id per sequence")
        first = np.where(mask.any(1), np.argmax(mask, axis=1) - 1, 0)
        return Stimuli(
            task=self.name, tokens=arr, lengths=(arr != pad).sum(1),
            ids=self.stimulus_ids(arr) if ids is None else np.asarray(ids, dtype=str),
            variables=variables, response_mask=mask,
            trigger_pos=np.maximum(first, 0).astype(np.int64),
            counts=np.zeros(n, dtype=np.int64), pad=pad)

    # ---- causal model ---------------------------------------------------------------------
    def causal_model(self, tokens: Any) -> dict[str, np.ndarray]:
        """Each causal variable's value after every token (int64 [n, T]; -1 where undefined)."""
        raise NotImplementedError

    def response_mask(self, tokens: Any) -> np.ndarray:
        """bool [n, T]: positions whose token the causal model determines."""
        raise NotImplementedError

    def intervenable_positions(self, tokens: Any) -> np.ndarray:
        """bool [n, T]: positions where an interchange intervention may be placed."""
        raise NotImplementedError

    def counterfactual(
        self,
        target_tokens: Any,
        target_pos: Any,
        source_tokens: Any = None,
        source_pos: Any = None,
        variable: str | Sequence[str] = "count",
        *,
        source_value: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Counterfactual sequences for a batch of (target, source) pairs.

        The counterfactual sequence is the target's prefix up to and including ``target_pos``,
        then the causal model's continuation after ``variable`` (a name, or several) has been set
        to the source's value at ``source_pos``. ``source_value`` (an int array [n] for one
        variable, or a mapping name -> [n]) replaces the source run, so a caller can carry a value
        across tasks. Returns ``(cf_tokens [n, T'], cf_response_mask [n, T'])``; the mask is True
        exactly at the positions after ``target_pos`` whose token the causal model determines
        (inputs that merely continue the target, e.g. remaining demo tokens, are False).
        """
        raise NotImplementedError

    def _resolve_values(self, target_tokens: Any, target_pos: Any, source_tokens: Any,
                        source_pos: Any, variable: str | Sequence[str],
                        source_value: Any) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray],
                                                    dict[str, np.ndarray]]:
        """Shared argument handling of :meth:`counterfactual`.

        Returns target tokens, target positions, the target's variables at target_pos and the
        new values (target's values with the chosen variables replaced).
        """
        tgt = self.check_tokens(target_tokens)
        n = tgt.shape[0]
        tpos = np.broadcast_to(np.asarray(target_pos, dtype=np.int64), (n,)).copy()
        names = (variable,) if isinstance(variable, str) else tuple(variable)
        unknown = [v for v in names if v not in self.variables]
        if unknown or not names:
            raise TaskError(f"{self.name} has no causal variable {unknown or names}",
                            field="variable", fix=f"variables of {self.name}: "
                            f"{', '.join(self.variables)}")
        self._check_positions(tgt, tpos, "target")
        tvars = self.causal_model(tgt)
        cur = {k: v[np.arange(n), tpos] for k, v in tvars.items()}
        new = {k: v.copy() for k, v in cur.items()}
        if source_value is not None:
            if not isinstance(source_value, Mapping):
                if len(names) != 1:
                    raise TaskError("source_value must map each variable to values when "
                                    "several variables are set", field="source_value")
                source_value = {names[0]: source_value}
            for name in names:
                if name not in source_value:
                    raise TaskError(f"source_value has no value for {name!r}",
                                    field="source_value")
                new[name] = np.broadcast_to(np.asarray(source_value[name], dtype=np.int64),
                                            (n,)).copy()
        else:
            if source_tokens is None or source_pos is None:
                raise TaskError("counterfactual needs source_tokens and source_pos, or "
                                "source_value", field="source_tokens")
            src = self.check_tokens(source_tokens)
            if src.shape[0] != n:
                raise TaskError(f"{n} targets but {src.shape[0]} sources", field="source_tokens")
            spos = np.broadcast_to(np.asarray(source_pos, dtype=np.int64), (n,))
            self._check_positions(src, spos, "source")
            svars = self.causal_model(src)
            for name in names:
                new[name] = svars[name][np.arange(n), spos]
        return tgt, tpos, cur, new

    def _check_positions(self, tokens: np.ndarray, pos: np.ndarray, which: str) -> None:
        """Refuse a ``which`` (target or source) position outside the sequence or where
        :meth:`intervenable_positions` is False."""
        width = tokens.shape[1]
        ok = self.intervenable_positions(tokens)[np.arange(len(pos)), np.clip(pos, 0, width - 1)]
        ok &= (pos >= 0) & (pos < width)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise TaskError(f"{which} position {int(pos[i])} of pair {i} is not intervenable "
                            "(padding, BOS, EOS or trigger)", field=f"{which}_pos",
                            fix="sample positions where task.intervenable_positions(...) is True")

    # ---- scoring --------------------------------------------------------------------------
    def score(self, pred_tokens: Any, cf_tokens: Any,
              cf_response_mask: Any) -> tuple[np.ndarray, np.ndarray]:
        """Compare generated sequences with counterfactual ones on the response positions.

        Returns ``(trial_correct bool [n], token_acc float [n])``: a trial is correct only when
        every response token and the EOS are right; token accuracy is the mean over those
        positions. Predictions shorter than the counterfactual count as wrong where missing.
        """
        pred = self.check_tokens(pred_tokens)
        cf = self.check_tokens(cf_tokens)
        mask = np.asarray(cf_response_mask, dtype=bool)
        if mask.shape != cf.shape or pred.shape[0] != cf.shape[0]:
            raise TaskError(f"shapes disagree: pred {pred.shape}, cf {cf.shape}, mask "
                            f"{mask.shape}", field="cf_response_mask")
        width = cf.shape[1]
        if pred.shape[1] < width:
            pred = np.pad(pred, ((0, 0), (0, width - pred.shape[1])), constant_values=self.pad)
        hit = (pred[:, :width] == cf) | ~mask
        n_resp = mask.sum(1)
        trial = hit.all(1)
        token_acc = np.where(n_resp > 0, (hit & mask).sum(1) / np.maximum(n_resp, 1), 1.0)
        return trial, token_acc.astype(np.float64)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary (what `simbench tasks` prints)."""
        return {"name": self.name, "title": self.title, "variables": list(self.variables),
                "description": self.description,
                "held_out_counts": list(self.held_out_counts), "vocab_size": len(self.vocab),
                "vocab": list(self.vocab),
                "special_tokens": {"pad": self.pad_token, "bos": self.bos_token,
                                   "eos": self.eos_token}}

