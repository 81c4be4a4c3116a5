"""Checking a recording against the schema: every problem named with its site and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from simbench.errors import RecordingError, SimbenchError
from simbench.recording.schema import ACTIVITY, SCHEMA


def site_problems(ds: xr.Dataset, *, scan_values: bool = True) -> list[tuple[str, str]]:
    """Every schema problem of one site dataset, as (field, explanation) pairs.

    ``scan_values`` False skips the NaN/Inf scan of the activity (a site opened by
    :func:`open_recording` checks each block of rows as it is read instead).
    """
    problems: list[tuple[str, str]] = []
    if ACTIVITY not in ds.data_vars:
        found = ", ".join(map(str, ds.data_vars)) or "none"
        return [(ACTIVITY, f"no data variable 'activity' (found: {found}); name the activity "
                 "array 'activity'")]
    act = ds[ACTIVITY]
    for dim in ("stimulus", "unit"):
        if dim not in act.dims:
            problems.append((dim, f"'activity' has no '{dim}' dim (dims: {act.dims}); expected "
                             "(stimulus, time, unit) or (stimulus, unit)"))
    extra = [d for d in act.dims if d not in ("stimulus", "time", "unit")]
    if extra:
        problems.append(("activity", f"unexpected dims {extra}; Brain-Score assemblies load "
                         "through simbench.recording.from_brainscore"))
    if problems:
        return problems
    if not np.issubdtype(act.dtype, np.number):
        problems.append((ACTIVITY, f"activity has dtype {act.dtype}, expected numbers"))
    elif scan_values:
        valid = ds["valid"].values if "valid" in ds.coords else None
        n_bad, first = non_finite(act.values, valid)
        if n_bad:
            problems.append((ACTIVITY, f"{n_bad} NaN/Inf values (first at index {first}); "
                             "remove them or mark the steps invalid"))
    if "stimulus_id" not in ds.coords:
        problems.append(("stimulus_id", "no 'stimulus_id' coordinate on the stimulus dim"))
    else:
        ids = ds["stimulus_id"].values
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            dup = [str(u) for u in uniq[counts > 1][:3]]
            problems.append(("stimulus_id", f"{int((counts > 1).sum())} duplicate stimulus ids, "
                             f"e.g. {dup}; every stimulus needs a unique id"))
    step_dims = tuple(d for d in act.dims if d != "unit")
    for name in ds.coords:
        coord = ds[name]
        if name in ds.dims or name == "stimulus_id":
            continue
        if coord.dims != step_dims:
            problems.append((str(name), f"coordinate has dims {coord.dims}, expected {step_dims}"))
    if "token" in ds.coords and ds["token"].dtype.kind != "U":
        problems.append(("token", f"'token' must hold the input tokens as strings (the task's "
                         f"token names, e.g. 'A' or '<eos>'), got {ds['token'].dtype}; integer "
                         "token ids do not say which vocabulary they index"))
    if "valid" in ds.coords and ds["valid"].dtype != bool:
        problems.append(("valid", f"'valid' must be bool, got {ds['valid'].dtype}"))
    return problems


def non_finite(values: np.ndarray, valid: np.ndarray | None
               ) -> tuple[int, tuple[int, ...] | None]:
    """How many entries are NaN/Inf where ``valid``, and the first one's index.

    Checked a block of stimuli at a time, so the mask never costs more than a block.
    """
    if values.ndim == 0 or values.shape[0] == 0:
        return 0, None
    per_stim = max(1, values[0].size)
    step = max(1, (1 << 24) // per_stim)
    use_valid = valid is not None and valid.shape == values.shape[:-1]
    total, first = 0, None
    for lo in range(0, values.shape[0], step):
        bad = ~np.isfinite(values[lo:lo + step])
        if use_valid:
            bad &= valid[lo:lo + step, ..., None]
        count = int(bad.sum())
        if count and first is None:
            where = np.argwhere(bad)[0]
            first = (int(where[0]) + lo, *(int(i) for i in where[1:]))
        total += count
    return total, first


def validate_site(ds: xr.Dataset, *, file: object = None, site: str | None = None,
                  scan_values: bool = True) -> None:
    """Raise a RecordingError listing every problem of one site dataset."""
    problems = site_problems(ds, scan_values=scan_values)
    if problems:
        field = problems[0][0]
        # The error names ``field`` already: repeat a field name only for the other problems.
        detail = "; ".join(p if f == field else f"{f}: {p}" for f, p in problems)
        raise RecordingError(detail, file=file, site=site, field=field,
                             fix="see `simbench validate FILE` and the README's schema section")


def recording_problems(path: str | Path) -> list[str]:
    """Every problem of a recording file, one sentence each (empty when it is valid)."""
    from simbench.recording.io import declared_schema, load_recording

    try:
        rec = load_recording(path, validate=False)
    except SimbenchError as exc:  # e.g. a RecordingError, or a pickled checkpoint refused
        return [str(exc)]
    out = []
    declared = declared_schema(path)
    if declared is not None and declared != SCHEMA:
        out.append(f"file {path}, field 'schema': root attribute schema = {declared!r}, "
                   f"expected {SCHEMA!r} (or no schema attribute)")
    if not rec.sites:
        out.append(f"file {path}: no site groups; each site is a group holding 'activity'")
    for name, ds in rec.sites.items():
        out.extend(f"file {path}, site '{name}', field '{f}': {p}" for f, p in site_problems(ds))
    return out
