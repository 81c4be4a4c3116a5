"""The counting tasks' counterfactuals, built for all rows at once, equal the row-by-row
construction (written here from :meth:`CountingTask.counterfactual`'s docstring)."""

from __future__ import annotations

import numpy as np
import pytest

from simbench.tasks import Modulo, MultiObject, Rounding, SameObject
from simbench.tasks.base import pad_sequences


def row_by_row(task, tokens, tpos, new_count, new_phase):
    """The reference: one row at a time."""
    _, _, eos, trigger = task._specials()
    cur_phase = task.causal_model(tokens)["phase"][np.arange(len(tokens)), tpos]
    seqs, masks = [], []
    for i in range(len(tokens)):
        t, row, c = int(tpos[i]), tokens[i], max(int(new_count[i]), 0)
        prefix = row[: t + 1].tolist()
        if int(new_phase[i]) == 1:
            cont, cmask = [task.response_id] * c + [eos], [True] * (c + 1)
        else:
            trig = np.flatnonzero(row == trigger)
            if cur_phase[i] == 0 and trig.size and trig[0] > t:
                inputs = row[t + 1: trig[0] + 1].tolist()
                c += len(inputs) - 1
            else:
                inputs = [trigger]
            fc = int(task.f(np.array([c]))[0])
            cont = inputs + [task.response_id] * fc + [eos]
            cmask = [False] * len(inputs) + [True] * (fc + 1)
        seqs.append(prefix + cont)
        masks.append([False] * len(prefix) + cmask)
    cf = pad_sequences(seqs, pad=task.pad)
    m = np.zeros(cf.shape, dtype=bool)
    for i, mk in enumerate(masks):
        m[i, : len(mk)] = mk
    return cf, m


@pytest.mark.parametrize("task", [MultiObject(), SameObject(), Modulo(), Rounding()],
                         ids=lambda t: t.name)
@pytest.mark.parametrize("variables", [("count",), ("count", "phase"), ("phase",)])
def test_all_rows_at_once_equal_row_by_row(task, variables) -> None:
    rng = np.random.default_rng(0)
    stim = task.sample(400, 1)
    tokens = np.asarray(stim.tokens)
    allowed = task.intervenable_positions(tokens)
    rows = np.flatnonzero(allowed.any(1))
    tokens = tokens[rows]
    tpos = np.array([rng.choice(np.flatnonzero(a)) for a in allowed[rows]])
    state = task.causal_model(tokens)
    cur = {k: v[np.arange(len(tokens)), tpos] for k, v in state.items()}
    values = {"count": rng.integers(0, 21, len(tokens)), "phase": rng.integers(0, 2, len(tokens))}
    new = {**cur, **{v: values[v] for v in variables}}
    cf, mask = task.counterfactual(tokens, tpos, variable=variables,
                                   source_value={v: values[v] for v in variables})
    ref_cf, ref_mask = row_by_row(task, tokens, tpos, new["count"], new["phase"])
    assert cf.dtype == ref_cf.dtype and cf.shape == ref_cf.shape
    np.testing.assert_array_equal(cf, ref_cf)
    np.testing.assert_array_equal(mask, ref_mask)
    assert mask.any(1).all()
