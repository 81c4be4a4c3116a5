"""Checking a recording's sites: the schema (every problem named with its field), and the
activity in the file, from its chunk index (what was never written) and a block at a time
(NaN/Inf and fill values), so a check holds one block whatever the file declares.

The file-level list, :func:`simbench.recording.recording_problems`, is in
:mod:`simbench.recording.io`, which opens the file.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from simbench.errors import RecordingError
from simbench.recording.lazy import GROUP, activity_blocks, written_rows
from simbench.recording.memory import format_size
from simbench.recording.schema import ACTIVITY


def site_problems(ds: xr.Dataset, *, scan_values: bool = True) -> list[tuple[str, str]]:
    """Every schema problem of one site dataset, as (field, explanation) pairs.

    ``scan_values`` False skips the NaN/Inf scan of the activity (a site opened by
    :func:`open_recording` checks each block of rows as it is read instead).
    """
    if ACTIVITY not in ds.data_vars:
        found = ", ".join(map(str, ds.data_vars)) or "none"
        return [(ACTIVITY, f"no data variable 'activity' (found: {found}); name the activity "
                 "array 'activity'")]
    act = ds[ACTIVITY]
    problems = [(dim, f"'activity' has no '{dim}' dim (dims: {act.dims}); expected (stimulus, "
                 "time, unit) or (stimulus, unit)") for dim in ("stimulus", "unit")
                if dim not in act.dims]
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
    problems += [(str(name), f"coordinate has dims {coord.dims}, expected {step_dims}")
                 for name, coord in ds.coords.items()
                 if name not in ds.dims and name != "stimulus_id" and coord.dims != step_dims]
    if "token" in ds.coords and ds["token"].dtype.kind not in "Uiu":
        # integer codes load with a TokenCodesWarning (see simbench.recording.tokens)
        problems.append(("token", f"'token' must hold the input tokens as strings (the task's "
                         f"token names, e.g. 'A' or '<eos>'), got {ds['token'].dtype}"))
    if "valid" in ds.coords and ds["valid"].dtype != bool:
        problems.append(("valid", f"'valid' must be bool, got {ds['valid'].dtype}"))
    return problems


def non_finite(values: np.ndarray, valid: np.ndarray | None
               ) -> tuple[int, tuple[int, ...] | None]:
    """How many entries are NaN/Inf where ``valid``, and the first one's index.

    Checked a block of 2**24 entries at a time, so the mask never costs more than a block.
    """
    use_valid = valid is not None and valid.shape == values.shape[:-1]
    total, first = 0, None
    for idx in activity_blocks(values.shape, 1, 1 << 24):
        bad = ~np.isfinite(values[idx])
        if use_valid:
            bad &= valid[idx][..., None]
        count = int(bad.sum())
        if count and first is None:
            first = _index(bad, idx)
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
                             fix="`simbench check-recording FILE` lists every problem; the schema "
                             "is in the documentation's guide, 'Recordings and importers'")


def _valid_rows(ds: xr.Dataset) -> np.ndarray | None:
    """``valid`` as [stimulus, steps] bool when the site has a usable one, else None."""
    act, valid = ds[ACTIVITY], ds.coords.get("valid")
    step_dims = tuple(d for d in act.dims if d != "unit")
    if valid is None or valid.dtype != bool or valid.dims != step_dims:
        return None
    return np.asarray(valid.values).reshape(act.shape[0], -1)


def unwritten_problems(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The stimuli whose activity a site's file declares but never wrote, from the file's chunk
    index (milliseconds, no value read; see :func:`simbench.recording.lazy.written_rows`).

    Such rows read as the fill value: NaN to xarray, so reading them to find that out would
    cost the declared size (and, decoded, more). Stimuli whose every step is invalid may be
    unwritten. Empty for a site not opened from a file, or a file that cannot say.
    """
    source = ds.encoding.get("source")
    if source is None:
        return []
    act = ds[ACTIVITY]
    if act.ndim == 0 or act.shape[0] == 0:
        return []
    rows = written_rows(source, ds.encoding.get(GROUP), act.shape[0])
    if rows is None or rows.all():
        return []
    valid = _valid_rows(ds)
    missing = ~rows if valid is None else ~rows & valid.any(axis=1)
    n = int(missing.sum())
    if not n:
        return []
    shape = ", ".join(f"{d}={n:,}" for d, n in act.sizes.items())
    declared = format_size(act.size * act.dtype.itemsize)
    if not rows.any():
        text = (f"'activity' [{shape}] {act.dtype} ({declared} declared) was declared but never "
                "written: the file holds no data for it, only its fill value")
    else:
        first = int(np.argmax(missing))
        ids = ds["stimulus_id"].values if "stimulus_id" in ds.coords else None
        name = f"'{ids[first]}', index {first}" if ids is not None else f"index {first}"
        text = (f"activity of {n:,} of {act.shape[0]:,} stimuli (first: {name}) was declared "
                "but never written: the file holds no data for them, only the fill value")
    return [(ACTIVITY, text + "; write the activity, or leave those stimuli out of the file")]


def scanned_problems(ds: xr.Dataset) -> list[tuple[str, str]]:
    """NaN/Inf and fill values in a site's activity where ``valid``, read from its file a block
    at a time (:func:`~simbench.recording.memory.read_block_bytes`), so the scan holds one block
    whatever the file declares. Stimuli the file never wrote are skipped (they are reported by
    :func:`unwritten_problems`). A site not opened from a file is scanned in memory.
    """
    import netCDF4

    act = ds[ACTIVITY]
    source = ds.encoding.get("source")
    if source is None or act.ndim < 2 or not np.issubdtype(act.dtype, np.number):
        return []
    group = ds.encoding.get(GROUP)
    valid = _valid_rows(ds)
    if act.dims[0] != "stimulus" or act.dims[-1] != "unit":
        valid = None  # the mask lines up with (stimulus[, time]) only
    rows = written_rows(source, group, act.shape[0])
    n_bad = n_fill = n_seen = 0
    first_bad = first_fill = None
    with netCDF4.Dataset(source, "r") as nc:
        var = (nc[group] if group else nc).variables[ACTIVITY]
        var.set_auto_maskandscale(False)
        fill = var.get_fill_value() if hasattr(var, "get_fill_value") else None
        if fill is None:
            fill = getattr(var, "_FillValue", getattr(var, "missing_value", None))
        if fill is not None and np.isnan(np.asarray(fill, dtype=float)).any():
            fill = None  # a NaN fill is counted as NaN
        for idx in activity_blocks(tuple(act.shape), act.dtype.itemsize):
            keep = None if rows is None else rows[idx[0]]
            if keep is not None and not keep.any():
                continue  # never written: unwritten_problems says so
            raw = np.asarray(var[idx])
            mask = np.ones(raw.shape[:-1], dtype=bool)  # one entry per (stimulus[, step])
            if valid is not None:
                steps = idx[1] if len(idx) > 1 else slice(None)
                mask &= valid[idx[0], steps].reshape(mask.shape)
            if keep is not None:
                mask &= keep.reshape((-1,) + (1,) * (mask.ndim - 1))
            mask = mask[..., None]
            n_seen += int(mask.sum()) * raw.shape[-1]
            if raw.dtype.kind == "f":
                bad = ~np.isfinite(raw) & mask
                count = int(bad.sum())
                if count and first_bad is None:
                    first_bad = _index(bad, idx)
                n_bad += count
                del bad
            if fill is not None:
                at_fill = (raw == np.asarray(fill, dtype=raw.dtype)) & mask
                count = int(at_fill.sum())
                if count and first_fill is None:
                    first_fill = _index(at_fill, idx)
                n_fill += count
    problems = []
    if n_bad:
        problems.append((ACTIVITY, f"{n_bad} NaN/Inf values (first at index {first_bad}); "
                         "remove them or mark the steps invalid"))
    if n_fill and n_fill == n_seen:
        problems.append((ACTIVITY, f"every value of 'activity' is its fill value ({fill}): it "
                         "was declared but never written; write the activity"))
    elif n_fill:
        problems.append((ACTIVITY, f"{n_fill} values equal the fill value {fill} (first at index "
                         f"{first_fill}): they read as missing (NaN), not as activity; write "
                         "them or mark the steps invalid"))
    return problems


def _index(hits: np.ndarray, idx: tuple[slice, ...]) -> tuple[int, ...]:
    """The first hit of a block as an index into the whole array."""
    where = np.argwhere(hits)[0]
    offsets = [s.start for s in idx] + [0] * (hits.ndim - len(idx))
    return tuple(int(w) + int(o) for w, o in zip(where, offsets))
