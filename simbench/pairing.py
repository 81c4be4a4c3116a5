"""Pairing two systems' activity sample by sample, so a measure compares like with like.

Samples are matched on ``stimulus_id`` and time step. Stimuli present in only one system are an
error unless the caller asks for the intersection; steps marked invalid (padding) in either
system never enter a measure.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from simbench.errors import RecordingError

if TYPE_CHECKING:  # xarray costs ~0.4 s to import; plugins import this module at load time
    import xarray as xr


@dataclasses.dataclass
class Paired:
    """Row-aligned activity of two systems at one site.

    ``x`` and ``y`` are read-only: when both systems hold the same stimuli in the same order
    and no step is padding, they are views of the recordings' own arrays (no copy), so a measure
    must not write into them.
    """

    x: np.ndarray  # [n_samples, units_a]
    y: np.ndarray  # [n_samples, units_b]
    stimulus: np.ndarray  # [n_samples] index of each sample's stimulus (0..n_stimuli-1)
    stimulus_ids: np.ndarray  # [n_stimuli]
    time: np.ndarray | None  # [n_samples] time step of each sample, None for static data

    @property
    def n_stimuli(self) -> int:
        return len(self.stimulus_ids)


def pair_sites(
    a: xr.Dataset,
    b: xr.Dataset,
    *,
    intersect: bool = False,
    names: tuple[str, str] = ("A", "B"),
    dtype: type | None = None,
) -> Paired:
    """Match two site datasets on stimulus id and time step; drop padding.

    ``dtype`` None keeps floating-point activity in its stored dtype (other numbers become
    float64); a dtype converts. Rows are gathered from the stored arrays at most once, and not
    at all when the stimuli already line up and nothing is padding.
    """
    ids_a = a["stimulus_id"].values
    ids_b = b["stimulus_id"].values
    common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    only_a, only_b = len(ids_a) - len(common), len(ids_b) - len(common)
    where = f"{names[0]} vs {names[1]}"
    # Name the files and the site in every error (load_recording records the source file).
    sources = [str(ds.encoding["source"]) for ds in (a, b) if ds.encoding.get("source")]
    loc = {"file": " and ".join(dict.fromkeys(sources)) or None,
           "site": a.attrs.get("site") or b.attrs.get("site")}
    if len(common) == 0:
        raise RecordingError(
            f"{where}: no shared stimulus ids ({len(ids_a)} vs {len(ids_b)} stimuli, e.g. "
            f"{[str(i) for i in ids_a[:2]]} vs {[str(i) for i in ids_b[:2]]})", field="stimulus_id", **loc,
            fix="record both systems on the same stimuli (same task and seed)")
    if (only_a or only_b) and not intersect:
        raise RecordingError(
            f"{where}: stimulus sets differ ({only_a} only in {names[0]}, {only_b} only in "
            f"{names[1]}, {len(common)} shared)", field="stimulus_id", **loc,
            fix="pass intersect=True (CLI: --intersect) to use the shared stimuli only")
    order = np.argsort(ia)
    ia, ib = ia[order], ib[order]
    va, vb = a["activity"].values, b["activity"].values
    has_time = "time" in a["activity"].dims
    if has_time != ("time" in b["activity"].dims):
        raise RecordingError(f"{where}: one recording has a time dim and the other not",
                             field="time", **loc)
    if not has_time:
        return Paired(_rows(va, ia, dtype), _rows(vb, ib, dtype), np.arange(len(ia)),
                      ids_a[ia], None)
    steps = min(va.shape[1], vb.shape[1])
    valid = np.ones((len(ia), steps), dtype=bool)
    for ds, idx in ((a, ia), (b, ib)):
        if "valid" in ds.coords:
            valid &= ds["valid"].values[idx, :steps]
    if "token" in a.coords and "token" in b.coords:
        ta = a["token"].values[ia, :steps]
        tb = b["token"].values[ib, :steps]
        mismatch = (ta != tb) & valid
        if mismatch.any():
            s, t = np.argwhere(mismatch)[0]
            raise RecordingError(
                f"{where}: stimulus '{ids_a[ia][s]}' has different tokens at step {t} "
                f"({str(ta[s, t])!r} vs {str(tb[s, t])!r}): the recordings are of different stimuli",
                field="token", fix="record both systems on the same stimuli", **loc)
    if valid.all():
        stim = np.repeat(np.arange(len(ia)), steps)
        time = np.tile(np.arange(steps), len(ia))
        x, y = (_rows(v, idx, dtype, steps) for v, idx in ((va, ia), (vb, ib)))
    else:
        stim, time = np.nonzero(valid)
        x, y = (_readonly(_cast(v[idx[stim], time], dtype)) for v, idx in ((va, ia), (vb, ib)))
    return Paired(x, y, stim, ids_a[ia], time)


def _rows(values: np.ndarray, idx: np.ndarray, dtype: type | None,
          steps: int | None = None) -> np.ndarray:
    """``values[idx]`` (every step up to ``steps``) as [rows, units]; a view when possible."""
    if len(idx) == len(values) and np.array_equal(idx, np.arange(len(idx))):
        picked = values if steps is None else values[:, :steps]
    else:
        picked = values[idx] if steps is None else values[idx, :steps]
    return _readonly(_cast(picked.reshape(-1, values.shape[-1]), dtype))


def _cast(values: np.ndarray, dtype: type | None) -> np.ndarray:
    if dtype is not None:
        return np.asarray(values, dtype=dtype)
    if np.issubdtype(values.dtype, np.floating):
        return values
    return np.asarray(values, dtype=np.float64)


def _readonly(values: np.ndarray) -> np.ndarray:
    """A read-only view, so a measure cannot write into a recording through a pairing."""
    view = values.view()
    view.flags.writeable = False
    return view
