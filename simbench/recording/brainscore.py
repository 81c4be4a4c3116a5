"""Brain-Score style assemblies (``presentation`` x ``neuroid`` [x ``time_bin``]) as recordings."""

from __future__ import annotations

import numpy as np
import xarray as xr

from simbench.errors import RecordingError
from simbench.recording.schema import Recording, site_dataset
from simbench.recording.validate import validate_site

BRAINSCORE_RENAMING = {"presentation": "stimulus", "neuroid": "unit", "time_bin": "time"}


def from_brainscore(
    assembly: xr.DataArray,
    *,
    system_id: str,
    site: str = "default",
    stimulus_id_coord: str = "stimulus_id",
    task: str | None = None,
) -> Recording:
    """Wrap a Brain-Score style assembly (presentation x neuroid [x time_bin]) as a Recording.

    Renames ``presentation`` -> ``stimulus``, ``neuroid`` -> ``unit``, ``time_bin`` -> ``time``;
    the stimulus ids come from ``stimulus_id_coord`` on the presentation dim. Multi-index
    coordinates are flattened to plain coordinates first.
    """
    da = assembly.reset_index(list(assembly.indexes), drop=False) if assembly.indexes else assembly
    missing = [d for d in ("presentation", "neuroid") if d not in da.dims]
    if missing:
        raise RecordingError(f"assembly lacks dims {missing} (dims: {da.dims})", site=site,
                             field=missing[0])
    da = da.rename({k: v for k, v in BRAINSCORE_RENAMING.items() if k in da.dims})
    order = [d for d in ("stimulus", "time", "unit") if d in da.dims]
    da = da.transpose(*order)
    if stimulus_id_coord not in da.coords:
        raise RecordingError(f"assembly has no '{stimulus_id_coord}' coordinate", site=site,
                             field=stimulus_id_coord,
                             fix="pass stimulus_id_coord= naming the presentation coordinate "
                             "that identifies stimuli")
    ids = np.asarray(da[stimulus_id_coord].values, dtype=str)
    keep = {c: da[c].values for c in da.coords
            if c != stimulus_id_coord and da[c].dims == tuple(d for d in order if d != "unit")}
    ds = site_dataset(np.asarray(da.values, dtype=float), stimulus_ids=ids, site=site,
                      system_id=system_id, variables=keep)
    validate_site(ds, site=site)
    return Recording(system_id=system_id, sites={site: ds}, task=task)
