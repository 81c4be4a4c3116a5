"""Counterfactual intervention sets: which latent goes where, and what behaviour should follow.

A *pool* is a seeded set of stimuli from one system's task with its causal variables' values
at every step. An *intervention set* for a direction (source s -> target t) pairs target and
source positions with the counterfactual sequence the target's causal model predicts once the
variable takes the source's value; values travel across tasks by variable mapping (``count``
of Multi-Object into ``rem_ops`` of Arithmetic). Counterfactuals the target task never
produces (a value outside its range, more determined tokens than any of its stimuli) are
redrawn: they would measure the task's range, not the alignment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from simbench.errors import TaskError
from simbench.tasks.base import Stimuli, Task
from simbench.tasks.responses import response_table


@dataclasses.dataclass
class Pool:
    """A system's stimuli, its aligned variables' values, and where interventions may go.

    ``variable``/``values`` are the primary (first) variable; ``variables``/``joint`` every
    variable intervened on together (by default all of the task's: ``count`` and ``phase``).
    """

    task: Task
    variable: str
    stimuli: Stimuli
    values: np.ndarray  # [n, T] the primary variable after each token (-1 undefined)
    allowed: np.ndarray  # [n, T] intervenable positions
    value_range: tuple[int, int]
    max_determined: int  # most causally determined tokens any stimulus has
    variables: tuple[str, ...] = ()
    joint: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.variables:
            self.variables = (self.variable,)
        if not self.joint:
            self.joint = {self.variable: self.values}

    @property
    def tokens(self) -> np.ndarray:
        return self.stimuli.tokens

    def __len__(self) -> int:
        return len(self.stimuli)


def make_pool(task: Task, variable: str | Sequence[str], n: int, seed: int, *,
              values: tuple[int, int] | None = None) -> Pool:
    """``n`` stimuli with all counts (alignment data uses every count, held-out ones too).

    ``variable`` is one name or several intervened on jointly; ``values`` restricts the primary
    (first) variable's intervened values.
    """
    names = _names(task, variable)
    return pool_from_stimuli(task, names, task.sample(n, seed, counts="all"), values=values)


def _names(task: Task, variable: str | Sequence[str]) -> tuple[str, ...]:
    names = (variable,) if isinstance(variable, str) else tuple(variable)
    missing = [v for v in names if v not in task.variables]
    if missing or not names:
        raise TaskError(f"task '{task.name}' has no causal variable "
                        f"'{missing[0] if missing else ''}'", field="variable",
                        fix=f"variables of {task.name}: {', '.join(task.variables)}")
    return names


def pool_from_stimuli(task: Task, variable: str | Sequence[str], stim: Stimuli, *,
                      values: tuple[int, int] | None = None) -> Pool:
    """The pool of given stimuli (sampled from the task, or read from a recording).

    Intervenable positions are those the task allows where every aligned variable is defined;
    the value range is taken over them before ``values`` restricts them further.
    """
    names = _names(task, variable)
    joint = {v: stim.variables[v] for v in names}
    vals = joint[names[0]]
    allowed = task.intervenable_positions(stim.tokens)
    for v in joint.values():
        allowed &= v >= 0
    if not allowed.any():
        raise TaskError(f"no intervenable step of the {len(stim)} stimuli has a defined "
                        f"'{names[0]}'", field=names[0],
                        fix="use stimuli that reach the variable's defined steps")
    defined = vals[allowed]
    lo, hi = int(defined.min()), int(defined.max())
    if values is not None:
        allowed &= (vals >= values[0]) & (vals <= values[1])
        if not allowed.any():
            raise TaskError(f"no position of task '{task.name}' has '{names[0]}' in "
                            f"{values[0]}..{values[1]}", field="values",
                            fix=f"'{names[0]}' ranges over {lo}..{hi} in this task")
    return Pool(task, names[0], stim, vals, allowed, (lo, hi),
                int(stim.response_mask.sum(1).max()), names, joint)


@dataclasses.dataclass
class Interventions:
    """One direction's interventions (numpy; the engine moves them to the device)."""

    source: int
    target: int
    tgt_idx: np.ndarray  # [n] target stimulus in the target pool
    tpos: np.ndarray  # [n] patched position (stepwise: the last patched position)
    src_idx: np.ndarray  # [n] source stimulus in the source pool
    spos: np.ndarray  # [n] source position
    cf_tokens: np.ndarray  # [n, W] counterfactual sequence
    cf_mask: np.ndarray  # [n, W] positions whose token the causal model determines
    stepwise: bool = False

    def __len__(self) -> int:
        return len(self.tgt_idx)


def _pick_positions(allowed: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn allowed position per row (every row must have one)."""
    a = allowed[rows]
    counts = a.sum(1)
    k = (rng.random(len(rows)) * counts).astype(np.int64)
    cum = np.cumsum(a, axis=1)
    return (cum <= k[:, None]).sum(1)


def sample_interventions(
    source: Pool,
    target: Pool,
    n: int,
    rng: np.random.Generator,
    *,
    source_index: int = 0,
    target_index: int = 0,
    stepwise: bool = False,
    max_tries: int = 50,
    carry: tuple[str, ...] = (),
) -> Interventions:
    """``n`` interventions from ``source`` into ``target`` with their counterfactuals.

    ``carry`` names further variables (present in both tasks) that also take the source's
    values: a stitch replaces the whole latent, so its counterfactual is the source's whole
    state (e.g. ``count`` and ``phase``), not the target's state with one variable swapped.
    """
    if len(source.variables) != len(target.variables):
        raise TaskError(f"source aligns {list(source.variables)} but target aligns "
                        f"{list(target.variables)}", field="variable",
                        fix="give both systems the same number of variables")
    lo, hi = target.value_range
    src_ok_rows = np.flatnonzero(source.allowed.any(1))
    tgt_ok_rows = np.flatnonzero(target.allowed.any(1))
    if not len(src_ok_rows) or not len(tgt_ok_rows):
        raise TaskError("no intervenable positions in the stimulus pools", field="values")
    kept: list[tuple[np.ndarray, ...]] = []  # per draw: rows kept, counterfactuals, masks
    need = n
    table = response_table(target.task)
    for _ in range(max_tries):
        m = max(2 * need, 64)
        t_idx = rng.choice(tgt_ok_rows, size=m)
        t_pos = _pick_positions(target.allowed, t_idx, rng)
        s_idx = rng.choice(src_ok_rows, size=m)
        if stepwise:
            width = source.allowed.shape[1]
            inside = t_pos < width
            ok = inside.copy()
            ok[inside] = source.allowed[s_idx[inside], t_pos[inside]]
            s_pos = np.where(ok, t_pos, 0)
        else:
            s_pos = _pick_positions(source.allowed, s_idx, rng)
            ok = np.ones(m, dtype=bool)
        value = source.values[s_idx, s_pos]
        ok &= (value >= lo) & (value <= hi)
        if not ok.any():
            continue
        t_idx, t_pos, s_idx, s_pos = (a[ok] for a in (t_idx, t_pos, s_idx, s_pos))
        carried = {tv: source.joint[sv][s_idx, s_pos]
                   for sv, tv in zip(source.variables, target.variables)}
        for c in carry:
            carried.setdefault(c, source.stimuli.variables[c][s_idx, s_pos])
        # The first ``need`` rows that pass are kept: counterfactuals are built for a prefix
        # of the rows (most pass), and for more only when too few of those did, so none is
        # built to be thrown away and the rows kept are the same as when all were built.
        lo_row = 0
        while need > 0 and lo_row < len(t_idx):
            hi_row = min(len(t_idx), lo_row + need + need // 8 + 16)
            part = slice(lo_row, hi_row)
            cf, cmask = target.task.counterfactual(
                target.tokens[t_idx[part]], t_pos[part], variable=tuple(carried),
                source_value={v: a[part] for v, a in carried.items()})
            # a counterfactual whose response the target task never produces (too long, or a
            # token no response holds at that place: a value beyond the task's) is redrawn
            fits = cmask.sum(1) <= target.max_determined
            if table is not None:
                fits &= table.producible(cf, cmask)
            keep = np.flatnonzero(fits)[:need]
            if len(keep):
                kept.append((*(a[part][keep] for a in (t_idx, t_pos, s_idx, s_pos)),
                             cf[keep], cmask[keep]))
            need -= len(keep)
            lo_row = hi_row
        if need <= 0:
            break
    if need > 0:
        raise TaskError(
            f"could draw only {n - need} of {n} counterfactuals from '{source.task.name}' "
            f"({source.variable}) into '{target.task.name}' ({target.variable}) whose values stay "
            f"in {lo}..{hi} and give responses the task can produce", field="values",
            fix="widen --values, or map variables whose value ranges overlap")
    width = max(k[4].shape[1] for k in kept)
    cf_tokens = np.full((n, width), target.task.pad, dtype=np.int64)
    cf_mask = np.zeros((n, width), dtype=bool)
    row = 0
    for *_, c, mk in kept:  # each block padded on the right, as one
        cf_tokens[row: row + len(c), : c.shape[1]] = c
        cf_mask[row: row + len(mk), : mk.shape[1]] = mk
        row += len(c)
    rows = (np.concatenate([k[i] for k in kept]).astype(np.int64) for i in range(4))
    return Interventions(source_index, target_index, *rows, cf_tokens, cf_mask, stepwise)
