"""A task's self-test: what ``simbench tasks --check NAME`` runs on a task plugin.

A task plugin is code simbench did not write, and every measure trusts its contract: tokens in
its vocabulary, a seeded generator, a causal model with one [n, T] integer array per declared
variable, counterfactuals that continue a target's prefix. A plugin that breaks it fails late
and far from the cause (a shape error inside an alignment, an unreproducible score). This
module runs the contract on a few seeded samples and says, per broken rule, which method broke
it and how to fix it. Numpy only: checking a task never imports torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from simbench.errors import SimbenchError, TaskError
from simbench.tasks.base import UNDEFINED, Stimuli, Task

#: names a causal variable cannot take: they are the recording schema's own dims and coordinates
RESERVED_VARIABLES = ("stimulus", "time", "unit", "stimulus_id", "token", "valid", "activity")
CHECK_N = 64
CHECK_SEEDS = (0, 1)
#: ``fail(method, message, fix)`` records a problem; ``call(method, fn)`` runs ``fn``, recording
#: what it raises (and then stopping the check)
Fail = Callable[[str, str, str], None]
Call = Callable[[str, Callable[[], Any]], Any]


@dataclasses.dataclass(frozen=True)
class TaskProblem:
    """One broken rule of the task contract: the method (or attribute) and how to fix it."""

    method: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.method}: {self.message}\n  fix: {self.fix}"


class _Stop(Exception):
    """A check that cannot go on (the later checks need what it failed to produce)."""


def check_task(task: Task | type[Task], *, n: int = CHECK_N,
               seeds: tuple[int, int] = CHECK_SEEDS) -> list[TaskProblem]:
    """Every broken rule of ``task``'s contract, found on ``n`` stimuli per seed (empty: ok).

    The rules are checked in order (each listed in the task-plugin tutorial, "The self-test"):
    the vocabulary and special tokens, the variables, :meth:`Task.sample`,
    :meth:`Task.causal_model`, both masks, :meth:`Task.counterfactual` (its responses against
    the task's own, see :mod:`simbench.tasks.responses`) and :meth:`Task.score`. A behavioural
    task (``symbolic = False``) is checked up to its variables only.
    """
    problems: list[TaskProblem] = []

    def fail(method: str, message: str, fix: str) -> None:
        problems.append(TaskProblem(method, message, fix))

    def call(method: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SimbenchError as exc:
            fail(method, f"raised {type(exc).__name__}: {exc.message}",
                 exc.fix or "see the error above")
        except Exception as exc:  # a plugin's bug: reported, never raised
            fail(method, f"raised {type(exc).__name__}: {exc}",
                 "fix the exception in the task's code")
        raise _Stop

    try:
        inst = call("__init__", lambda: task() if isinstance(task, type) else task)
        _check_vocab(inst, fail)
        if problems:
            raise _Stop
        _check_variables(inst, fail)
        if not inst.symbolic:  # behavioural: nothing symbolic to sample or intervene on
            raise _Stop
        stims = [call("sample", lambda s=s: inst.sample(n, s)) for s in (*seeds, seeds[0])]
        _check_sample(inst, stims, n, fail)
        call("sample", lambda: inst.sample(n, seeds[0], counts="all"))
        call("sample", lambda: inst.sample(n, seeds[0], held_out=True))
        if problems:
            raise _Stop
        stim = stims[0]
        _check_causal_model(inst, stim, call, fail)
        _check_masks(inst, stim, call, fail)
        if problems:
            raise _Stop
        _check_counterfactual(inst, stim, call, fail)
        if not problems:
            _check_counterfactual_values(inst, call, fail)
        trial, _ = call("score", lambda: inst.score(stim.tokens, stim.tokens,
                                                     stim.response_mask))
        if not np.asarray(trial).all():
            fail("score", "a stimulus scored against itself is not correct",
                 "compare predictions with the counterfactual on the response mask only")
    except _Stop:
        pass
    return problems


def _check_vocab(task: Task, fail: Fail) -> None:
    try:
        index = task.token_index
    except TaskError as exc:
        fail("vocab", exc.message, exc.fix or "")
        return
    specials = {}
    for attr in ("pad_token", "bos_token", "eos_token"):
        token = getattr(task, attr, None)
        if token is None:
            if attr == "pad_token":
                fail(attr, "the task declares no pad token",
                     "set pad_token to a token of the vocabulary that no sequence uses")
            continue
        if token not in index:
            fail(attr, f"{token!r} is not in the vocabulary",
                 f"name one of its tokens: {' '.join(task.vocab)}")
            continue
        for other, tok in specials.items():
            if tok == token:
                fail(attr, f"{attr} and {other} are the same token {token!r}",
                     "give each special token its own entry in the vocabulary")
        specials[attr] = token
    for alias, target in dict(task.token_aliases).items():
        if alias in index:
            fail("token_aliases", f"alias {alias!r} is a token of the vocabulary itself",
                 "drop the alias (a real token always wins) or rename it")
        elif target not in index:
            fail("token_aliases", f"alias {alias!r} names {target!r}, which is not in the "
                 "vocabulary", f"point it at one of: {' '.join(task.vocab)}")


def _check_variables(task: Task, fail: Fail) -> None:
    names = task.variables
    if not isinstance(names, tuple) or not names or not all(
            isinstance(v, str) and v.isidentifier() for v in names):
        fail("variables", f"variables = {names!r} is not a non-empty tuple of names",
             'declare e.g. variables = ("left", "right")')
        raise _Stop
    if len(set(names)) != len(names):
        fail("variables", f"variables repeat a name: {names!r}", "list each variable once")
    reserved = [v for v in names if v in RESERVED_VARIABLES]
    if reserved:
        fail("variables", f"{reserved} are names of the recording schema itself, so a recording "
             "could not store the variable", "rename the variable")


def _check_sample(task: Task, stims: list[Any], n: int, fail: Fail) -> None:
    first, other, again = stims
    for stim in stims:
        if not isinstance(stim, Stimuli):
            fail("sample", f"returned {type(stim).__name__}, not Stimuli",
                 "build the result with self._stimuli(tokens, counts, trigger_pos, seed)")
            raise _Stop
    tok = np.asarray(first.tokens)
    if tok.ndim != 2 or len(tok) != n or not np.issubdtype(tok.dtype, np.integer):
        fail("sample", f"sample({n}, seed) gave tokens {tok.dtype} {tok.shape}, not int [{n}, T]",
             "return n sequences as an int64 array [n, T]")
        raise _Stop
    bad = (tok < 0) | (tok >= len(task.vocab))
    if bad.any():
        i, t = np.argwhere(bad)[0]
        fail("sample", f"token id {int(tok[i, t])} (sequence {int(i)}, position {int(t)}) is "
             f"outside the vocabulary (ids 0..{len(task.vocab) - 1})",
             "draw tokens with self.token_id(...) from the task's own vocabulary")
        raise _Stop
    if again.tokens.shape != tok.shape or not np.array_equal(again.tokens, tok) or not (
            np.array_equal(np.asarray(again.ids), np.asarray(first.ids))):
        fail("sample", "two calls with the same seed gave different stimuli",
             "draw every random number from np.random.default_rng(seed), never from global "
             "state or the clock")
    if other.tokens.shape == tok.shape and np.array_equal(other.tokens, tok):
        fail("sample", "two different seeds gave the same stimuli",
             "seed the generator with the seed argument")
    pad = task.pad
    is_pad = tok == pad
    later_real = np.flip(np.cumsum(np.flip(~is_pad, 1), 1), 1) > 0  # a real token at or after
    if (is_pad & later_real).any():
        i, t = np.argwhere(is_pad & later_real)[0]
        fail("sample", f"the pad token {task.pad_token!r} appears inside sequence {int(i)} "
             f"(position {int(t)}), before real tokens",
             "use the pad token only to fill sequences on the right")
    ids = np.asarray(first.ids)
    if len(ids) != n or len(set(ids.tolist())) != n:
        fail("sample", "stimulus ids are not one unique id per sequence",
             "let self._stimuli(...) make content ids")
    if not np.array_equal(np.asarray(first.lengths), (~is_pad).sum(1)):
        fail("sample", "lengths do not count the non-pad tokens",
             "let self._stimuli(...) compute lengths")


def _check_causal_model(task: Task, stim: Stimuli, call: Call, fail: Fail) -> None:
    out = call("causal_model", lambda: task.causal_model(stim.tokens))
    if not isinstance(out, dict):
        fail("causal_model", f"returned {type(out).__name__}, not a dict name -> array",
             "return {variable: int64 array [n, T]} for every declared variable")
        raise _Stop
    missing = [v for v in task.variables if v not in out]
    extra = [v for v in out if v not in task.variables]
    if missing:
        fail("causal_model", f"no array for declared variable(s) {missing}",
             "return one array per name in the task's variables")
    if extra:
        fail("causal_model", f"returns undeclared variable(s) {extra}",
             "declare them in variables, or drop them")
    shape = stim.tokens.shape
    for name in [v for v in task.variables if v in out]:
        arr = np.asarray(out[name])
        if arr.shape != shape or not np.issubdtype(arr.dtype, np.integer):
            fail("causal_model", f"'{name}' is {arr.dtype} {arr.shape}; tokens are {shape}",
                 "return an integer array with the tokens' shape [n, T]")
            continue
        if (arr < UNDEFINED).any():
            fail("causal_model", f"'{name}' takes negative values below -1 "
                 f"(min {int(arr.min())}); -1 means undefined",
                 "shift a signed variable by a constant so its values are >= 0")
        if (arr[~stim.valid] != UNDEFINED).any():
            fail("causal_model", f"'{name}' is defined on padding",
                 "set -1 wherever the token is the pad token")
        own = stim.variables.get(name) if isinstance(stim.variables, dict) else None
        if own is None or np.asarray(own).shape != shape or not np.array_equal(own, arr):
            fail("sample", f"the sample's variables['{name}'] differ from causal_model(tokens)",
                 "let self._stimuli(...) compute the variables from the tokens")


def _check_masks(task: Task, stim: Stimuli, call: Call, fail: Fail) -> None:
    for method in ("response_mask", "intervenable_positions"):
        arr = np.asarray(call(method, lambda m=method: getattr(task, m)(stim.tokens)))
        if arr.shape != stim.tokens.shape or arr.dtype != bool:
            fail(method, f"returned {arr.dtype} {arr.shape}, not bool {stim.tokens.shape}",
                 "return a bool array with the tokens' shape")
            continue
        if (arr & ~stim.valid).any():
            fail(method, "is True on padding", "and the mask with tokens != self.pad")
        if not arr.any():
            fail(method, "is False everywhere on a seeded sample",
                 "mark the positions the causal model determines (response_mask) or where a "
                 "variable may be set (intervenable_positions)")
    if not np.array_equal(np.asarray(stim.response_mask), task.response_mask(stim.tokens)):
        fail("sample", "the sample's response_mask differs from response_mask(tokens)",
             "let self._stimuli(...) compute it")


def _check_counterfactual(task: Task, stim: Stimuli, call: Call, fail: Fail) -> None:
    rng = np.random.default_rng(0)
    allowed = task.intervenable_positions(stim.tokens)
    rows = np.flatnonzero(allowed.any(1))
    rows = rows[rng.permutation(len(rows))][:16]
    pos = np.array([rng.choice(np.flatnonzero(allowed[r])) for r in rows])
    tokens = stim.tokens[rows]
    names = tuple(task.variables)
    own = {v: stim.variables[v][rows, pos] for v in names}
    src = rows[::-1]
    spos = np.array([rng.choice(np.flatnonzero(allowed[r])) for r in src])

    first, again = (call("counterfactual", lambda: task.counterfactual(
        tokens, pos, stim.tokens[src], spos, variable=names)) for _ in range(2))
    cf, mask = (np.asarray(a) for a in first)
    if cf.ndim != 2 or cf.shape != mask.shape or len(cf) != len(rows) or mask.dtype != bool:
        fail("counterfactual", f"returned tokens {cf.shape} and mask {mask.dtype} {mask.shape} "
             f"for {len(rows)} pairs", "return (int64 [n, T'], bool [n, T'])")
        return
    if not (np.array_equal(cf, again[0]) and np.array_equal(mask, again[1])):
        fail("counterfactual", "two identical calls gave different counterfactuals",
             "build counterfactuals from the arguments alone (no random numbers)")
    if ((cf < 0) | (cf >= len(task.vocab))).any():
        fail("counterfactual", "produced token ids outside the vocabulary",
             "build sequences from self.token_id(...) ids")
        return
    for i, (r, p) in enumerate(zip(rows, pos)):
        if cf.shape[1] <= p or not np.array_equal(cf[i, : p + 1], stim.tokens[r, : p + 1]):
            fail("counterfactual", f"pair {i} does not keep the target's tokens up to and "
                 f"including target_pos {int(p)}", "start each sequence with the target's prefix")
            return
        if mask[i, : p + 1].any():
            fail("counterfactual", f"pair {i}'s mask is True at or before target_pos",
                 "mark only positions after target_pos")
            return
    if not mask.any():
        fail("counterfactual", "no pair has a determined token (the mask is all False)",
             "mark the tokens the causal model determines after the intervention")
    same, same_mask = (np.asarray(a) for a in call("counterfactual", lambda: task.counterfactual(
        tokens, pos, variable=names, source_value=own)))
    width = min(same.shape[1], stim.tokens.shape[1])
    for i, r in enumerate(rows):
        m = same_mask[i, :width]
        if same_mask[i, width:].any() or not np.array_equal(same[i, :width][m],
                                                            tokens[i, :width][m]):
            fail("counterfactual", f"setting every variable to the target's own values at "
                 f"position {int(pos[i])} does not reproduce the target's determined tokens "
                 f"(stimulus {stim.ids[r]})",
                 "continue the causal model from the set values exactly as causal_model does")
            return


#: counterfactual pairs drawn by :func:`_check_counterfactual_values`, per variable set
VALUE_CHECK_PAIRS = 512


def _check_counterfactual_values(task: Task, call: Call, fail: Fail) -> None:
    """Counterfactual responses are ones the task can produce.

    Pairs of the task's own stimuli (every condition) are intervened on, one variable at a
    time and all together, at random intervenable positions. A counterfactual response longer
    than any the task produces is normal (run time redraws it); one of a length the task
    produces that holds a token no response of the task holds at that place means the
    counterfactual set a value the task cannot reach and wrote it anyway (clipped, or mapped to
    some token): a wrong label, which run time also redraws but the task should not write.
    """
    from simbench.tasks.responses import table_of

    pool = call("sample", lambda: task.sample(4 * VALUE_CHECK_PAIRS, 7, counts="all"))
    table = table_of(pool.tokens, pool.response_mask, len(task.vocab))
    allowed = task.intervenable_positions(pool.tokens)
    rows = np.flatnonzero(allowed.any(1))
    if not len(rows):
        return
    rng = np.random.default_rng(0)
    for variable in (*[(v,) for v in task.variables], tuple(task.variables)):
        tgt = rng.choice(rows, VALUE_CHECK_PAIRS)
        src = rng.choice(rows, VALUE_CHECK_PAIRS)
        tpos = np.array([rng.choice(np.flatnonzero(allowed[r])) for r in tgt])
        spos = np.array([rng.choice(np.flatnonzero(allowed[r])) for r in src])
        cf, mask = (np.asarray(a) for a in call("counterfactual", lambda t=tgt, s=src, a=tpos,
                                                b=spos, v=variable: task.counterfactual(
            pool.tokens[t], a, pool.tokens[s], b, variable=v if len(v) > 1 else v[0])))
        fits = mask.sum(1) <= table.max_determined
        bad = table.offending(cf, mask) & fits[:, None]
        wrong = np.flatnonzero(bad.any(1))
        if not len(wrong):
            continue
        i = int(wrong[0])
        place = int(np.flatnonzero(bad[i])[0])
        token = task.vocab[int(cf[i, place])] if 0 <= cf[i, place] < len(task.vocab) else \
            int(cf[i, place])
        share = 100 * len(wrong) / VALUE_CHECK_PAIRS
        fail("counterfactual",
             f"{len(wrong)} of {VALUE_CHECK_PAIRS} counterfactuals ({share:.1f}%) setting {'+'.join(variable)} give a response the task "
             f"never produces: e.g. pair {i} (target position {int(tpos[i])}, source position "
             f"{int(spos[i])}) writes {token!r} at position {place}, a token no response of "
             "the task holds there. The counterfactual set a value the task cannot reach and "
             "wrote it anyway (clipped or mapped to some token), so that label is wrong",
             "write the response the task's rules give for the new value; when that value is "
             "beyond what the task's responses can say, return a response longer or otherwise "
             "unlike any the task produces (run time redraws such counterfactuals) instead of "
             "clipping it into range")
        return


def format_problems(task_name: str, problems: list[TaskProblem]) -> str:
    """The report ``simbench tasks --check`` prints."""
    if not problems:
        return f"task '{task_name}': ok (vocabulary, sampling, causal model, masks, " \
               "counterfactuals and scoring follow the contract)"
    return "\n".join([f"task '{task_name}': {len(problems)} problem(s)",
                      *(f"- {p}" for p in problems)])


__all__ = ["RESERVED_VARIABLES", "TaskProblem", "check_task", "format_problems"]
