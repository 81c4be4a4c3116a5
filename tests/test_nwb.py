"""from_nwb on NWB files written here with pynwb itself: counts equal a direct histogram of the
same spike times, trial columns become tokens, stimulus ids and causal variables, the result
saves and reloads as a valid recording, and a file without units or trials, with overlapping
trials, naming a missing column, or not NWB at all is a RecordingError that says so.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile
from pynwb.file import Subject

from simbench.errors import RecordingError
from simbench.importers import SpikeWarning, from_nwb
from simbench.recording import load_recording, save_recording

BW = 0.1
STARTS = np.arange(8) * 2.0 + 0.5
STOPS = STARTS + np.array([1.0, 1.5, 1.0, 1.2, 1.0, 1.5, 0.8, 1.0])
STIM = ["grating", "dots", "grating", "dots", "dots", "grating", "dots", "grating"]
SIDE = [0, 1, 0, 1, 1, 0, 1, 0]
COHERENCE = [8.0, 16.0, np.nan, 32.0, 8.0, 16.0, 32.0, 8.0]  # NaN: undefined in that trial
ONSET = STARTS + 0.2
CHOICE = STARTS + np.array([0.73, 0.93, np.nan, 0.77, 0.63, 1.13, 0.53, 0.67])  # NaN: no choice


def spike_trains(seed: int = 0) -> list[np.ndarray]:
    """Three units over the whole session, inter-trial intervals included."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.uniform(0, 17.0, 150 + 40 * u)) for u in range(3)]


def new_file(identifier: str = "session-7", subject: str | None = "mouse-7") -> NWBFile:
    return NWBFile(session_description="2AFC evidence accumulation", identifier=identifier,
                   session_start_time=datetime(2024, 5, 1, tzinfo=timezone.utc),
                   subject=None if subject is None else Subject(subject_id=subject,
                                                                species="Mus musculus"))


def add_trials(nwb: NWBFile, starts: np.ndarray = STARTS, stops: np.ndarray = STOPS) -> None:
    nwb.add_trial_column("stimulus", "what was shown")
    nwb.add_trial_column("side", "rewarded side, 0 left 1 right")
    nwb.add_trial_column("coherence", "motion coherence (%)")
    nwb.add_trial_column("stim_on_time", "stimulus onset (s)")
    nwb.add_trial_column("choice_time", "lick onset (s)")
    for i in range(len(starts)):
        nwb.add_trial(start_time=float(starts[i]), stop_time=float(stops[i]), stimulus=STIM[i],
                      side=SIDE[i], coherence=COHERENCE[i], stim_on_time=float(ONSET[i]),
                      choice_time=float(CHOICE[i]))


def write(path: Path, nwb: NWBFile) -> Path:
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture
def nwb_path(tmp_path: Path) -> Path:
    nwb = new_file()
    add_trials(nwb)
    for t in spike_trains():
        nwb.add_unit(spike_times=t)
    return write(tmp_path / "session.nwb", nwb)


def histogram(t0: np.ndarray, t1: np.ndarray, bw: float = BW) -> np.ndarray:
    """Counts [trial, bin, unit] straight from the spike arrays, trial by trial."""
    units = spike_trains()
    n_bins = np.round((t1 - t0) / bw).astype(int)
    out = np.zeros((len(t0), n_bins.max(), len(units)), dtype=np.int64)
    for u, t in enumerate(units):
        for i in range(len(t0)):
            edges = t0[i] + np.arange(n_bins[i] + 1) * bw
            out[i, : n_bins[i], u] = np.histogram(t[(t >= t0[i]) & (t < t1[i])], edges)[0]
    return out


def test_round_trip_counts_tokens_and_variables(nwb_path: Path, tmp_path: Path) -> None:
    with pytest.warns(SpikeWarning, match="outside every trial window"):
        rec = from_nwb(nwb_path, bin_width=BW, task="evidence",
                       tokens={"stim_on_time": "stimulus", "choice_time": "CHOICE"},
                       variables={"side": "side", "coherence": "coherence"})
    ds = rec.site("units")
    np.testing.assert_array_equal(ds["activity"].values, histogram(STARTS, STOPS))
    n_bins = np.round((STOPS - STARTS) / BW).astype(int)
    np.testing.assert_array_equal(ds["valid"].values,
                                  np.arange(15)[None, :] < n_bins[:, None])
    assert rec.system_id == "mouse-7" and rec.task == "evidence"
    assert list(ds["unit"].values) == ["0", "1", "2"]
    assert list(ds["stimulus_id"].values[:2]) == ["trial00000", "trial00001"]
    tok = ds["token"].values
    assert tok[0, 2] == "grating" and tok[1, 2] == "dots"  # onset 0.2 s in: bin 2
    assert tok[0, 7] == "CHOICE" and tok[1, 9] == "CHOICE"  # a literal: no such column
    assert "CHOICE" not in tok[2]  # NaN choice time: no event
    assert tok[0, 10] == "PAD" and tok[0, 0] == ""
    assert list(ds["side"].values[:, 0]) == SIDE
    assert ds["coherence"].values[2, 0] == -1 and ds["coherence"].values[3, 0] == 32
    assert ds["side"].values[0, 10] == -1  # padding
    binned = int(ds["activity"].values.sum())
    assert ds.attrs["n_spikes_outside"] == sum(len(t) for t in spike_trains()) - binned > 0
    assert ds.attrs["nwb_identifier"] == "session-7"

    back = load_recording(save_recording(rec, tmp_path / "mouse7.nc"))
    np.testing.assert_array_equal(back.site("units")["activity"].values, ds["activity"].values)
    np.testing.assert_array_equal(back.site("units")["token"].values, tok)
    assert back.system_id == "mouse-7" and sorted(back.variables("units")) == ["coherence",
                                                                               "side"]


def test_a_file_without_a_subject_saves(tmp_path: Path) -> None:
    """No subject: the recording is named by the file's identifier, and it saves (a missing
    subject id is left out of the attributes, which netCDF cannot hold as None)."""
    nwb = new_file(subject=None)
    add_trials(nwb)
    for t in spike_trains():
        nwb.add_unit(spike_times=t)
    path = write(tmp_path / "no_subject.nwb", nwb)
    with pytest.warns(SpikeWarning):
        rec = from_nwb(path, bin_width=BW)
    assert rec.system_id == "session-7"
    back = load_recording(save_recording(rec, tmp_path / "no_subject.nc"))
    assert back.system_id == "session-7"
    assert "nwb_subject_id" not in back.site("units").attrs
    assert back.site("units").attrs["nwb_identifier"] == "session-7"


def test_align_to_an_event_column_with_a_fixed_window(nwb_path: Path) -> None:
    with pytest.warns(SpikeWarning):
        rec = from_nwb(nwb_path, bin_width=0.05, align_to="stim_on_time", trial_duration=0.6,
                       tokens="stimulus",
                       system_id="m7", rates=True)
    ds = rec.site("units")
    np.testing.assert_allclose(ds["activity"].values, histogram(ONSET, ONSET + 0.6, 0.05) / 0.05)
    assert ds["valid"].values.all() and ds.sizes["time"] == 12
    assert (ds["token"].values[1] == "dots").all()  # a per-trial column: every bin
    assert rec.system_id == "m7" and ds.attrs["align_to"] == "stim_on_time"


def test_outside_error_and_stimulus_id_column(tmp_path: Path) -> None:
    nwb = new_file(subject=None)
    add_trials(nwb)
    for t in spike_trains():
        nwb.add_unit(spike_times=t)
    path = write(tmp_path / "s.nwb", nwb)
    with pytest.raises(RecordingError, match="outside every trial window") as exc:
        from_nwb(path, bin_width=BW, outside="error")
    assert str(path) in str(exc.value)  # the error names the NWB file
    with pytest.raises(RecordingError, match="stimulus ids repeat"):
        from_nwb(path, bin_width=BW, stimulus_ids="stimulus")
    with pytest.warns(SpikeWarning):
        rec = from_nwb(path, bin_width=BW)
    assert rec.system_id == "session-7"  # no subject: the file's identifier


def test_missing_tables_are_named(tmp_path: Path) -> None:
    only_units = new_file()
    only_units.add_unit(spike_times=[0.1, 0.2])
    with pytest.raises(RecordingError, match="no trials table") as exc:
        from_nwb(write(tmp_path / "u.nwb", only_units), bin_width=BW)
    assert exc.value.field == "trials"
    only_trials = new_file()
    add_trials(only_trials)
    with pytest.raises(RecordingError, match="no units table") as exc:
        from_nwb(write(tmp_path / "t.nwb", only_trials), bin_width=BW)
    assert exc.value.field == "units"
    with pytest.raises(RecordingError, match="no units and no trials table"):
        from_nwb(write(tmp_path / "e.nwb", new_file()), bin_width=BW)


def test_overlapping_trials_are_refused(tmp_path: Path) -> None:
    nwb = new_file()
    stops = STOPS.copy()
    stops[3] = STARTS[4] + 0.3  # trial 3 runs into trial 4
    add_trials(nwb, stops=stops)
    nwb.add_unit(spike_times=[1.0])
    with pytest.raises(RecordingError, match="overlap") as exc:
        from_nwb(write(tmp_path / "o.nwb", nwb), bin_width=BW)
    assert "trial id 3" in str(exc.value) and "trial id 4" in str(exc.value)
    assert exc.value.field == "trials"


@pytest.mark.slow
def test_unknown_columns_list_the_columns_that_exist(nwb_path: Path) -> None:
    for kwargs in ({"variables": ["choice"]}, {"tokens": "image"}, {"align_to": "go_cue"},
                   {"tokens": {"go_time": "stimulus"}}, {"stimulus_ids": "image_id"}):
        with pytest.raises(RecordingError, match="the trials table has no column") as exc:
            from_nwb(nwb_path, bin_width=BW, **kwargs)
        assert "start_time, stop_time, stimulus, side, coherence" in str(exc.value)
    with pytest.raises(RecordingError, match="factorize"):
        from_nwb(nwb_path, bin_width=BW, variables={"stim": "stimulus"})


def test_not_an_nwb_file(tmp_path: Path, nwb_path: Path) -> None:
    text = tmp_path / "notes.nwb"
    text.write_text("not hdf5")
    with pytest.raises(RecordingError, match="not an NWB file"):
        from_nwb(text, bin_width=BW)
    with pytest.warns(SpikeWarning):
        rec = from_nwb(nwb_path, bin_width=BW)
    netcdf = save_recording(rec, tmp_path / "rec.nc")  # HDF5, but not NWB
    with pytest.raises(RecordingError, match="not an NWB file") as exc:
        from_nwb(netcdf, bin_width=BW)
    assert str(netcdf) in str(exc.value)
    with pytest.raises(RecordingError, match="no such file"):
        from_nwb(tmp_path / "missing.nwb", bin_width=BW)


@pytest.mark.slow
def test_without_pynwb_the_error_says_what_to_install(nwb_path: Path) -> None:
    """In a real interpreter where pynwb cannot be imported."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["pynwb"] = None  # import pynwb now raises ImportError
        from simbench.errors import SimbenchError
        from simbench.importers import from_nwb
        try:
            from_nwb({str(nwb_path)!r}, bin_width=0.1)
        except SimbenchError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "needs pynwb" in out and "pip install 'simbench[nwb]'" in out
