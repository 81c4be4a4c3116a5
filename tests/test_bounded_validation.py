"""Validation and loading in bounded memory, whatever a file declares.

A netCDF file can declare far more data than it holds: unwritten chunks take no disk space, so
an 8 KB file may declare 10 GB of ``activity``. `simbench validate` never holds the activity:
what the file never wrote is found from its chunk index, the rest is checked a block at a time.
Each check runs `simbench` in a fresh process and reads that process's own peak resident memory
(VmHWM) from /proc.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from simbench.errors import RecordingError
from simbench.recording import load_recording, open_recording, recording_problems

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads the peak from /proc (Linux)")

GB = 1.5 * 2**30  # the bound: validating any file peaks under 1.5 GB


def declared_only(path: Path, n_stim: int, n_time: int, n_unit: int, *,
                  chunked: bool = True, write_rows: int = 0) -> Path:
    """A schema-shaped file declaring [n_stim, n_time, n_unit] float32 activity, written with
    netCDF4 without writing the activity (or only its first ``write_rows`` stimuli); the
    stimulus ids are written. A few KB on disk."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts({"schema": "simbench-recording/1", "system_id": "declared"})
        g = nc.createGroup("hidden")
        g.createDimension("stimulus", n_stim)
        g.createDimension("time", n_time)
        g.createDimension("unit", n_unit)
        kw = {"chunksizes": (1, n_time, n_unit)} if chunked else {"contiguous": True}
        act = g.createVariable("activity", "f4", ("stimulus", "time", "unit"), **kw)
        if write_rows:
            act[:write_rows] = np.ones((write_rows, n_time, n_unit), dtype=np.float32)
        ids = g.createVariable("stimulus_id", str, ("stimulus",))
        ids[:] = np.array([f"s{i}" for i in range(n_stim)], dtype=object)
        act.coordinates = "stimulus_id"
    return path


def run_measured(code: str, memory_mb: int | None = None) -> tuple[int, str, float, float]:
    """Run Python ``code`` in a fresh process: (return code, output, peak MiB, seconds)."""
    env = dict(os.environ)
    if memory_mb is not None:
        env["SIMBENCH_MEMORY_MB"] = str(memory_mb)
    code += ("\nimport re as _re\nprint('MAXRSS_KB', _re.search(r'VmHWM:\\s+(\\d+)', "
             "open('/proc/self/status').read()).group(1), flush=True)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    seconds = time.perf_counter() - start
    text = out.stdout + out.stderr
    peak = int(re.search(r"MAXRSS_KB (\d+)", text).group(1)) / 1024
    rc = int(re.search(r"RC (\d+)", text).group(1)) if "RC " in text else out.returncode
    return rc, text, peak, seconds


def validate_cli(path: Path, memory_mb: int | None = None) -> tuple[int, str, float, float]:
    return run_measured("from simbench.cli import main\n"
                        f"print('RC', main(['validate', {str(path)!r}]), flush=True)", memory_mb)


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "contiguous"])
def test_validating_a_10_gb_declaration_holds_no_activity(tmp_path: Path, chunked: bool) -> None:
    """100,000 x 100 x 256 float32 (9.5 GiB) declared, never written, in a file of a few KB:
    `simbench validate` says so, under a small SIMBENCH_MEMORY_MB, peaking far under 1.5 GB
    (it took 22.6 GB and 91 s when the file was read whole)."""
    path = declared_only(tmp_path / "big.nc", 100_000, 100, 256, chunked=chunked)
    assert path.stat().st_size < 10_000_000  # the 100,000 stimulus ids; no activity
    rc, out, peak, seconds = validate_cli(path, memory_mb=512)
    assert rc == 1, out
    assert ("'activity' [stimulus=100,000, time=100, unit=256] float32 (9.5 GiB declared) was "
            "declared but never written: the file holds no data for it") in out
    assert peak * 2**20 < GB, out
    assert seconds < 60, out  # interpreter start and imports, mostly


@pytest.mark.slow
def test_a_partly_written_declaration_is_counted_by_stimulus(tmp_path: Path) -> None:
    """First 3 of 20,000 stimuli written: the others are named as never written; the written
    rows are checked (all finite), and loading refuses before reading any activity."""
    path = declared_only(tmp_path / "part.nc", 20_000, 50, 256, write_rows=3)  # 977 MiB
    with netCDF4.Dataset(path, "a") as nc:
        nc["hidden"].variables["activity"][1, 2, 3] = np.inf
    problems = recording_problems(path)
    assert len(problems) == 2, problems
    assert "1 NaN/Inf values (first at index (1, 2, 3))" in problems[1]
    assert ("activity of 19,997 of 20,000 stimuli (first: 's3', index 3) was declared but never "
            "written") in problems[0]
    _, out, peak, _ = run_measured(
        "from simbench.recording import load_recording\n"
        f"try:\n    load_recording({str(path)!r})\nexcept Exception as exc:\n    print(exc)\n",
        memory_mb=8192)
    assert "was declared but never written" in out and "see `simbench validate FILE`" in out
    assert peak < 600, out  # the 977 MiB were never allocated
    with pytest.raises(RecordingError, match="never written"):
        open_recording(path)


def test_stimuli_marked_invalid_may_be_unwritten(tmp_path: Path) -> None:
    path = declared_only(tmp_path / "pad.nc", 40, 5, 8, write_rows=10)
    with netCDF4.Dataset(path, "a") as nc:
        v = nc["hidden"].createVariable("valid", "u1", ("stimulus", "time"))
        v[:] = np.repeat(np.arange(40) < 10, 5).reshape(40, 5).astype(np.uint8)
        v.setncattr("dtype", "bool")  # xarray's marker: read back as bool
        nc["hidden"].variables["activity"].coordinates = "stimulus_id valid"
    assert recording_problems(path) == []
    rec = load_recording(path)
    assert np.isfinite(rec.site("hidden")["activity"].values[:10]).all()


def test_fill_values_in_written_data_are_named(tmp_path: Path) -> None:
    """A variable written whole with its fill value, and one with a few fill values: both
    named, found by the block scan (the chunk index says they were written)."""
    path = declared_only(tmp_path / "f.nc", 30, 4, 6, write_rows=30)
    with netCDF4.Dataset(path, "a") as nc:
        act = nc["hidden"].variables["activity"]
        act.set_auto_mask(False)
        fill = act.get_fill_value()
        act[2, 1, :3] = fill
    problems = recording_problems(path)
    assert len(problems) == 1 and "3 values equal the fill value" in problems[0]
    assert "(first at index (2, 1, 0))" in problems[0]
    with netCDF4.Dataset(path, "a") as nc:
        act = nc["hidden"].variables["activity"]
        act.set_auto_mask(False)
        act[:] = np.full((30, 4, 6), fill, dtype=np.float32)
    problems = recording_problems(path)
    assert len(problems) == 1 and "every value of 'activity' is its fill value" in problems[0]


def test_loading_reads_blocks_into_one_array(tmp_path: Path) -> None:
    """A real file loads to the same values through the block reader as through xarray, NaN
    for fill values included."""
    import xarray as xr

    path = declared_only(tmp_path / "r.nc", 300, 7, 11, write_rows=300)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 7, 11)).astype(np.float32)
    with netCDF4.Dataset(path, "a") as nc:
        nc["hidden"].variables["activity"][:] = values
    got = load_recording(path, validate=False).site("hidden")["activity"]
    want = xr.open_dataset(path, group="hidden", engine="netcdf4")["activity"].values
    assert got.dtype == np.float32 and np.array_equal(got.values, want)
    from simbench.recording.lazy import read_whole

    blocked = read_whole(path, "hidden", (300, 7, 11), np.dtype(np.float32))
    small = np.empty_like(blocked)
    from simbench.recording.lazy import activity_blocks

    with netCDF4.Dataset(path) as nc:  # 2-row blocks, and blocks within a row
        var = nc["hidden"].variables["activity"]
        for idx in activity_blocks((300, 7, 11), 4, block_bytes=2 * 7 * 11 * 4):
            small[idx] = var[idx]
        assert len(list(activity_blocks((300, 7, 11), 4, block_bytes=3 * 11 * 4))) == 300 * 3
        for idx in activity_blocks((300, 7, 11), 4, block_bytes=3 * 11 * 4):
            small[idx] = var[idx]
    assert np.array_equal(blocked, small) and np.array_equal(blocked, want)


@pytest.mark.slow
def test_validating_a_real_gigabyte_holds_a_block(tmp_path: Path) -> None:
    """A real 1 GB recording (random float32, one NaN at a valid step): validation finds the
    NaN, peaking at a fraction of the file's size."""
    path = declared_only(tmp_path / "real.nc", 4096, 256, 256)  # 1.0 GiB
    with netCDF4.Dataset(path, "a") as nc:
        act = nc["hidden"].variables["activity"]
        rng = np.random.default_rng(0)
        for lo in range(0, 4096, 256):
            block = rng.normal(size=(256, 256, 256)).astype(np.float32)
            if lo == 2048:
                block[7, 3, 5] = np.nan
            act[lo:lo + 256] = block
    assert path.stat().st_size > 2**30
    rc, out, peak, seconds = validate_cli(path)
    assert rc == 1 and "1 NaN/Inf values (first at index (2055, 3, 5))" in out, out
    assert peak < 600, out  # the file is 1,024 MiB
    print(f"validate 1 GiB: peak {peak:.0f} MiB, {seconds:.1f} s")


def test_a_coordinate_declared_but_never_written_is_named(tmp_path: Path) -> None:
    path = declared_only(tmp_path / "c.nc", 30, 4, 6, write_rows=30)
    with netCDF4.Dataset(path, "a") as nc:
        g = nc["hidden"]
        g.createVariable("count", "i8", ("stimulus", "time"), chunksizes=(30, 4))
        g.variables["activity"].coordinates = "stimulus_id count"
    problems = recording_problems(path)
    assert len(problems) == 1, problems
    assert ("site 'hidden', field 'count': 'count' was declared but never written: the file "
            "holds no data for it") in problems[0]
