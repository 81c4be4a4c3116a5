"""from_spike_times: binned counts equal a per-trial np.histogram reference, padding and
variables land where they should, the result saves and reloads as a valid recording, memory
stays under twice the output, and every kind of bad input is a RecordingError naming the
field and the fix.
"""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simbench.importers.spikes as spikes_module
from simbench.errors import RecordingError
from simbench.importers import SpikeWarning, from_spike_times
from simbench.recording import load_recording, save_recording

BW = 0.05


def reference(units: list[np.ndarray], t0: np.ndarray, t1: np.ndarray, bw: float) -> np.ndarray:
    """Counts [trial, bin, unit] one unit and one trial at a time with np.histogram, over the
    half-open window [t0, t1) whose bin edges are t0 + j * bw; zero past a trial's end."""
    n_bins = np.floor((t1 - t0) / bw + 1e-6).astype(int)
    out = np.zeros((len(t0), n_bins.max(), len(units)), dtype=np.int64)
    for u, t in enumerate(units):
        for i, (a, b) in enumerate(zip(t0, t1)):
            edges = a + np.arange(n_bins[i] + 1) * bw
            inside = t[(t >= a) & (t < b) & (t < edges[-1])]
            # np.histogram closes its last bin; a spike exactly on the last edge is excluded
            # above, so the two conventions agree
            out[i, : n_bins[i], u] = np.histogram(inside, edges)[0]
    return out


@pytest.fixture
def session() -> dict[str, object]:
    """Six trials of 1 s with 0.5 s gaps, four units whose spikes lie only inside trials, a
    few of them exactly on bin edges."""
    rng = np.random.default_rng(3)
    starts = np.arange(6) * 1.5 + 0.25
    ends = starts + 1.0
    units = []
    for u in range(4):
        t = np.concatenate([rng.uniform(s, e, 10 + 5 * u) for s, e in zip(starts, ends)])
        t = np.concatenate([t, starts[u] + np.array([0.0, 3 * BW, 7 * BW])])  # on edges
        units.append(np.sort(t))
    return {"units": units, "starts": starts, "ends": ends}


# ---- values ---------------------------------------------------------------------------------
def test_counts_equal_a_histogram_reference(session: dict) -> None:
    units, starts, ends = session["units"], session["starts"], session["ends"]
    rec = from_spike_times(units, starts, bin_width=BW, trial_duration=1.0, system_id="m1",
                           task="evidence", unit_ids=["a", "b", "c", "d"])
    ds = rec.site("units")
    ref = reference(units, starts, ends, BW)
    assert ds["activity"].dims == ("stimulus", "time", "unit")
    assert ds["activity"].dtype == np.int32
    np.testing.assert_array_equal(ds["activity"].values, ref)
    assert ds["activity"].values.sum() == sum(len(t) for t in units)  # every spike once
    assert ds["valid"].values.all() and ds["valid"].shape == (6, 20)
    np.testing.assert_allclose(ds["time"].values, np.arange(20) * BW)
    assert list(ds["unit"].values) == ["a", "b", "c", "d"]
    assert list(ds["stimulus_id"].values[:2]) == ["trial00000", "trial00001"]
    assert ds.attrs["n_spikes_outside"] == 0 and ds.attrs["bin_width_s"] == BW
    assert rec.system_id == "m1" and rec.task == "evidence"


def test_flat_pair_and_dict_give_the_same_counts(session: dict) -> None:
    """Kilosort-style (times sorted over the session, unit index per spike) and a dict of
    unit id -> times bin exactly like one array per unit."""
    units, starts = session["units"], session["starts"]
    times = np.concatenate(units)
    index = np.repeat(np.arange(len(units)), [len(t) for t in units])
    order = np.argsort(times, kind="stable")
    ref = from_spike_times(units, starts, bin_width=BW, trial_duration=1.0, system_id="m")
    flat = from_spike_times((times[order], index[order]), starts, bin_width=BW,
                            trial_duration=1.0, system_id="m")
    by_id = from_spike_times({f"u{i}": t for i, t in enumerate(units)}, starts, bin_width=BW,
                             trial_duration=1.0, system_id="m")
    a = ref.site("units")["activity"].values
    np.testing.assert_array_equal(flat.site("units")["activity"].values, a)
    np.testing.assert_array_equal(by_id.site("units")["activity"].values, a)
    assert list(by_id.site("units")["unit"].values) == ["u0", "u1", "u2", "u3"]


def test_blocks_and_split_units_count_the_same(session: dict,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny blocks of trials and groups of spikes (a unit split across groups) add up to the
    same counts as one pass."""
    units, starts, ends = session["units"], session["starts"], session["ends"]
    monkeypatch.setattr(spikes_module, "BLOCK_CELLS", 1)
    monkeypatch.setattr(spikes_module, "MIN_GROUP_SPIKES", 7)
    monkeypatch.setattr(spikes_module, "MAX_GROUP_SPIKES", 7)
    rec = from_spike_times(units, starts, bin_width=BW, trial_duration=1.0, system_id="m")
    np.testing.assert_array_equal(rec.site("units")["activity"].values,
                                  reference(units, starts, ends, BW))


def test_rates_are_counts_over_the_bin_width(session: dict) -> None:
    units, starts, ends = session["units"], session["starts"], session["ends"]
    rec = from_spike_times(units, starts, bin_width=BW, trial_duration=1.0, system_id="m",
                           rates=True)
    act = rec.site("units")["activity"]
    assert act.dtype == np.float64
    np.testing.assert_allclose(act.values, reference(units, starts, ends, BW) / BW)
    assert rec.site("units").attrs["activity_kind"] == "rate_hz"


def test_trials_of_different_lengths_pad_to_the_longest(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    ends = starts + np.array([1.0, 0.5, 0.75, 1.0, 0.25, 0.6])
    with pytest.warns(SpikeWarning, match="outside every trial window"):
        rec = from_spike_times(units, starts, bin_width=BW, trial_ends=ends, system_id="m",
                               outside="drop", tokens=["L", "R", "L", "R", "L", "R"],
                               variables={"side": [0, 1, 0, 1, 0, 1]})
    ds = rec.site("units")
    n_bins = np.array([20, 10, 15, 20, 5, 12])
    expect_valid = np.arange(20)[None, :] < n_bins[:, None]
    np.testing.assert_array_equal(ds["valid"].values, expect_valid)
    np.testing.assert_array_equal(ds["activity"].values, reference(units, starts, ends, BW))
    assert (ds["activity"].values[~expect_valid] == 0).all()
    assert list(ds["token"].values[1, 9:11]) == ["R", "PAD"]
    assert ds["side"].values[1, 9] == 1 and ds["side"].values[1, 10] == -1
    dropped = sum(len(t) for t in units) - int(ds["activity"].values.sum())
    assert ds.attrs["n_spikes_outside"] == dropped > 0


def test_align_to_starts_each_window_at_the_event(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    onset = starts + np.array([0.1, 0.2, 0.3, 0.15, 0.25, 0.35])
    with pytest.warns(SpikeWarning):
        rec = from_spike_times(units, starts, bin_width=BW, trial_duration=0.5, system_id="m",
                               align_to=onset, outside="drop")
    np.testing.assert_array_equal(rec.site("units")["activity"].values,
                                  reference(units, onset, onset + 0.5, BW))
    assert rec.site("units").attrs["aligned"] == 1


def test_trials_in_any_order_keep_their_order(session: dict) -> None:
    units, starts, ends = session["units"], session["starts"], session["ends"]
    perm = np.array([3, 0, 5, 1, 4, 2])
    rec = from_spike_times(units, starts[perm], bin_width=BW, trial_duration=1.0,
                           system_id="m", stimulus_ids=[f"s{i}" for i in perm])
    ds = rec.site("units")
    np.testing.assert_array_equal(ds["activity"].values, reference(units, starts, ends, BW)[perm])
    assert list(ds["stimulus_id"].values) == [f"s{i}" for i in perm]


def test_tokens_and_variables_in_every_form(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    n, nb = 6, 20
    events = [[(s + 0.01, "fix"), (s + 0.42, "L" if i % 2 else "R")]
              for i, s in enumerate(starts)]
    events[5] = []  # a trial without events: all blank
    per_bin = np.tile(np.arange(nb), (n, 1))
    ragged = [np.arange(nb) * 2 for _ in range(n)]
    table = pd.DataFrame({"choice": [0, 1, 1, 0, 1, 0], "coh": [1.0, 2.0, np.nan, 4, 5, 6]})
    rec = from_spike_times(units, starts, bin_width=0.05, trial_duration=1.0, system_id="m",
                           tokens=events, variables=table, blank="-")
    ds = rec.site("units")
    assert ds["token"].values[0, 0] == "fix" and ds["token"].values[0, 8] == "R"
    assert ds["token"].values[1, 8] == "L" and ds["token"].values[0, 1] == "-"
    assert (ds["token"].values == "-").sum() == (n - 1) * (nb - 2) + nb
    assert ds["choice"].dtype == np.int64 and list(ds["choice"].values[:, 0]) == [0, 1, 1, 0, 1, 0]
    assert (ds["coh"].values[2] == -1).all() and (ds["coh"].values[3] == 4).all()  # NaN -> -1
    assert sorted(rec.variables("units")) == ["choice", "coh"]

    grid = np.full((n, nb), "x")
    rec2 = from_spike_times(units, starts, bin_width=0.05, trial_duration=1.0, system_id="m",
                            tokens=grid, variables={"step": per_bin, "twice": ragged,
                                                    "flag": np.ones(n, dtype=bool)})
    ds2 = rec2.site("units")
    assert (ds2["token"].values == "x").all()
    np.testing.assert_array_equal(ds2["step"].values, per_bin)
    np.testing.assert_array_equal(ds2["twice"].values[4], np.arange(nb) * 2)
    assert (ds2["flag"].values == 1).all()
    rec3 = from_spike_times(units, starts, bin_width=0.05, trial_duration=1.0, system_id="m",
                            tokens=[list("ab" * 10)] * n)
    assert "".join(rec3.site("units")["token"].values[5]) == "ab" * 10


def test_saves_and_reloads_as_a_valid_recording(session: dict, tmp_path: Path) -> None:
    units, starts = session["units"], session["starts"]
    ends = starts + np.array([1.0, 0.5, 0.75, 1.0, 0.25, 0.6])
    events = [[(s + 0.01, "go")] for s in starts]
    with pytest.warns(SpikeWarning):
        rec = from_spike_times(units, starts, bin_width=BW, trial_ends=ends, system_id="m1",
                               task="evidence", tokens=events,
                               variables={"side": [0, 1, 0, 1, 0, 1]}, outside="drop",
                               attrs={"lab": "test"})
    path = save_recording(rec, tmp_path / "m1.nc")
    back = load_recording(path)  # validates
    a, b = rec.site("units"), back.site("units")
    np.testing.assert_array_equal(b["activity"].values, a["activity"].values)
    np.testing.assert_array_equal(b["valid"].values, a["valid"].values)
    np.testing.assert_array_equal(b["token"].values, a["token"].values)
    np.testing.assert_array_equal(b["side"].values, a["side"].values)
    np.testing.assert_array_equal(b["unit"].values, a["unit"].values)
    assert back.system_id == "m1" and back.task == "evidence"
    assert back.attrs["lab"] == "test" and b.attrs["n_spikes_outside"] > 0
    assert back.variables("units") == ["side"]


def test_memory_stays_under_twice_the_output() -> None:
    """The scaled-down speed target (same spike density: 0.05 spikes per output cell) keeps
    its peak allocation, output included, under twice the output array."""
    rng = np.random.default_rng(0)
    n_units, n_trials, dur, bw = 100, 200, 2.0, 0.01
    units = [np.sort(rng.uniform(0, n_trials * dur, rng.poisson(1000))) for _ in range(n_units)]
    starts = np.arange(n_trials) * dur
    tracemalloc.start()
    try:
        rec = from_spike_times(units, starts, bin_width=bw, trial_duration=dur, system_id="m")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    nbytes = rec.site("units")["activity"].values.nbytes
    assert nbytes == n_trials * 200 * n_units * 4
    assert peak < 2 * nbytes, (peak, nbytes)


# ---- bad input ------------------------------------------------------------------------------
def field_of(exc: pytest.ExceptionInfo[RecordingError]) -> str | None:
    return exc.value.field


def test_spikes_outside_every_trial_are_refused_with_where(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    extra = [np.sort(np.concatenate([units[0], [0.1, 0.2, 1.4, 100.0]])), *units[1:]]
    with pytest.raises(RecordingError) as exc:
        from_spike_times(extra, starts, bin_width=BW, trial_duration=1.0, system_id="m")
    msg = str(exc.value)
    assert field_of(exc) == "spike_times"
    assert "4 of" in msg and "2 before" in msg and "1 between" in msg and "1 after" in msg
    assert "'0' (4)" in msg and "outside='drop'" in msg
    with pytest.warns(SpikeWarning, match="4 of"):
        rec = from_spike_times(extra, starts, bin_width=BW, trial_duration=1.0, system_id="m",
                               outside="drop")
    assert rec.site("units").attrs["n_spikes_outside"] == 4


def test_unsorted_negative_and_nan_times_are_refused(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    cases = {
        "not sorted": [units[0][::-1], *units[1:]],
        "negative spike times": [np.concatenate([[-0.5], units[0]]), *units[1:]],
        "NaN/Inf": [np.concatenate([units[0], [np.nan]]), *units[1:]],
    }
    for text, bad in cases.items():
        with pytest.raises(RecordingError, match=text) as exc:
            from_spike_times(bad, starts, bin_width=BW, trial_duration=1.0, system_id="m")
        assert field_of(exc) == "spike_times" and "unit '0'" in str(exc.value)
        assert exc.value.fix
    times = np.concatenate(units)  # flat pair: each unit's times must be in order
    index = np.repeat(np.arange(4), [len(t) for t in units])
    with pytest.raises(RecordingError, match="not sorted"):
        from_spike_times((times[::-1], index[::-1]), starts, bin_width=BW, trial_duration=1.0,
                         system_id="m")


def test_a_bin_width_that_does_not_divide_a_trial(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    with pytest.raises(RecordingError, match="does not divide") as exc:
        from_spike_times(units, starts, bin_width=0.3, trial_duration=1.0, system_id="m")
    assert field_of(exc) == "bin_width" and "partial_bins='drop'" in str(exc.value)
    with pytest.warns(SpikeWarning, match="incomplete last bins"):
        rec = from_spike_times(units, starts, bin_width=0.3, trial_duration=1.0,
                               system_id="m", partial_bins="drop")
    ds = rec.site("units")
    assert ds.sizes["time"] == 3
    np.testing.assert_array_equal(ds["activity"].values,
                                  reference(units, starts, starts + 0.9, 0.3))
    tail = sum(int(((t >= s + 0.9) & (t < s + 1.0)).sum()) for t in units for s in starts)
    assert ds.attrs["n_spikes_partial_bins"] == tail > 0


def test_variable_table_and_token_lengths_must_match(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    kw = {"bin_width": BW, "trial_duration": 1.0, "system_id": "m"}
    with pytest.raises(RecordingError, match="5 rows for 6 trials") as exc:
        from_spike_times(units, starts, variables=pd.DataFrame({"side": range(5)}), **kw)
    assert field_of(exc) == "variables"
    with pytest.raises(RecordingError, match="5 values for 6 trials") as exc:
        from_spike_times(units, starts, variables={"side": [0, 1, 0, 1, 0]}, **kw)
    assert field_of(exc) == "side"
    with pytest.raises(RecordingError, match="19 bins per trial, expected 20"):
        from_spike_times(units, starts, variables={"side": np.zeros((6, 19))}, **kw)
    with pytest.raises(RecordingError, match="trial 2: 7 values for 20 bins"):
        from_spike_times(units, starts, variables={"side": [np.zeros(20)] * 2 + [np.zeros(7)]
                                                   + [np.zeros(20)] * 3}, **kw)
    with pytest.raises(RecordingError, match="tokens has 4 entries for 6 trials"):
        from_spike_times(units, starts, tokens=["a"] * 4, **kw)
    with pytest.raises(RecordingError, match=r"trial 0 has 20 bins .* but 3 tokens"):
        from_spike_times(units, starts, tokens=[["a", "b", "c"]] * 6, **kw)
    with pytest.raises(RecordingError, match=r"shape \(6, 4\)"):
        from_spike_times(units, starts, tokens=np.full((6, 4), "a"), **kw)


def test_bad_events_variables_and_trials(session: dict) -> None:
    units, starts = session["units"], session["starts"]
    kw = {"bin_width": BW, "trial_duration": 1.0, "system_id": "m"}
    same_bin = [[(s + 0.01, "a"), (s + 0.02, "b")] for s in starts]
    with pytest.raises(RecordingError, match="same bin"):
        from_spike_times(units, starts, tokens=same_bin, **kw)
    late = [[(s + 1.2, "a")] for s in starts]
    with pytest.raises(RecordingError, match="outside the trial's window"):
        from_spike_times(units, starts, tokens=late, **kw)
    with pytest.raises(RecordingError, match=r"non-integer values, e\.g\. 0\.5"):
        from_spike_times(units, starts, variables={"coh": [0.5] * 6}, **kw)
    with pytest.raises(RecordingError, match="factorize"):
        from_spike_times(units, starts, variables={"stim": ["a"] * 6}, **kw)
    with pytest.raises(RecordingError, match="reserved"):
        from_spike_times(units, starts, variables={"token": [0] * 6}, **kw)
    with pytest.raises(RecordingError, match="stimulus ids repeat"):
        from_spike_times(units, starts, stimulus_ids=["a"] * 6, **kw)
    with pytest.raises(RecordingError, match="overlap") as exc:
        from_spike_times(units, starts, bin_width=BW, trial_duration=2.0, system_id="m")
    assert "trial 0" in str(exc.value) and "trial 1" in str(exc.value)
    with pytest.raises(RecordingError, match="exactly one of trial_duration and trial_ends"):
        from_spike_times(units, starts, bin_width=BW, system_id="m")
    with pytest.raises(RecordingError, match="before their trial's start"):
        from_spike_times(units, starts, align_to=starts - 0.1, **kw)
    with pytest.raises(RecordingError, match="positive number of seconds"):
        from_spike_times(units, starts, bin_width=0, trial_duration=1.0, system_id="m")
    with pytest.raises(RecordingError, match="one flat array"):
        from_spike_times(units[0], starts, **kw)
    with pytest.raises(RecordingError, match="unit_ids has 2 ids for 4 units"):
        from_spike_times(units, starts, unit_ids=["a", "b"], **kw)


def test_a_narrow_dtype_that_overflows_is_refused() -> None:
    dense = [np.sort(np.random.default_rng(0).uniform(0, 1, 300))]
    with pytest.raises(RecordingError, match="more spikes than dtype") as exc:
        from_spike_times(dense, [0.0], bin_width=1.0, trial_duration=1.0, system_id="m",
                         dtype=np.uint8)
    assert field_of(exc) == "dtype"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = from_spike_times(dense, [0.0], bin_width=1.0, trial_duration=1.0, system_id="m",
                               dtype=np.uint16)
    assert rec.site("units")["activity"].values[0, 0, 0] == 300
