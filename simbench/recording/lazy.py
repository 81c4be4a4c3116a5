"""Reading a recording's variables out of its netCDF file: coordinates into memory, the
activity as a lazy array read a block of rows at a time.

A site opened this way (:func:`simbench.recording.open_recording`) holds every coordinate in
memory and ``activity`` as an xarray lazy variable backed by the file; the correlative measures
``cka`` and ``rsa`` read it by rows (see :mod:`simbench.pairing`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import RecordingError
from simbench.recording.memory import format_size, memory_limit
from simbench.recording.schema import ACTIVITY

#: ``Dataset.encoding`` key set on a site whose activity is still in its file.
LAZY = "simbench_lazy"


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
    return normalise_strings(ds, path)


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
        if np.ma.isMaskedArray(out):
            out = np.ma.filled(out.astype(np.result_type(out.dtype, np.float32)), np.nan)
        return np.asarray(out, dtype=self.dtype)


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


