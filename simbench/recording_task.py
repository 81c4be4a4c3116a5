"""Check a recording against a task: what ``simbench validate FILE --task NAME`` reports.

The schema check (:func:`simbench.recording.recording_problems`) says whether a file is a
recording at all; this says whether a causal measure can match it to a task's causal model:
tokens from the task's vocabulary, one coordinate per causal variable of the task, values the
task can produce, and enough stimuli per value of each variable for counterfactual states to be
found. It uses the task's public attributes only (``vocab``, ``variables``, ``sample``), so it
works for a task plugin as for the built-in ones, and never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simbench.recording import Recording

UNDEFINED = -1
#: Stimuli sampled from a task to learn which variable values it can produce.
PROBE_N = 2000
#: Fewer stimuli than this reach a value of a causal variable: counterfactual states with that
#: value are found too rarely (and not in every train/val/test split).
MIN_STIMULI_PER_VALUE = 5
#: What the README recommends per value: every split then holds several states of each.
GOOD_STIMULI_PER_VALUE = 30


def producible_values(task: Any, *, seed: int = 12345) -> dict[str, set[int]]:
    """Every value each causal variable of ``task`` takes on a probe of seeded stimuli (all of
    the task's conditions where ``sample`` accepts ``counts="all"``), ``UNDEFINED`` excluded."""
    try:
        probe = task.sample(PROBE_N, seed, counts="all")
    except TypeError:  # a task plugin whose sample takes no counts
        probe = task.sample(PROBE_N, seed)
    out = {}
    for name in task.variables:
        values = np.unique(np.asarray(probe.variables[name]))
        out[name] = {int(v) for v in values if int(v) != UNDEFINED}
    return out


def value_coverage(values: np.ndarray, valid: np.ndarray) -> dict[int, int]:
    """How many stimuli reach each defined value of one variable ([stimulus, time] arrays)."""
    arr = np.where(valid, np.asarray(values), UNDEFINED)
    out: dict[int, int] = {}
    for v in np.unique(arr):
        if int(v) != UNDEFINED:
            out[int(v)] = int((arr == v).any(axis=-1).sum())
    return out


def site_task_problems(ds: Any, task: Any, *,
                       possible: Mapping[str, set[int]] | None = None) -> list[tuple[str, str]]:
    """Every problem of one site dataset for ``task``, as (field, explanation) pairs."""
    problems: list[tuple[str, str]] = []
    possible = producible_values(task) if possible is None else possible
    vocab = [str(t) for t in task.vocab]
    pad = vocab[0] if vocab else ""
    step_dims = ("stimulus", "time") if "time" in ds["activity"].dims else ("stimulus",)
    valid = (np.asarray(ds["valid"].transpose(*step_dims).values, dtype=bool)
             if "valid" in ds.coords else None)
    if "time" not in ds["activity"].dims:
        problems.append(("activity", "no 'time' dim: causal measures match the activity after "
                         "every step (stimulus, time, unit)"))
    if "token" not in ds.coords:
        problems.append(("token", f"no 'token' coordinate: add the input tokens, strings of "
                         f"task '{task.name}''s vocabulary"))
    else:
        tokens = np.asarray(ds["token"].transpose(*step_dims).values).astype(str)
        if valid is None:
            valid = (tokens != pad) & (tokens != "")
        present, counts = np.unique(tokens[valid], return_counts=True)
        foreign = [(str(t), int(c)) for t, c in zip(present, counts) if str(t) not in vocab]
        if foreign:
            named = ", ".join(f"'{t}' ({c} steps)" for t, c in foreign[:6])
            more = f" and {len(foreign) - 6} more" if len(foreign) > 6 else ""
            problems.append(("token", f"{len(foreign)} token(s) not in task '{task.name}''s "
                             f"vocabulary: {named}{more}; its vocabulary: {' '.join(vocab)}"))
    if valid is None:
        valid = np.ones(tuple(ds.sizes[d] for d in step_dims), dtype=bool)
    for name in task.variables:
        if name not in ds.coords:
            problems.append((name, f"no '{name}' coordinate: task '{task.name}' has the causal "
                             f"variables {', '.join(task.variables)}; add each as an integer "
                             "coordinate (stimulus, time) holding its value after each step, "
                             "-1 where undefined"))
            continue
        raw = np.asarray(ds[name].transpose(*step_dims).values)
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
        coverage = value_coverage(raw, valid)
        missing = sorted(allowed - set(coverage))
        thin = {v: n for v, n in sorted(coverage.items())
                if v in allowed and n < MIN_STIMULI_PER_VALUE}
        if missing or thin:
            parts = []
            if missing:
                parts.append(f"never reached: {name} = {_ranges(set(missing))}")
            if thin:
                parts.append("too few stimuli: " + ", ".join(
                    f"{name} = {v} ({n})" for v, n in list(thin.items())[:8]))
            problems.append((name, f"{'; '.join(parts)}; counterfactual states are matched "
                             f"per value, which needs at least {MIN_STIMULI_PER_VALUE} stimuli "
                             f"reaching each value (about {GOOD_STIMULI_PER_VALUE} recommended)"))
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


def _ranges(values: set[int]) -> str:
    """``{1, 2, 3, 7}`` -> ``1..3, 7``."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in runs)


__all__ = ["producible_values", "site_task_problems", "task_problems", "value_coverage"]
