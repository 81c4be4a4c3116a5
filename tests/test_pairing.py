"""Pairing two systems sample by sample: matched on stimulus id and step, padding dropped,
mismatched stimulus sets refused unless the caller asks for the intersection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_site, rotated_copy, write_recording

from simbench.errors import RecordingError
from simbench.pairing import pair_sites
from simbench.recording import load_recording, site_dataset


def _loaded(tmp_path: Path, *sites: tuple[str, object]) -> list:
    """Save each (name, dataset) and load it back, so errors can name the files."""
    return [load_recording(write_recording(tmp_path / f"{name}.nc", ds)).site("hidden")
            for name, ds in sites]


def test_padding_never_enters_a_measure() -> None:
    a = make_site("a", pad_last=2)  # odd stimuli: last two steps invalid and NaN
    b = rotated_copy(a, "b")
    paired = pair_sites(a, b)
    valid = a["valid"].values
    assert len(paired.x) == valid.sum() == 24 * 5 - 12 * 2
    assert np.isfinite(paired.x).all() and np.isfinite(paired.y).all()
    # every row is a valid (stimulus, step) and carries that step's activity
    assert valid[paired.stimulus, paired.time].all()
    np.testing.assert_array_equal(paired.x, a["activity"].values[paired.stimulus, paired.time])
    assert not ((paired.stimulus % 2 == 1) & (paired.time >= 3)).any()


def test_padding_in_either_system_drops_the_row() -> None:
    a = make_site("a")
    b = make_site("b", seed=1)
    b["valid"][0, 4] = False
    paired = pair_sites(a, b)
    assert len(paired.x) == 24 * 5 - 1
    assert not ((paired.stimulus == 0) & (paired.time == 4)).any()


def test_rows_match_by_stimulus_id_not_position() -> None:
    a = make_site("a")
    b = a.isel(stimulus=np.random.default_rng(0).permutation(24))
    paired = pair_sites(a, b)
    np.testing.assert_array_equal(paired.x, paired.y)
    assert list(paired.stimulus_ids) == list(a["stimulus_id"].values)


def test_static_data_pairs_one_row_per_stimulus() -> None:
    def static(sid: str, ids: list[str]) -> object:
        return site_dataset(np.random.default_rng(0).normal(size=(len(ids), 3)),
                            stimulus_ids=ids, site="out", system_id=sid)

    paired = pair_sites(static("a", list("abcd")), static("b", list("dcba")))
    assert paired.time is None and paired.x.shape == (4, 3)
    np.testing.assert_array_equal(paired.x, paired.y[::-1])


def test_no_shared_stimuli_names_files_site_and_field(tmp_path: Path) -> None:
    a, b = _loaded(tmp_path, ("a", make_site("a")),
                   ("b", make_site("b", ids=[f"t{i}" for i in range(24)])))
    with pytest.raises(RecordingError, match="no shared stimulus ids") as err:
        pair_sites(a, b, intersect=True, names=("a", "b"))
    message = str(err.value)
    assert str(tmp_path / "a.nc") in message and str(tmp_path / "b.nc") in message
    assert "site 'hidden', field 'stimulus_id'" in message


def test_mismatched_stimulus_sets_need_intersect(tmp_path: Path) -> None:
    ids_b = [f"s{i:03d}" for i in range(6, 30)]  # 18 shared, 6 only in each
    a, b = _loaded(tmp_path, ("a", make_site("a")), ("b", make_site("b", ids=ids_b)))
    with pytest.raises(RecordingError, match=r"6 only in a, 6 only in b, 18 shared") as err:
        pair_sites(a, b, names=("a", "b"))
    assert "--intersect" in str(err.value) and "field 'stimulus_id'" in str(err.value)
    assert str(tmp_path / "b.nc") in str(err.value)
    paired = pair_sites(a, b, intersect=True)
    assert paired.n_stimuli == 18 and len(paired.x) == 18 * 5
    assert set(paired.stimulus_ids) == {f"s{i:03d}" for i in range(6, 24)}


def test_different_tokens_mean_different_stimuli(tmp_path: Path) -> None:
    b = make_site("b")
    b["token"][2, 1] = "y"
    a, b = _loaded(tmp_path, ("a", make_site("a")), ("b", b))
    with pytest.raises(RecordingError, match=r"'s002' has different tokens at step 1") as err:
        pair_sites(a, b)
    assert "site 'hidden', field 'token'" in str(err.value)


def test_time_against_static_is_refused() -> None:
    static = site_dataset(np.zeros((24, 6)), stimulus_ids=[f"s{i:03d}" for i in range(24)],
                          site="hidden", system_id="b")
    with pytest.raises(RecordingError, match="time dim"):
        pair_sites(make_site("a"), static)


def test_dtype_is_honoured() -> None:
    a = make_site("a")
    assert pair_sites(a, a, dtype=np.float32).x.dtype == np.float32


def test_aligned_recordings_are_paired_without_a_copy(tmp_path: Path) -> None:
    """Same stimuli in the same order, no padding: the rows are views of the loaded arrays,
    in their stored dtype, and read-only (a measure cannot write into a recording)."""
    a32, b32 = (make_site(s, seed=i) for i, s in enumerate("ab"))
    for ds in (a32, b32):
        ds["activity"] = ds["activity"].astype(np.float32)
    a, b = _loaded(tmp_path, ("a", a32), ("b", b32))
    paired = pair_sites(a, b)
    assert paired.x.dtype == np.float32 and paired.x.shape == (24 * 5, 6)
    assert np.shares_memory(paired.x, a["activity"].values)
    assert np.shares_memory(paired.y, b["activity"].values)
    with pytest.raises(ValueError, match="read-only"):
        paired.x[0, 0] = 1.0
    np.testing.assert_array_equal(paired.x, a["activity"].values.reshape(-1, 6))


def test_reordered_or_padded_stimuli_are_gathered_once_in_the_stored_dtype() -> None:
    a = make_site("a", pad_last=2)
    a["activity"] = a["activity"].astype(np.float32)
    b = a.isel(stimulus=np.random.default_rng(0).permutation(24))
    paired = pair_sites(a, b)
    assert paired.x.dtype == paired.y.dtype == np.float32
    assert not np.shares_memory(paired.y, b["activity"].values)
    np.testing.assert_array_equal(paired.x, paired.y)
    np.testing.assert_array_equal(paired.x, a["activity"].values[paired.stimulus, paired.time])
    ints = make_site("c")
    ints["activity"] = (ints["activity"] * 10).astype(np.int16)
    assert pair_sites(ints, ints).x.dtype == np.float64  # numbers that are not floats
