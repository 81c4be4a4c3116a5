"""Recording-only systems as engine parties: a recording turned into pools and latents.

A recording-only system is never run: it offers recorded activity labelled with the causal
variables at every step. :func:`recorded_party` (a :class:`~simbench.systems.RecordedSystem`)
and :func:`party_from_arrays` (plain arrays) make it an engine
:class:`~simbench.interventions.engine.Party` whose pools and latents are the recording's own,
split about 70/15/15 (seeded, stratified by length). Every check a recording made by someone
else can fail is here, naming the file, the site and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from simbench.errors import RecordingError, TaskError
from simbench.interventions.data import Pool, pool_from_stimuli
from simbench.interventions.engine import SPLITS, Party
from simbench.recording.tokens import refuse_token_codes
from simbench.recording_task import (
    GOOD_STIMULI_PER_VALUE,
    check_coverage,
    recorded_variables,
)
from simbench.seeds import rng as seeded_rng
from simbench.stimuli import token_ids_of_strings
from simbench.tasks.base import UNDEFINED, Stimuli, Task

MIN_PER_SPLIT = 10  # fewer stimuli than this in a split cannot cover the task's states
_PROBE_N = 2000  # stimuli sampled from a task to learn which tokens/values it can produce


def recorded_party(system: Any, *, site: str, task: Task, variable: str | Sequence[str],
                   seed: int,
                   values: tuple[int, int] | None = None) -> Party:
    """A recording-only Party from a :class:`~simbench.systems.RecordedSystem` at ``site``.

    Needs, at that site: ``activity`` (stimulus, time, unit), ``token`` (stimulus, time; token
    strings of the task's vocabulary, turned into ids with it), optionally ``valid`` (bool;
    default: token not the task's pad token or empty), and one coordinate (stimulus, time) per
    causal variable of the task.
    """
    rec = system.recording
    ds = rec.site(site)
    file = rec.path
    act = ds["activity"]
    if "time" not in act.dims:
        raise RecordingError("activity has no 'time' dim; counterfactual latents need the "
                             "activity after every step (stimulus, time, unit)", file=file,
                             site=site, field="activity")
    missing = [v for v in ("token", *task.variables) if v not in ds.coords]
    if "token" in missing:  # without tokens no variable can be derived from the task
        have = [str(c) for c in ds.coords if c not in ds.dims and c != "stimulus_id"]
        raise RecordingError(
            f"recording lacks the coordinate(s) {', '.join(repr(m) for m in missing)} "
            f"(stimulus, time) that matching counterfactual latents on task '{task.name}' "
            f"needs (its causal variables: {', '.join(task.variables)}, plus 'token'); "
            f"coordinates present: {', '.join(have) or '(none)'}", file=file, site=site,
            field=missing[0], fix="add one integer coordinate per causal variable holding its "
            "value after each step (see the schema in the documentation's guide, "
            "'Recordings and importers')")
    act = act.transpose("stimulus", "time", "unit")
    refuse_token_codes(ds["token"].values, task, file=file, site=site)  # codes: not names
    tok_str = np.asarray(ds["token"].transpose("stimulus", "time").values, dtype=str)
    valid = (np.asarray(ds["valid"].transpose("stimulus", "time").values, dtype=bool)
             if "valid" in ds.coords else None)
    ids, valid = token_ids_of_strings(task, tok_str, valid, file=file, site=site)
    variables, derived = recorded_variables(ds, task, file=file, site=site)
    stim_ids = np.asarray(ds["stimulus_id"].values, dtype=str)
    party = party_from_arrays(system.system_id, task, variable, ids, np.asarray(act.values),
                              variables, seed=seed, valid=valid, stimulus_ids=stim_ids,
                              values=values, file=file, site=site)
    party.derived = derived
    return party


def party_from_arrays(system_id: str, task: Task, variable: str | Sequence[str],
                      tokens: np.ndarray,
                      activity: np.ndarray, variables: Mapping[str, np.ndarray], *, seed: int,
                      valid: np.ndarray | None = None, stimulus_ids: np.ndarray | None = None,
                      values: tuple[int, int] | None = None, file: Any = None,
                      site: str | None = None) -> Party:
    """A recording-only Party from plain arrays (tokens int [n, T], activity [n, T, d]).

    Checks that the tokens are the task's, that every variable value is one the task produces
    and agrees with the task's causal model on the recorded tokens, and that there are enough
    stimuli for three splits.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    n = tokens.shape[0]
    pad = task.pad
    valid = tokens != pad if valid is None else np.asarray(valid, dtype=bool) & (tokens != pad)
    need = MIN_PER_SPLIT * len(SPLITS)
    if n < need:
        raise RecordingError(
            f"recording has {n} stimuli; matching counterfactual latents needs at least {need} "
            f"({MIN_PER_SPLIT} per train/val/test split), and about {GOOD_STIMULI_PER_VALUE} "
            "reaching each value of each causal variable (for a counting task, about "
            f"{GOOD_STIMULI_PER_VALUE} per count) to cover every state in every split",
            file=file, site=site,
            field="stimulus", fix="record more stimuli (all counts, e.g. task.sample(600, seed, "
            "counts='all'))")
    probe = task.sample(_PROBE_N, 12345, counts="all")
    _check_tokens(task, tokens, valid, probe, file, site)
    recorded = {v: np.where(valid, np.asarray(variables[v], dtype=np.int64), UNDEFINED)
                for v in task.variables}
    _check_values(task, tokens, valid, recorded, probe, file, site)
    coverage = _check_coverage(task, variable, recorded, valid, probe, values, file, site)
    split_of = stratified_split(tokens, valid, seed)
    act = torch.as_tensor(np.where(valid[..., None], activity, 0.0), dtype=torch.float32)
    ids = (np.asarray(stimulus_ids, dtype=str) if stimulus_ids is not None
           else np.array([f"{system_id}-{i}" for i in range(n)]))
    party = Party(system_id, task, variable, int(act.shape[-1]), None)
    party.coverage = coverage  # type: ignore[attr-defined]  # what CLMAS records as used
    for i, split in enumerate(SPLITS):
        rows = np.flatnonzero(split_of == i)
        stim = task.stimuli_from_tokens(tokens[rows], ids[rows])
        stim.variables = {k: v[rows] for k, v in recorded.items()}  # checked against the task
        party.pools[split] = _pool(task, variable, stim, values, file, site)
        party.latents[split] = act[rows]
    return party


def _check_coverage(task: Task, variable: str | Sequence[str],
                    recorded: Mapping[str, np.ndarray], valid: np.ndarray, probe: Stimuli,
                    values: tuple[int, int] | None, file: Any,
                    site: str | None) -> dict[str, dict[str, Any]]:
    """Stimuli per value of each causal variable: refused below the minimum, warned below the
    recommendation (see :func:`simbench.recording_task.check_coverage`)."""
    possible = {v: set(np.unique(probe.variables[v]).tolist()) - {UNDEFINED}
                for v in task.variables}
    names = (variable,) if isinstance(variable, str) else tuple(variable)
    restrict = {names[0]: values} if values is not None and names else None
    return check_coverage(recorded, valid, possible, task_name=task.name, restrict=restrict,
                          file=file, site=site)


def stratified_split(tokens: np.ndarray, valid: np.ndarray, seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per stimulus, ~70/15/15: ordered by (length,
    random) and dealt out in blocks of 20 (14/3/3), so every length with ~7 stimuli lands in
    every split."""
    rng = seeded_rng(seed, 0xC1A5)
    lengths = valid.sum(1)
    order = np.lexsort((rng.random(len(tokens)), lengths))
    slot = np.arange(len(tokens)) % 20
    pattern = np.zeros(20, dtype=np.int64)
    pattern[[3, 10, 16]] = 1
    pattern[[6, 13, 19]] = 2
    out = np.empty(len(tokens), dtype=np.int64)
    out[order] = pattern[slot]
    return out


def _check_tokens(task: Task, tokens: np.ndarray, valid: np.ndarray, probe: Stimuli,
                  file: Any, site: str | None) -> None:
    used = set(np.unique(probe.tokens).tolist())
    present, counts = np.unique(tokens[valid], return_counts=True)
    foreign = [(int(t), int(c)) for t, c in zip(present, counts) if int(t) not in used]
    if foreign:
        names = ", ".join(f"'{task.vocab[t]}' ({c} steps)" for t, c in foreign[:6])
        raise RecordingError(
            f"the stimuli use tokens task '{task.name}' never produces: {names}; is this a "
            "recording of another task?", file=file, site=site, field="token",
            fix=f"{task.name} uses: "
            f"{' '.join(task.vocab[t] for t in sorted(used) if t != task.pad)}"
            "; pass the recording's own task with --task")


def _check_values(task: Task, tokens: np.ndarray, valid: np.ndarray,
                  recorded: Mapping[str, np.ndarray], probe: Stimuli, file: Any,
                  site: str | None) -> None:
    truth = task.causal_model(tokens)
    for name in task.variables:
        rec = recorded[name]
        possible = set(np.unique(probe.variables[name]).tolist()) | {UNDEFINED}
        present, counts = np.unique(rec[valid], return_counts=True)
        bad = [(int(v), int(c)) for v, c in zip(present, counts) if int(v) not in possible]
        if bad:
            lo, hi = min(possible - {UNDEFINED}), max(possible)
            listed = ", ".join(f"{name} = {v} ({c} steps)" for v, c in bad[:6])
            raise RecordingError(
                f"values task '{task.name}' cannot produce: {listed}; it produces {name} in "
                f"{lo}..{hi} (-1 = undefined)", file=file, site=site, field=name,
                fix=f"check the '{name}' coordinate, or pass the recording's own task")
        defined = valid & (rec != UNDEFINED)
        wrong = defined & (rec != truth[name])
        if wrong.any():
            i, t = np.argwhere(wrong)[0]
            raise RecordingError(
                f"'{name}' disagrees with task '{task.name}''s causal model on the recorded "
                f"tokens at {int(wrong.sum())} of {int(defined.sum())} steps (first: stimulus "
                f"{int(i)}, step {int(t)}: recorded {int(rec[i, t])}, causal model "
                f"{int(truth[name][i, t])})", file=file, site=site, field=name,
                fix="the coordinate must hold the variable's value after each step; use -1 "
                "where it is undefined")


def _pool(task: Task, variable: str | Sequence[str], stim: Stimuli,
          values: tuple[int, int] | None, file: Any, site: str | None) -> Pool:
    """The shared pool builder, its errors naming the recording."""
    try:
        return pool_from_stimuli(task, variable, stim, values=values)
    except TaskError as exc:
        raise RecordingError(exc.message, file=file, site=site, field=exc.field,
                             fix=exc.fix) from None
