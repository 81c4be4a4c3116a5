"""Pairing two systems' activity sample by sample, so a measure compares like with like.

Samples are matched on ``stimulus_id`` and time step. Stimuli present in only one system are an
error unless the caller asks for the intersection; steps marked invalid (padding) in either
system never enter a measure.

Recordings too large to load are paired without reading their activity (only stimulus ids,
tokens and valid masks are compared): see :func:`pair_sites` and :class:`LazyRows`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from simbench.errors import RecordingError

if TYPE_CHECKING:  # xarray costs ~0.4 s to import; plugins import this module at load time
    import xarray as xr


class LazyRows:
    """Paired rows of one system's activity, read from their source a block at a time.

    ``source`` is [stimulus, (time,) unit]: a lazy ``xarray.DataArray`` opened from a file, or
    an array in memory. Row ``r`` is ``source[stim[r], time[r]]`` (``source[stim[r]]`` for
    static data). ``self[lo:hi]`` (or an integer array of rows) returns those rows as a numpy
    array, reading only the stimuli they need; ``shape``/``dtype``/``nbytes`` describe the
    whole without reading it, and ``np.asarray(rows)`` reads it all.

    Rows follow the first system's stimulus order; where the second file lists its stimuli in
    another order, a block's stimuli are scattered there and read with one indexed read (the
    same values and memory, in many small reads) instead of one contiguous slice. The row map
    costs 16 bytes a row.

    Blocks are checked for NaN/Inf as they are read (a lazily opened file is not scanned up
    front); the error names the file, the site and the first stimulus holding one.
    """

    def __init__(self, source: Any, stim: np.ndarray, time: np.ndarray | None, *,
                 steps: int | None, dtype: type | None, stimulus_ids: np.ndarray,
                 file: str | None = None, site: str | None = None) -> None:
        self.source, self.stim, self.time, self.steps = source, stim, time, steps
        self.file, self.site, self.stimulus_ids = file, site, stimulus_ids
        self.dtype = _dtype(source.dtype, dtype)
        self.shape = (len(stim), int(source.shape[-1]))
        self.ndim = 2

    @property
    def nbytes(self) -> int:
        """Bytes of the whole, as :meth:`__array__` would hold it."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (tuple, int, np.integer)):
            raise TypeError("LazyRows takes a slice or an integer array of rows")
        rows = (np.arange(*key.indices(self.shape[0])) if isinstance(key, slice)
                else np.arange(self.shape[0])[key])
        stim = self.stim[rows]
        if len(stim) == 0:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        wanted = np.unique(stim)
        lo, hi = int(wanted[0]), int(wanted[-1]) + 1
        if hi - lo <= max(2 * len(wanted), 64):  # contiguous enough: one slice
            block, local = self._read(slice(lo, hi)), stim - lo
        else:  # scattered (a different stimulus order): one indexed read
            block, local = self._read(wanted), np.searchsorted(wanted, stim)
        out = block[local] if self.time is None else block[local, self.time[rows]]
        out = np.asarray(out, dtype=self.dtype)
        if not np.isfinite(out).all():
            first = int(np.argwhere(~np.isfinite(out))[0][0])
            where = f"stimulus index {int(stim[first])}"
            if self.time is not None:
                where += f", time {int(self.time[rows][first])}"
            raise RecordingError(
                f"{int((~np.isfinite(out)).sum())} NaN/Inf activity values in rows "
                f"{rows[0]}..{rows[-1]} (first at {where})", file=self.file, site=self.site,
                field="activity", fix="remove them or mark the steps invalid")
        return out

    def _read(self, which: slice | np.ndarray) -> np.ndarray:
        src = self.source
        if hasattr(src, "isel"):
            sel: dict[str, Any] = {"stimulus": which}
            if self.steps is not None:
                sel["time"] = slice(0, self.steps)
            return np.asarray(src.isel(sel).values)
        picked = src[which]
        return np.asarray(picked if self.steps is None else picked[:, :self.steps])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


@dataclasses.dataclass
class Paired:
    """Row-aligned activity of two systems at one site.

    ``x`` and ``y`` are read-only: when both systems hold the same stimuli in the same order
    and no step is padding, they are views of the recordings' own arrays (no copy), so a measure
    must not write into them; they may be :class:`LazyRows` (see :func:`pair_sites`).
    """

    x: Any  # [n_samples, units_a]: np.ndarray, or LazyRows
    y: Any  # [n_samples, units_b]
    stimulus: np.ndarray  # [n_samples] index of each sample's stimulus (0..n_stimuli-1)
    stimulus_ids: np.ndarray  # [n_stimuli]
    time: np.ndarray | None  # [n_samples] time step of each sample, None for static data

    @property
    def n_stimuli(self) -> int:
        return len(self.stimulus_ids)

    @property
    def lazy(self) -> bool:
        """Whether either side is still in its file (rows read by slicing)."""
        return isinstance(self.x, LazyRows) or isinstance(self.y, LazyRows)

    @property
    def nbytes(self) -> int:
        """Bytes of both sides' paired rows as held in memory (whether loaded or not yet)."""
        return sum(int(t.nbytes) for t in (self.x, self.y))

    @property
    def lazy_nbytes(self) -> int:
        """Bytes that loading the lazy sides would add (0 when both are in memory)."""
        return sum(int(t.nbytes) for t in (self.x, self.y) if isinstance(t, LazyRows))

    def loaded(self) -> Paired:
        """Both sides as read-only numpy arrays (lazy sides read whole)."""
        if not self.lazy:
            return self
        x, y = (_readonly(np.asarray(t)) if isinstance(t, LazyRows) else t
                for t in (self.x, self.y))
        return dataclasses.replace(self, x=x, y=y)


def pair_sites(
    a: xr.Dataset,
    b: xr.Dataset,
    *,
    intersect: bool = False,
    names: tuple[str, str] = ("A", "B"),
    dtype: type | None = None,
    lazy: bool = False,
) -> Paired:
    """Match two site datasets on stimulus id and time step; drop padding.

    ``dtype`` None keeps floating-point activity in its stored dtype (other numbers become
    float64); a dtype converts. Rows are gathered from the stored arrays at most once, and not
    at all when the stimuli already line up and nothing is padding.

    A site opened by :func:`simbench.recording.open_recording` still has its activity in the
    file. With ``lazy`` True its side of the pair is a :class:`LazyRows` (nothing read); with
    ``lazy`` False it is read whole when the paired rows fit in the memory simbench may use,
    and refused with a :class:`RecordingError` naming the size when they do not.
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
    sides = ((a, ia[order]), (b, ib[order]))
    valid = _valid_steps(a, b, sides[0][1], sides[1][1], ids_a, where, loc)
    steps = None if valid is None else valid.shape[1]
    # the paired (stimulus, step) of every row, in the first system's stimulus order
    stim, time = (np.arange(len(ia)), None) if valid is None else np.nonzero(valid)
    ids = ids_a[sides[0][1]]
    from simbench.recording import is_lazy  # xarray is loaded by now (a and b are datasets)

    if is_lazy(a) or is_lazy(b):  # rows stay in the file: nothing read
        pair = Paired(*(LazyRows(ds["activity"] if is_lazy(ds) else ds["activity"].values,
                                 idx[stim], time, steps=steps, dtype=dtype,
                                 stimulus_ids=ds["stimulus_id"].values,
                                 file=ds.encoding.get("source"), site=loc["site"])
                        for ds, idx in sides), stim, ids, time)
        return pair if lazy else _loaded_if_fits(pair, loc)
    if valid is None or valid.all():  # views of the stored arrays where possible
        x, y = (_rows(ds["activity"].values, idx, dtype, steps) for ds, idx in sides)
    else:
        x, y = (_readonly(_cast(ds["activity"].values[idx[stim], time], dtype))
                for ds, idx in sides)
    return Paired(x, y, stim, ids, time)


def _valid_steps(a: xr.Dataset, b: xr.Dataset, ia: np.ndarray, ib: np.ndarray,
                 ids_a: np.ndarray, where: str, loc: dict[str, Any]) -> np.ndarray | None:
    """bool [stimuli, steps]: the paired steps neither side pads (None without a time dim).

    Both sides must have a time dim or neither; where both carry tokens, every paired step
    must hold the same token (else the recordings are of different stimuli).
    """
    has_time = "time" in a["activity"].dims
    if has_time != ("time" in b["activity"].dims):
        raise RecordingError(f"{where}: one recording has a time dim and the other not",
                             field="time", **loc)
    if not has_time:
        return None
    steps = min(int(a["activity"].shape[1]), int(b["activity"].shape[1]))
    valid = np.ones((len(ia), steps), dtype=bool)
    for ds, idx in ((a, ia), (b, ib)):
        if "valid" in ds.coords:
            valid &= ds["valid"].values[idx, :steps]
    # tokens of one kind (names, or integer codes) must match; names against codes cannot be
    kinds = [("U" if ds["token"].dtype.kind in "USO" else ds["token"].dtype.kind in "iu")
             for ds in (a, b) if "token" in ds.coords]
    if len(kinds) == 2 and kinds[0] == kinds[1]:
        ta, tb = a["token"].values[ia, :steps], b["token"].values[ib, :steps]
        mismatch = (ta != tb) & valid
        if mismatch.any():
            s, t = np.argwhere(mismatch)[0]
            raise RecordingError(
                f"{where}: stimulus '{ids_a[ia][s]}' has different tokens at step {t} "
                f"({str(ta[s, t])!r} vs {str(tb[s, t])!r}): the recordings are of different "
                "stimuli", field="token", fix="record both systems on the same stimuli", **loc)
    return valid


def _loaded_if_fits(pair: Paired, loc: dict[str, Any]) -> Paired:
    """``pair`` read whole, or a RecordingError when its rows do not fit in memory."""
    from simbench.recording import MEMORY_ENV, MEMORY_FRACTION, available_memory, format_size

    need, limit = pair.nbytes, int(available_memory() * MEMORY_FRACTION)
    if need > limit:
        raise RecordingError(
            f"the paired activity is {format_size(need)} ({pair.x.shape[0]:,} rows of "
            f"{pair.x.shape[1]} and {pair.y.shape[1]} units), more than the {format_size(limit)} it "
            "may use in memory, and this computation needs it whole", field="activity", **loc,
            fix="use a measure that reads activity in blocks (cka with the linear or cosine "
            "kernel, rsa), a subset of the stimuli, or a machine with more memory "
            f"({MEMORY_ENV} sets the memory simbench assumes)")
    return pair.loaded()


def _rows(values: np.ndarray, idx: np.ndarray, dtype: type | None,
          steps: int | None = None) -> np.ndarray:
    """``values[idx]`` (every step up to ``steps``) as [rows, units]; a view when possible."""
    if len(idx) == len(values) and np.array_equal(idx, np.arange(len(idx))):
        picked = values if steps is None else values[:, :steps]
    else:
        picked = values[idx] if steps is None else values[idx, :steps]
    return _readonly(_cast(picked.reshape(-1, values.shape[-1]), dtype))


def _dtype(stored: Any, dtype: type | None) -> np.dtype:
    """The dtype paired rows get: ``dtype``, else the stored one if floating, else float64."""
    return np.dtype(dtype if dtype is not None
                    else stored if np.issubdtype(stored, np.floating) else np.float64)


def _cast(values: np.ndarray, dtype: type | None) -> np.ndarray:
    return np.asarray(values, dtype=_dtype(values.dtype, dtype))


def _readonly(values: np.ndarray) -> np.ndarray:
    """A read-only view, so a measure cannot write into a recording through a pairing."""
    view = values.view()
    view.flags.writeable = False
    return view
