"""Reading a recording's variables out of its netCDF file: coordinates into memory, the
activity as a lazy array read a block of rows at a time (see
:func:`simbench.recording.open_recording`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import RecordingError
from simbench.recording.memory import format_size, memory_limit, read_block_bytes
from simbench.recording.schema import ACTIVITY

#: ``Dataset.encoding`` key set on a site whose activity is still in its file.
LAZY = "simbench_lazy"
#: ``Dataset.encoding`` key: the site's netCDF group in its file (None: the root group).
GROUP = "simbench_group"


def is_lazy(ds: xr.Dataset) -> bool:
    """Whether a site's activity is still in its file (opened by :func:`open_recording`)."""
    return bool(ds.encoding.get(LAZY))


def coords_loaded(ds: xr.Dataset, path: Path, group: str | None) -> xr.Dataset:
    """``ds`` with every variable but the activity read into memory (strings normalised) and
    the activity a lazy variable read by :class:`_FileActivity`."""
    from xarray.core import indexing

    for name, var in ds.variables.items():
        if name != ACTIVITY:
            var.load()
    if ACTIVITY in ds.data_vars:
        act = ds[ACTIVITY].variable
        lazy = indexing.LazilyIndexedArray(_FileActivity(path, group, act.shape, act.dtype))
        ds[ACTIVITY] = xr.Variable(act.dims, lazy, attrs=act.attrs)
    ds.encoding[GROUP] = group
    return normalise_strings(ds, path)


def activity_blocks(shape: tuple[int, ...], itemsize: int,
                    block_bytes: int | None = None) -> Iterator[tuple[slice, ...]]:
    """Index tuples that cover an array of ``shape`` in order, each about ``block_bytes``
    (default :func:`~simbench.recording.memory.read_block_bytes`) or less: runs of whole
    stimuli (dim 0), or, where one stimulus is larger than a block, runs of its steps (dim 1),
    so no read holds more than a block whatever the file declares."""
    if not shape or 0 in shape:
        return
    block_bytes = read_block_bytes() if block_bytes is None else block_bytes
    per_row = math.prod(shape[1:]) * itemsize
    if per_row <= block_bytes or len(shape) < 2:
        step = max(1, block_bytes // max(1, per_row))
        for lo in range(0, shape[0], step):
            yield (slice(lo, min(lo + step, shape[0])),)
        return
    step = max(1, block_bytes // max(1, math.prod(shape[2:]) * itemsize))
    for row in range(shape[0]):
        for lo in range(0, shape[1], step):
            yield slice(row, row + 1), slice(lo, min(lo + step, shape[1]))


def written_rows(path: str | Path, group: str | None, n_rows: int) -> np.ndarray | None:
    """Which stimuli (rows of dim 0) of a site's ``activity`` the file holds data for, read
    from the HDF5 chunk index only (no value is read, so this takes milliseconds whatever the
    file declares): False where no chunk covering the row was ever written, so the row reads
    as the fill value. A contiguous variable is written whole or not at all.

    None when the file cannot say (netCDF-3, or h5py missing): every row then counts as
    written and the values tell.
    """
    try:
        import h5py
    except ImportError:
        return None
    try:
        with h5py.File(path, "r") as f:
            dset = f[f"{group}/{ACTIVITY}" if group else ACTIVITY]
            dsid = dset.id
            if dset.chunks is None or dsid.get_storage_size() == 0:
                return np.full(n_rows, dsid.get_storage_size() > 0)
            rows = np.zeros(n_rows, dtype=bool)
            height = dset.chunks[0] if dset.ndim else 1

            def mark(offset: tuple[int, ...]) -> None:
                rows[offset[0]:offset[0] + height] = True

            if hasattr(dsid, "chunk_iter"):  # HDF5 >= 1.12.3: one pass over the index
                dsid.chunk_iter(lambda info: mark(info.chunk_offset))
            else:
                for i in range(dsid.get_num_chunks()):
                    mark(dsid.get_chunk_info(i).chunk_offset)
            return rows
    except Exception:  # not HDF5 (netCDF-3), or a layout h5py cannot read: the values tell
        return None


def unwritten_variables(path: str | Path, group: str | None) -> list[str]:
    """Variables of a group (coordinates included, ``activity`` too) that the file declares
    with a non-zero size but never wrote (no storage allocated), from the HDF5 metadata only.
    Empty when the file cannot say (see :func:`written_rows`)."""
    try:
        import h5py
    except ImportError:
        return []
    try:
        with h5py.File(path, "r") as f:
            node = f[group] if group else f
            return [name for name, obj in node.items()
                    if isinstance(obj, h5py.Dataset) and obj.size > 0
                    and "CLASS" not in obj.attrs  # a netCDF dimension scale, not a variable
                    and obj.id.get_storage_size() == 0]
    except Exception:
        return []


def decoded(values: Any, dtype: np.dtype) -> np.ndarray:
    """Values as netCDF4 returns them (masked where they equal the fill value) in ``dtype``,
    with fill values as NaN, as xarray decodes them."""
    if np.ma.isMaskedArray(values):
        if values.mask is np.ma.nomask or not values.mask.any():
            values = values.data
        else:
            values = np.ma.filled(values.astype(np.result_type(values.dtype, np.float32)),
                                  np.nan)
    return np.asarray(values, dtype=dtype)


def read_whole(path: str | Path, group: str | None, shape: tuple[int, ...],
               dtype: np.dtype) -> np.ndarray:
    """A site's ``activity`` read into one array a block at a time (see
    :func:`activity_blocks`): the array plus one block in memory, never a second copy."""
    import netCDF4

    out = np.empty(shape, dtype=dtype)
    with netCDF4.Dataset(path, "r") as nc:
        var = (nc[group] if group else nc).variables[ACTIVITY]
        for idx in activity_blocks(tuple(shape), np.dtype(dtype).itemsize):
            values = var[idx]
            if out.dtype.kind != "f" or not np.ma.isMaskedArray(values):
                out[idx] = decoded(values, dtype)
                continue
            target = out[idx]  # a view: the raw block and its mask are the only other copies
            target[...] = values.data
            mask = np.ma.getmask(values)
            if mask is not np.ma.nomask and mask.any():
                target[mask] = np.nan
            del values, mask
    return out


class _FileActivity(xr.backends.BackendArray):
    """A site's ``activity`` in its netCDF file, read on indexing (outer indexing: slices and
    sorted integer arrays per dim), with fill values as NaN as xarray decodes them.

    Each read opens the file, reads and closes it again (a few ms): a netCDF handle kept open
    while another reads the same file's string variables and closes crashes netCDF-C, so
    none is kept.
    """

    def __init__(self, path: Path, group: str | None, shape: tuple[int, ...],
                 dtype: np.dtype) -> None:
        self.path, self.group, self.shape, self.dtype = path, group, tuple(shape), dtype

    def __getitem__(self, key: Any) -> Any:
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape,
                                                  indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        import netCDF4

        with netCDF4.Dataset(self.path, "r") as nc:
            var = (nc[self.group] if self.group else nc).variables[ACTIVITY]
            out = var[key]
        return decoded(out, self.dtype)


def normalise_strings(ds: xr.Dataset, path: Path | None = None) -> xr.Dataset:
    """netCDF returns variable-length strings as objects; give them back their str dtype.

    A fixed-width str array takes 4 bytes per character of the longest string, per element:
    one long string in a large variable is refused before the conversion allocates it.
    """
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype == object:
            try:
                longest = max(map(len, var.values.flat), default=0)
            except TypeError:  # not all str/bytes
                longest = max((len(str(v)) for v in var.values.flat), default=0)
            need = 4 * max(1, longest) * var.size
            limit = memory_limit()
            if need > limit:
                raise RecordingError(
                    f"string variable of {var.size:,} entries up to {longest:,} characters "
                    f"long needs {format_size(need)} as fixed-width text, more than the "
                    f"{format_size(limit)} it may use", file=path, field=str(name),
                    fix="shorten the strings (ids and tokens are short labels)")
            ds[name] = var.astype(str)
    return ds


