"""Check a recording against a task: what ``simbench check-recording FILE --task NAME`` reports.

The schema check (:func:`simbench.recording.recording_problems`) says whether a file is a
recording at all; this says whether a causal measure can match it to a task's causal model:
tokens from the task's vocabulary, one coordinate per causal variable of the task, values the
task can produce, and enough stimuli per value of each variable for counterfactual states to be
found. It uses the task's public attributes only (``vocab``, ``variables``, ``sample``), so it
works for a task plugin as for the built-in ones, and never imports torch.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from simbench.errors import CoverageWarning, RecordingError, SimbenchError
from simbench.recording import Recording
from simbench.tasks.base import UNDEFINED

#: Stimuli sampled from a task to learn which variable values it can produce.
PROBE_N = 2000
#: Fewer recorded states (valid steps) than this hold a value of a causal variable: counterfactual
#: states with that value cannot be matched (nor found in every train/val/test split): refused.
MIN_STATES_PER_VALUE = 5
#: Stimuli reaching each value the documentation recommends (for a counting task: about 30 stimuli
#: per count); fewer gives a warning with the numbers.
GOOD_STIMULI_PER_VALUE = 30


def producible_values(task: Any, *, seed: int = 12345) -> dict[str, set[int]]:
    """Every value each causal variable of ``task`` takes on a probe of seeded stimuli (all of
    the task's conditions where ``sample`` accepts ``counts="all"``), ``UNDEFINED`` excluded."""
    try:
        probe = task.sample(PROBE_N, seed, counts="all")
    except TypeError:  # a task plugin whose sample takes no counts
        probe = task.sample(PROBE_N, seed)
    return {name: {int(v) for v in np.unique(np.asarray(probe.variables[name]))
                   if int(v) != UNDEFINED} for name in task.variables}


def value_coverage(values: np.ndarray, valid: np.ndarray) -> dict[int, int]:
    """How many stimuli reach each defined value of one variable ([stimulus, time] arrays)."""
    arr = np.where(valid, np.asarray(values), UNDEFINED)
    return {int(v): int((arr == v).reshape(len(arr), -1).any(axis=-1).sum())
            for v in np.unique(arr) if int(v) != UNDEFINED}


def state_coverage(values: np.ndarray, valid: np.ndarray) -> dict[int, int]:
    """How many recorded states (valid steps) hold each defined value of one variable."""
    arr = np.where(valid, np.asarray(values), UNDEFINED)
    present, counts = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(present, counts) if int(v) != UNDEFINED}


def check_coverage(variables: Mapping[str, np.ndarray], valid: np.ndarray,
                   possible: Mapping[str, set[int]], *, task_name: str,
                   restrict: Mapping[str, tuple[int, int]] | None = None, file: Any = None,
                   site: str | None = None) -> dict[str, dict[str, Any]]:
    """Refuse, or warn about, causal-variable values a recording reaches with too few stimuli.

    For each variable, every value the task produces (``possible``; within ``restrict[name]``
    when given, e.g. ``--values 1:16``) must be held by at least ``MIN_STATES_PER_VALUE``
    recorded states, else a :class:`~simbench.errors.RecordingError` lists the values and their
    numbers; a value reached by fewer than ``GOOD_STIMULI_PER_VALUE`` stimuli gives a
    :class:`CoverageWarning` with the numbers. Returns, per variable, the values recorded, the
    values needed and the fewest stimuli reaching a needed value (what a score records).
    """
    restrict = restrict or {}
    summary: dict[str, dict[str, Any]] = {}
    refused: list[str] = []
    thin: list[str] = []
    for name, values in variables.items():
        stimuli = value_coverage(values, valid)
        states = state_coverage(values, valid)
        lo, hi = restrict.get(name, (-np.inf, np.inf))
        needed = {v for v in possible.get(name, set()) if lo <= v <= hi}
        low = _too_few_states(states, needed)
        few = {v: stimuli[v] for v in sorted(needed)
               if v not in low and stimuli.get(v, 0) < GOOD_STIMULI_PER_VALUE}
        if low:
            absent = {v for v, n in low.items() if n == 0}
            parts = [f"{name} = {v} ({n} states)" for v, n in low.items() if n][:8]
            if absent:
                parts.append(f"{name} = {_ranges(absent)} (none)")
            refused.append(", ".join(parts))
        if few:
            thin.append(", ".join(f"{name} = {v} ({n})" for v, n in list(few.items())[:8])
                        + (f" and {len(few) - 8} more" if len(few) > 8 else ""))
        summary[name] = {
            "recorded": _ranges(set(states)),
            "needed": _ranges(needed),
            "min_stimuli_per_value": min((stimuli.get(v, 0) for v in needed), default=0),
        }
    if refused:
        raise RecordingError(
            f"too few recorded states for some values of task '{task_name}''s causal "
            f"variables: {'; '.join(refused)}; counterfactual latents are matched to recorded "
            f"states with the same values, and each value needs at least "
            f"{MIN_STATES_PER_VALUE}", file=file, site=site, field="stimulus",
            fix=f"record more stimuli (about {GOOD_STIMULI_PER_VALUE} reaching each value, "
            "e.g. each count), or restrict the intervened values to those recorded with "
            "--values LO:HI")
    if thin:
        warnings.warn(
            f"{file or 'the recording'}{f', site {site!r}' if site else ''}: few stimuli reach "
            f"some values of task '{task_name}''s causal variables (stimuli per value: "
            f"{'; '.join(thin)}); about {GOOD_STIMULI_PER_VALUE} each are recommended, and "
            "the score's attrs['coverage'] records what was used", CoverageWarning, stacklevel=2)
    return summary


class DerivedVariablesWarning(UserWarning):
    """A recording lacked causal variables; simbench computed them from its tokens."""


def derive_variables(ds: Any, task: Any, names: Any = None, *, file: Any = None,
                     site: str | None = None) -> dict[str, np.ndarray]:
    """The causal variables ``names`` (default: those the site lacks) computed from the site's
    ``token`` coordinate by ``task``'s causal model, int64 [stimulus, time], -1 on padding.

    A task's variables are functions of its tokens (that is what its causal model computes), so
    a recording with the task's tokens does not need to store them. Raises
    :class:`~simbench.errors.RecordingError` when it cannot: no ``token`` coordinate, tokens
    outside the task's vocabulary, or sequences the causal model refuses (naming why).
    """
    from simbench.stimuli import dataset_token_ids

    if names is None:
        names = [v for v in task.variables if v not in ds.coords]
    names = list(names)
    if not names:
        return {}
    what = f"causal variable(s) {', '.join(repr(v) for v in names)} of task '{task.name}'"
    if "token" not in ds.coords:
        raise RecordingError(f"the recording has neither the {what} nor a 'token' coordinate "
                             "to compute them from", file=file, site=site, field=names[0],
                             fix="add the input tokens as a 'token' coordinate (stimulus, time), "
                             "or each variable as an integer coordinate")
    ids, valid = dataset_token_ids(ds, task, file=file, site=site)
    try:
        out = task.causal_model(ids)
    except SimbenchError as exc:
        raise RecordingError(f"cannot compute the {what} from the recorded tokens: task "
                             f"'{task.name}''s causal model refuses them ({exc.message})",
                             file=file, site=site, field=names[0],
                             fix="add each variable as an integer coordinate (stimulus, time), "
                             "or check the tokens with `simbench check-recording FILE --task "
                             f"{task.name}`") from None
    return {v: np.where(valid, np.asarray(out[v], dtype=np.int64), UNDEFINED) for v in names}


def recorded_variables(ds: Any, task: Any, *, file: Any = None, site: str | None = None
                       ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every causal variable of ``task`` at one site, [stimulus, time] arrays: the recorded
    coordinates, and those the site lacks computed from its tokens (:func:`derive_variables`).

    Returns the variables and the names that were derived; deriving any gives a
    :class:`DerivedVariablesWarning` saying which (so a score says it did).
    """
    derived = derive_variables(ds, task, file=file, site=site)
    out = {v: derived[v] if v in derived else np.asarray(ds[v].transpose("stimulus", "time"))
           for v in task.variables}
    if derived:
        warnings.warn(
            f"{file or 'the recording'}{f', site {site!r}' if site else ''}: no coordinate for "
            f"{', '.join(repr(v) for v in derived)}; computed from the recorded tokens by task "
            f"'{task.name}''s causal model", DerivedVariablesWarning, stacklevel=2)
    return out, list(derived)


def site_task_problems(ds: Any, task: Any, *,
                       possible: Mapping[str, set[int]]) -> list[tuple[str, str]]:
    """Every problem of one site dataset for ``task``, given the values it can produce
    (:func:`producible_values`), as (field, explanation) pairs."""
    problems: list[tuple[str, str]] = []
    vocab = [str(t) for t in task.vocab]
    step_dims = ("stimulus", "time") if "time" in ds["activity"].dims else ("stimulus",)
    valid = (np.asarray(ds["valid"].transpose(*step_dims).values, dtype=bool)
             if "valid" in ds.coords else None)
    if "time" not in ds["activity"].dims:
        problems.append(("activity", "no 'time' dim: causal measures match the activity after "
                         "every step (stimulus, time, unit)"))
    if "token" not in ds.coords:
        problems.append(("token", f"no 'token' coordinate: add the input tokens, strings of "
                         f"task '{task.name}''s vocabulary"))
    elif ds["token"].dtype.kind in "iu":
        from simbench.recording.tokens import conversion_line

        problems.append(("token", f"'token' holds integer codes, not task '{task.name}''s token "
                         "names, so the causal variables cannot be derived from them; if code "
                         f"i is its i-th token, convert with: "
                         f"{conversion_line(ds.encoding.get('source'), task.name)}"))
    else:
        tokens = np.asarray(ds["token"].transpose(*step_dims).values).astype(str)
        if valid is None:  # the pad token (the vocabulary's first) or empty: padding
            valid = (tokens != (vocab[0] if vocab else "")) & (tokens != "")
        present, counts = np.unique(tokens[valid], return_counts=True)
        foreign = [(str(t), int(c)) for t, c in zip(present, counts) if str(t) not in vocab]
        if foreign:
            named = ", ".join(f"'{t}' ({c} steps)" for t, c in foreign[:6])
            more = f" and {len(foreign) - 6} more" if len(foreign) > 6 else ""
            problems.append(("token", f"{len(foreign)} token(s) not in task '{task.name}''s "
                             f"vocabulary: {named}{more}; its vocabulary: {' '.join(vocab)}"))
    if valid is None:
        valid = np.ones(tuple(ds.sizes[d] for d in step_dims), dtype=bool)
    derived: dict[str, np.ndarray] = {}
    why = ""
    if not any(f == "token" for f, _ in problems):
        try:
            derived = derive_variables(ds, task)  # the variables the site lacks
        except SimbenchError as exc:
            why = exc.message
    for name in task.variables:
        if name not in ds.coords and name not in derived:
            cannot = (f" (it cannot be computed from the tokens: {why})"
                      if why else "")
            problems.append((name, f"no '{name}' coordinate: task '{task.name}' has the causal "
                             f"variables {', '.join(task.variables)}; add each as an integer "
                             "coordinate (stimulus, time) holding its value after each step, "
                             f"-1 where undefined{cannot}"))
            continue
        raw = derived[name] if name in derived else np.asarray(
            ds[name].transpose(*step_dims).values)
        if not np.issubdtype(raw.dtype, np.integer):
            problems.append((name, f"'{name}' has dtype {raw.dtype}; causal variables are "
                             "integers (-1 where undefined)"))
            continue
        allowed = possible.get(name, set())
        present, counts = np.unique(raw[valid], return_counts=True)
        bad = [(int(v), int(c)) for v, c in zip(present, counts)
               if int(v) != UNDEFINED and int(v) not in allowed]
        if bad:
            listed = ", ".join(f"{name} = {v} ({c} steps)" for v, c in bad[:6])
            problems.append((name, f"values task '{task.name}' cannot produce: {listed}; it "
                             f"produces {name} in {_ranges(allowed)} (-1 = undefined)"))
        states = state_coverage(raw, valid)
        low = _too_few_states(states, allowed)
        if low:
            absent = _ranges({v for v, n in low.items() if n == 0})
            rare = [f"{name} = {v} ({n})" for v, n in low.items() if n][:8]
            parts = ([f"never reached: {name} = {absent}"] if absent else []) + (
                [f"too few states: {', '.join(rare)}"] if rare else [])
            problems.append((name, f"{'; '.join(parts)}; counterfactual latents are matched "
                             f"to recorded states with the same values, which needs at least "
                             f"{MIN_STATES_PER_VALUE} per value (about "
                             f"{GOOD_STIMULI_PER_VALUE} stimuli reaching each value are "
                             "recommended)"))
    return problems


def task_problems(rec: Recording, task: Any) -> list[str]:
    """Every problem of a recording for ``task``, one sentence each (empty: it fits)."""
    possible = producible_values(task)
    out = []
    if rec.task is not None and rec.task != task.name:
        out.append(f"file {rec.path}: recorded on task '{rec.task}', checked against "
                   f"'{task.name}'")
    for site, ds in rec.sites.items():
        out.extend(f"file {rec.path}, site '{site}', field '{f}': {p}"
                   for f, p in site_task_problems(ds, task, possible=possible))
    return out


def task_notes(rec: Recording, task: Any) -> list[str]:
    """What checking ``rec`` against ``task`` supplied rather than found: causal variables a
    site lacks that the task computes from its tokens (one sentence per site)."""
    out = []
    for site, ds in rec.sites.items():
        try:
            derived = derive_variables(ds, task)  # those the site lacks
        except SimbenchError:
            continue  # a problem, reported by task_problems
        if derived:
            out.append(f"file {rec.path}, site '{site}': no coordinate for "
                       f"{', '.join(repr(v) for v in derived)}; computed from the tokens by "
                       f"task '{task.name}''s causal model")
    return out


def _too_few_states(states: dict[int, int], needed: set[int]) -> dict[int, int]:
    """The needed values held by fewer than ``MIN_STATES_PER_VALUE`` states, with their count."""
    return {v: states.get(v, 0) for v in sorted(needed) if states.get(v, 0) < MIN_STATES_PER_VALUE}


def _ranges(values: set[int]) -> str:
    """``{1, 2, 3, 7}`` -> ``1..3, 7``."""
    runs = [[v for _, v in run] for _, run in
            itertools.groupby(enumerate(sorted(values)), lambda iv: iv[1] - iv[0])]
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)


__all__ = ["CoverageWarning", "DerivedVariablesWarning", "check_coverage", "derive_variables",
           "producible_values", "recorded_variables", "site_task_problems", "task_notes",
           "task_problems", "value_coverage"]
