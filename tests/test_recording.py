"""The recording schema on real netCDF files: exact round trips, Brain-Score renaming, and
one test per kind of bad input, each a ``SimbenchError`` that names the file, site and field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import make_site, write_raw, write_recording
from recording_helpers import write_declared

from simbench.errors import RecordingError, SimbenchError, SiteError
from simbench.recording import (
    SCHEMA,
    Recording,
    from_brainscore,
    load_recording,
    recording_problems,
    save_recording,
    site_dataset,
)


def assert_names(err: SimbenchError, path: Path, site: str | None, field: str | None) -> None:
    """The rendered message says where the problem is: file, site and field."""
    message = str(err)
    assert str(path) in message
    if site is not None:
        assert f"site '{site}'" in message
    if field is not None:
        assert f"field '{field}'" in message


# ---- round trips --------------------------------------------------------------------------
def test_round_trip_is_exact(tmp_path: Path) -> None:
    hidden = make_site("net", pad_last=2)
    embed = make_site("net", site="embedding", n_unit=3, seed=5)
    rec = Recording("net", {"hidden": hidden, "embedding": embed}, task="counting",
                    attrs={"seed": 7, "source": "unit test"})
    path = save_recording(rec, tmp_path / "net.nc")
    back = load_recording(path)
    assert back.system_id == "net" and back.task == "counting"
    assert back.attrs == {"seed": 7, "source": "unit test"}
    assert set(back.sites) == {"hidden", "embedding"}
    for name in rec.sites:
        xr.testing.assert_identical(back.sites[name], rec.sites[name])
    assert back.sites["hidden"]["token"].dtype.kind == "U"  # strings come back as str
    assert back.variables("hidden") == ["count"]


def test_static_site_round_trips(tmp_path: Path) -> None:
    ds = site_dataset(np.arange(12.0).reshape(4, 3), stimulus_ids=list("abcd"), site="out",
                      system_id="s")
    back = load_recording(save_recording(Recording("s", {"out": ds}), tmp_path / "s.nc"))
    xr.testing.assert_identical(back.site("out"), ds)
    assert back.site("out")["activity"].dims == ("stimulus", "unit")


def test_save_refuses_invalid_data_and_writes_nothing(tmp_path: Path) -> None:
    ds = make_site("a")
    ds["activity"][0, 0, 0] = np.nan
    target = tmp_path / "a.nc"
    with pytest.raises(RecordingError) as err:
        save_recording(Recording("a", {"hidden": ds}), target)
    assert_names(err.value, target, "hidden", "activity")
    assert not target.exists() and not list(tmp_path.iterdir())


def test_flat_single_site_file_loads(tmp_path: Path) -> None:
    ds = make_site("flat")
    path = tmp_path / "flat.nc"
    ds.to_netcdf(path, engine="netcdf4")
    rec = load_recording(path)
    assert list(rec.sites) == ["hidden"]  # named by the dataset's `site` attr
    np.testing.assert_array_equal(rec.site("hidden")["activity"].values, ds["activity"].values)


# ---- Brain-Score ---------------------------------------------------------------------------
def _assembly(with_time: bool = True) -> xr.DataArray:
    """A Brain-Score style NeuroidAssembly: MultiIndex presentation and neuroid coordinates."""
    pres = pd.MultiIndex.from_arrays(
        [[f"img{i}" for i in range(8)], ["cat", "dog"] * 4], names=["stimulus_id", "object_name"])
    neu = pd.MultiIndex.from_arrays([[f"n{i}" for i in range(5)], ["IT"] * 5],
                                    names=["neuroid_id", "region"])
    coords = xr.Coordinates.from_pandas_multiindex(pres, "presentation").merge(
        xr.Coordinates.from_pandas_multiindex(neu, "neuroid"))
    dims: tuple[str, ...] = ("presentation", "neuroid")
    shape: tuple[int, ...] = (8, 5)
    if with_time:
        tb = pd.MultiIndex.from_arrays([[70, 90, 110], [90, 110, 130]],
                                       names=["time_bin_start", "time_bin_end"])
        coords = coords.merge(xr.Coordinates.from_pandas_multiindex(tb, "time_bin"))
        dims, shape = (*dims, "time_bin"), (*shape, 3)
    data = np.random.default_rng(0).normal(size=shape)
    return xr.DataArray(data, dims=dims, coords=coords.coords)


def test_brainscore_assembly_is_renamed_and_round_trips(tmp_path: Path) -> None:
    assembly = _assembly()
    rec = from_brainscore(assembly, system_id="monkey", site="IT")
    ds = rec.site("IT")
    assert ds["activity"].dims == ("stimulus", "time", "unit")
    assert list(ds["stimulus_id"].values) == [f"img{i}" for i in range(8)]
    # presentation x neuroid x time_bin -> stimulus x time x unit, values unchanged
    np.testing.assert_array_equal(ds["activity"].values,
                                  assembly.transpose("presentation", "time_bin", "neuroid").values)
    back = load_recording(save_recording(rec, tmp_path / "monkey.nc"))
    xr.testing.assert_identical(back.site("IT"), ds)


def test_static_brainscore_assembly_keeps_presentation_metadata() -> None:
    ds = from_brainscore(_assembly(with_time=False), system_id="monkey", site="IT").site("IT")
    assert ds["activity"].dims == ("stimulus", "unit")
    assert list(ds["object_name"].values[:2]) == ["cat", "dog"]


def test_brainscore_without_stimulus_ids_names_the_field() -> None:
    assembly = _assembly().rename(stimulus_id="image_id")
    with pytest.raises(RecordingError, match=r"site 'IT', field 'stimulus_id'"):
        from_brainscore(assembly, system_id="monkey", site="IT")
    ds = from_brainscore(assembly, system_id="monkey", site="IT", stimulus_id_coord="image_id")
    assert ds.site("IT").sizes["stimulus"] == 8


# ---- bad input, one test each --------------------------------------------------------------
def test_not_a_netcdf_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.nc"
    path.write_text("stimulus,unit,value\n")
    with pytest.raises(RecordingError, match="not a netCDF file") as err:
        load_recording(path)
    assert_names(err.value, path, None, None)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no such file"):
        load_recording(tmp_path / "absent.nc")


def test_truncated_file(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "a.nc", make_site("a"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match="truncated or corrupt") as err:
        load_recording(path)
    assert_names(err.value, path, None, None)


def test_missing_activity(tmp_path: Path) -> None:
    ds = make_site("a").rename(activity="rates")
    path = write_raw(tmp_path / "a.nc", {"hidden": ds})
    with pytest.raises(RecordingError, match=r"no data variable 'activity'.*found: rates") as err:
        load_recording(path)
    assert_names(err.value, path, "hidden", "activity")


def test_missing_required_dim(tmp_path: Path) -> None:
    ds = make_site("a").rename(unit="neuron")
    path = write_raw(tmp_path / "a.nc", {"hidden": ds})
    with pytest.raises(RecordingError, match="no 'unit' dim") as err:
        load_recording(path)
    assert_names(err.value, path, "hidden", "unit")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path: Path, bad: float) -> None:
    ds = make_site("a")
    ds["activity"][3, 2, 1] = bad
    path = write_raw(tmp_path / "a.nc", {"hidden": ds})
    with pytest.raises(RecordingError, match=r"1 NaN/Inf values \(first at index \(3, 2, 1\)\)") as err:
        load_recording(path)
    assert_names(err.value, path, "hidden", "activity")


def test_nan_in_padding_is_allowed(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "a.nc", make_site("a", pad_last=2))
    assert np.isnan(load_recording(path).site("hidden")["activity"].values).any()


def test_duplicate_stimulus_ids(tmp_path: Path) -> None:
    ids = [f"s{i:03d}" for i in range(24)]
    ids[5] = ids[9] = "s_twice"
    path = write_raw(tmp_path / "a.nc", {"hidden": make_site("a", ids=ids)})
    with pytest.raises(RecordingError, match=r"1 duplicate stimulus ids, e.g. \['s_twice'\]") as err:
        load_recording(path)
    assert_names(err.value, path, "hidden", "stimulus_id")


def test_coordinate_on_wrong_dims(tmp_path: Path) -> None:
    ds = make_site("a")
    ds = ds.assign_coords(count=("stimulus", np.arange(ds.sizes["stimulus"])))
    path = write_raw(tmp_path / "a.nc", {"hidden": ds})
    with pytest.raises(RecordingError, match="expected \\('stimulus', 'time'\\)") as err:
        load_recording(path)
    assert_names(err.value, path, "hidden", "count")


def test_no_site_groups(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "empty.nc", {})
    with pytest.raises(RecordingError, match="no site groups") as err:
        load_recording(path)
    assert_names(err.value, path, None, "activity")


def test_site_that_does_not_exist_lists_the_ones_that_do(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "a.nc", make_site("a"), make_site("a", site="embedding"))
    with pytest.raises(SiteError) as err:
        load_recording(path).site("hiden")
    assert_names(err.value, path, "hiden", None)
    assert "sites in this recording: embedding, hidden" in str(err.value)


def test_problems_are_all_listed_without_raising(tmp_path: Path) -> None:
    ids = ["x"] * 24
    ds = make_site("a", ids=ids)
    ds["activity"][0, 0, 0] = np.inf
    path = write_raw(tmp_path / "a.nc", {"hidden": ds})
    problems = recording_problems(path)
    assert len(problems) == 2
    assert all(p.startswith(f"file {path}, site 'hidden', field ") for p in problems)
    assert recording_problems(write_recording(tmp_path / "ok.nc", make_site("a"))) == []


def test_schema_attrs_are_written(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "a.nc", make_site("a"))
    tree = xr.open_datatree(path, engine="netcdf4")
    assert tree.attrs["schema"] == SCHEMA and tree.attrs["system_id"] == "a"
    assert tree["hidden"].attrs["site"] == "hidden"
    tree.close()


def test_docs_schema_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recordings guide's "write a recording from arrays" snippet works as printed."""
    page = (Path(__file__).parents[1] / "docs" / "guide" / "recordings.md").read_text()
    section = page.split("## Writing a recording from arrays", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "recordings.md", "exec"), {})
    rec = load_recording(tmp_path / "my_gru.nc")
    assert rec.site("hidden")["activity"].shape == (100, 8, 32)
    assert rec.variables("hidden") == ["count"]


# ---- declared sizes: refused before any data is read ---------------------------------------
def test_a_huge_declared_dimension_is_refused_before_reading(tmp_path: Path) -> None:
    """A 51 KB file that declares 3.7 TiB of activity: a RecordingError in well under a second,
    naming the declared size and the variable, from load_recording and from validate."""
    import time

    path = write_declared(tmp_path / "huge.nc", 10**9, 10, 100)
    assert path.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(RecordingError, match=r"declares 3\.7 TiB of data") as err:
        load_recording(path)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "'/hidden/activity' [stimulus=1,000,000,000, time=10, unit=100] float32" in message
    assert "nothing was read" in message and "ncdump -h" in message
    assert_names(err.value, path, None, "activity")
    problems = recording_problems(path)
    assert len(problems) == 1 and "declares 3.7 TiB" in problems[0]


@pytest.mark.slow
def test_the_memory_check_bounds_a_real_process(tmp_path: Path) -> None:
    """`load_recording` of a file declaring 800 MB, in a process told it has 256 MB: refused
    before reading, and the process never holds the data (peak RSS well under 800 MB).
    (`simbench validate` of such files: tests/test_bounded_validation.py.)"""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the peak from /proc (Linux)")
    import subprocess
    import sys

    path = write_declared(tmp_path / "mid.nc", 200_000, 10, 100)  # 800 MB of float32
    # VmHWM: this process's own peak (ru_maxrss would include the parent's at fork time)
    code = ("import re; from simbench.recording import load_recording\n"
            f"try:\n    load_recording({str(path)!r})\nexcept Exception as exc:\n"
            "    print(exc)\nprint('MAXRSS_KB', re.search(r'VmHWM:\\s+(\\d+)', "
            "open('/proc/self/status').read()).group(1))")
    env = {**__import__("os").environ, "SIMBENCH_MEMORY_MB": "256"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "declares 775.1 MiB of data" in out.stdout and "192.0 MiB it may use" in out.stdout
    peak_mb = int(out.stdout.split("MAXRSS_KB")[1].split()[0]) / 1024
    assert peak_mb < 500, out.stdout  # imports only; the data would be 800 MB


def test_the_memory_check_passes_ordinary_files(tmp_path: Path, monkeypatch) -> None:
    path = write_recording(tmp_path / "a.nc", make_site("a"))
    from simbench.recording import declared_variables

    sizes = {name: nbytes for name, _, _, nbytes in declared_variables(path)}
    assert sizes["/hidden/activity"] == 24 * 5 * 6 * 8  # float64 [stimulus, time, unit]
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", "1")  # 786 KB may be used; the file needs ~10 KB
    assert load_recording(path).site("hidden").sizes["stimulus"] == 24
    monkeypatch.setenv("SIMBENCH_MEMORY_MB", "lots")
    with pytest.raises(RecordingError, match="SIMBENCH_MEMORY_MB='lots' is not a number"):
        load_recording(path)


def test_a_pickled_checkpoint_passed_as_a_recording_says_so(tmp_path: Path) -> None:
    import pickle

    import simbench

    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    for call in (lambda: load_recording(path),
                 lambda: simbench.score("cka", path, path, site="hidden")):
        with pytest.raises(SimbenchError, match="pickled checkpoints") as err:
            call()
        message = str(err.value)
        assert str(path) in message and "not a netCDF" not in message
        assert "safetensors.torch.save_file" in message and "weights_only=True" in message
    assert "pickled checkpoints" in recording_problems(path)[0]
