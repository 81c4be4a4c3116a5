"""Writing small real recordings for the correlative-measure tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simbench.recording import Recording, save_recording, site_dataset


def save(path: Path, system_id: str, activity: np.ndarray, site: str = "hidden") -> Path:
    """Write [stimulus, time, unit] activity as a one-site recording."""
    n_stim, n_time = activity.shape[:2]
    ds = site_dataset(activity, stimulus_ids=[f"s{i:03d}" for i in range(n_stim)], site=site,
                      system_id=system_id, task="counting",
                      tokens=np.full((n_stim, n_time), "x"),
                      valid=np.ones((n_stim, n_time), dtype=bool))
    return save_recording(Recording(system_id, {site: ds}, task="counting"), path)


def write_declared(path: Path, n_stim: int, n_time: int, n_unit: int) -> Path:
    """A schema-shaped recording that *declares* [n_stim, n_time, n_unit] float32 activity but
    writes one stimulus: unwritten chunks take no disk space, so the file stays a few KB."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts({"schema": "simbench-recording/1", "system_id": "huge"})
        g = nc.createGroup("hidden")
        g.setncatts({"schema": "simbench-recording/1", "system_id": "huge", "site": "hidden"})
        g.createDimension("stimulus", n_stim)
        g.createDimension("time", n_time)
        g.createDimension("unit", n_unit)
        act = g.createVariable("activity", "f4", ("stimulus", "time", "unit"),
                               chunksizes=(1, n_time, n_unit), fill_value=np.float32(0))
        act[0] = np.ones((n_time, n_unit), dtype=np.float32)
        ids = g.createVariable("stimulus_id", str, ("stimulus",), chunksizes=(1024,))
        ids[0] = "s0"
        g.variables["activity"].coordinates = "stimulus_id"
    return path
