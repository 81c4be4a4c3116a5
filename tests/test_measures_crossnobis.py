"""Crossnobis RSA: the RDM against the leave-one-repeat-out formula, the comparison against
rsatoolbox, and the refusal of recordings without repeats."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rsatoolbox
from recording_helpers import save

import simbench
from simbench.errors import RecordingError
from simbench.estimators.crossnobis import crossnobis_rdm
from simbench.recording import Recording, save_recording, site_dataset

N_COND, N_REP, N_UNIT = 12, 4, 10


def _patterns(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N_COND, N_UNIT))


def _measured(patterns: np.ndarray, seed: int, noise: float = 0.8) -> np.ndarray:
    """[condition, repeat, unit]: every condition measured N_REP times with fresh noise."""
    r = np.random.default_rng(seed)
    return patterns[:, None, :] + noise * r.normal(size=(N_COND, N_REP, patterns.shape[1]))


def _ref_rdm(act: np.ndarray) -> np.ndarray:
    """Walther et al. (2016), leave one repeat out: d_ij = mean_f (m_f,i - m_f,j)'
    (m_-f,i - m_-f,j) / units, m_-f the mean of the other repeats (identity precision)."""
    c, reps, units = act.shape
    out = np.zeros((c, c))
    for f in range(reps):
        test = act[:, f]
        train = act[:, [g for g in range(reps) if g != f]].mean(axis=1)
        for i, j in itertools.combinations(range(c), 2):
            out[i, j] += (test[i] - test[j]) @ (train[i] - train[j]) / units / reps
    return out + out.T


def _save_repeats(path: Path, system_id: str, act: np.ndarray, coord: str = "repeat") -> Path:
    """Layout 1: a stimulus per condition, its repeats on the time dim, labelled ``coord``."""
    c, reps, _ = act.shape
    ids = [f"c{i:02d}" for i in range(c)]
    variables = {coord: np.tile(np.arange(reps), (c, 1))} if coord else None
    ds = site_dataset(act, stimulus_ids=ids, site="v1", system_id=system_id,
                      valid=np.ones((c, reps), dtype=bool), variables=variables)
    return save_recording(Recording(system_id, {"v1": ds}), path)


def test_rdm_matches_the_leave_one_out_formula():
    act = _measured(_patterns(0), 1)
    rows = act.reshape(-1, N_UNIT)
    cond = np.repeat(np.arange(N_COND), N_REP)
    part = np.tile(np.arange(N_REP), N_COND)
    rdm, labels = crossnobis_rdm(rows, cond, part, noise="identity")
    order = np.argsort(labels.astype(int))
    np.testing.assert_allclose(rdm[np.ix_(order, order)], _ref_rdm(act), atol=1e-9)


def test_unbiased_where_the_naive_distance_is_not():
    """Two conditions with one true pattern: crossnobis averages to 0, Euclidean does not."""
    true = np.zeros((3, 30))
    true[2] = 1.0  # conditions 0 and 1 share a pattern; 2 differs
    vals = []
    for seed in range(40):
        act = np.random.default_rng(seed).normal(size=(3, N_REP, 30)) + true[:, None]
        vals.append(_ref_rdm(act)[0, 1])
        rows = act.reshape(-1, 30)
        got, _ = crossnobis_rdm(rows, np.repeat([0, 1, 2], N_REP),
                                np.tile(np.arange(N_REP), 3), noise="identity")
        assert got[0, 1] == pytest.approx(vals[-1], abs=1e-9)
    assert abs(np.mean(vals)) < 3 * np.std(vals) / np.sqrt(len(vals))


def test_score_from_netcdf_against_rsatoolbox(tmp_path):
    pat = _patterns(2)
    a, b = _measured(pat, 3), _measured(pat @ np.random.default_rng(4).normal(size=(10, 10)), 5)
    pa = _save_repeats(tmp_path / "a.nc", "A", a)
    pb = _save_repeats(tmp_path / "b.nc", "B", b)
    s = simbench.score("crossnobis", str(pa), str(pb), site="v1", noise="identity", null=50,
                       n_boot=100)
    ra, rb = (rsatoolbox.rdm.RDMs(_ref_rdm(t)[np.triu_indices(N_COND, 1)][None])
              for t in (a, b))
    assert s.value == pytest.approx(float(rsatoolbox.rdm.compare(ra, rb, "cosine")[0, 0]),
                                    abs=1e-6)
    assert s.ci is not None and s.ci[0] <= s.value <= s.ci[1]
    assert s.p_value < 0.05 and s.attrs["n_repeats"] == [N_REP, N_REP]
    # the default (shrinkage precision) and the `run` name of the coordinate work too
    pr = _save_repeats(tmp_path / "r.nc", "R", b, coord="run")
    assert simbench.score("crossnobis", str(pa), str(pr), site="v1", n_boot=0).value > 0.2


def test_without_repeats_it_says_why_and_what_to_record(tmp_path):
    act = _measured(_patterns(6), 7)
    pa = _save_repeats(tmp_path / "a.nc", "A", act)
    plain = save(tmp_path / "p.nc", "P", act, site="v1")
    with pytest.raises(RecordingError, match="repeated measurements") as info:
        simbench.score("crossnobis", str(pa), str(plain), site="v1")
    assert "'repeat'" in str(info.value) and "record every stimulus" in str(info.value)
    with pytest.raises(RecordingError, match="is a network"):
        simbench.score("crossnobis", "gru_multi_s1", str(pa), site="v1")
