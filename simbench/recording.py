"""Recordings: one system's activity at named sites, as netCDF-4 through xarray.

A recording is one file per system with one group per site. Each site dataset holds a data
variable ``activity`` with dims (``stimulus``, ``time``, ``unit``) (``time`` may be absent for
static data) and coordinates:

- ``stimulus_id`` (stimulus): unique strings; two systems are paired on these.
- ``token`` (stimulus, time): the input at each step, as strings.
- ``valid`` (stimulus, time): bool, false on padding; padding never enters a measure.
- causal variables, e.g. ``count``, ``phase`` (stimulus, time): their values after each step.

The root group's attrs hold ``schema`` (``simbench-recording/1``), ``system_id`` and ``task``,
all optional: ``system_id`` defaults to the file name's stem, ``task`` to none (causal measures
then need ``--task``), and a ``schema`` other than this one is refused.
Brain-Score style assemblies (``presentation``, ``neuroid``, ``time_bin``) load through
:func:`from_brainscore`.

Memory: before reading any data, :func:`load_recording` adds up the sizes the file *declares*
(every variable's shape times its dtype, from the netCDF metadata) and refuses a file whose data
would not fit in the memory available (:func:`available_memory`, with headroom), naming the
largest variable. A small file can declare a huge dimension (unwritten data takes no disk
space), and reading it would otherwise try to allocate all of it.

Recordings too large to load: :func:`open_recording` reads every coordinate but leaves the
activity in the file, to be read a block of rows at a time (the correlative measures ``cka``
and ``rsa`` do so, see :mod:`simbench.pairing`); :func:`load_or_open` loads a file whole when it
fits and opens it that way when it does not.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import RecordingError, SimbenchError, SiteError

SCHEMA = "simbench-recording/1"
ACTIVITY = "activity"
RESERVED_COORDS = ("stimulus_id", "token", "valid")
BRAINSCORE_RENAMING = {"presentation": "stimulus", "neuroid": "unit", "time_bin": "time"}
#: Share of the available memory a recording's declared data may take (the rest is headroom
#: for validation, pairing and the measure's own work).
MEMORY_FRACTION = 0.75
#: Bytes counted per element of a variable-length string variable (a Python str and pointer).
STRING_BYTES = 64
#: Environment variable: the memory (MiB) simbench may assume, when less than the machine's.
MEMORY_ENV = "SIMBENCH_MEMORY_MB"
#: ``Dataset.encoding`` key set on a site whose activity is still in its file.
LAZY = "simbench_lazy"


@dataclasses.dataclass
class Recording:
    """One system's recorded activity, site by site."""

    system_id: str
    sites: dict[str, xr.Dataset]
    task: str | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    path: Path | None = None

    def site(self, name: str) -> xr.Dataset:
        """The dataset of one site; an unknown site lists the ones that exist."""
        if name not in self.sites:
            raise SiteError(
                f"recording of '{self.system_id}' has no site '{name}'",
                file=self.path, site=name,
                fix=f"sites in this recording: {', '.join(sorted(self.sites)) or '(none)'}",
            )
        return self.sites[name]

    def variables(self, site: str) -> list[str]:
        """Causal-variable coordinates of a site (everything but the reserved coords)."""
        ds = self.site(site)
        return [c for c in ds.coords if c not in RESERVED_COORDS and c not in ds.dims]


def site_dataset(
    activity: np.ndarray,
    *,
    stimulus_ids: list[str] | np.ndarray,
    site: str,
    system_id: str,
    task: str | None = None,
    tokens: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    variables: Mapping[str, np.ndarray] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build one site's dataset in the schema from plain arrays.

    ``activity`` is [stimulus, time, unit] (or [stimulus, unit] for static data);
    ``tokens``, ``valid`` and each variable are [stimulus, time].
    """
    activity = np.asarray(activity)
    dims = ("stimulus", "time", "unit") if activity.ndim == 3 else ("stimulus", "unit")
    step_dims = dims[:-1]
    coords: dict[str, Any] = {"stimulus_id": ("stimulus", np.asarray(stimulus_ids, dtype=str))}
    if tokens is not None:
        coords["token"] = (step_dims, np.asarray(tokens, dtype=str))
    if valid is not None:
        coords["valid"] = (step_dims, np.asarray(valid, dtype=bool))
    for name, values in (variables or {}).items():
        coords[name] = (step_dims, np.asarray(values))
    site_attrs = {"system_id": system_id, "site": site, "schema": SCHEMA}
    if task is not None:
        site_attrs["task"] = task
    site_attrs.update(attrs or {})
    return xr.Dataset({ACTIVITY: (dims, activity)}, coords=coords, attrs=site_attrs)


# ---- validation ---------------------------------------------------------------------------
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
        n_bad, first = _non_finite(act.values, valid)
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


def _non_finite(values: np.ndarray, valid: np.ndarray | None
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
                             fix="`simbench validate FILE` lists every problem; the schema "
                             "is in the documentation's guide, 'Recordings and importers'")


def recording_problems(path: str | Path) -> list[str]:
    """Every problem of a recording file, one sentence each (empty when it is valid)."""
    try:
        rec = load_recording(path, validate=False)
    except SimbenchError as exc:  # e.g. a RecordingError, or a pickled checkpoint refused
        return [str(exc)]
    out = []
    declared = _declared_schema(path)
    if declared is not None and declared != SCHEMA:
        out.append(f"file {path}, field 'schema': root attribute schema = {declared!r}, "
                   f"expected {SCHEMA!r} (or no schema attribute)")
    if not rec.sites:
        out.append(f"file {path}: no site groups; each site is a group holding 'activity'")
    for name, ds in rec.sites.items():
        out.extend(f"file {path}, site '{name}', field '{f}': {p}" for f, p in site_problems(ds))
    return out


# ---- I/O ----------------------------------------------------------------------------------
def save_recording(rec: Recording, path: str | Path) -> Path:
    """Write a recording as netCDF-4, one group per site (validated first)."""
    path = Path(path)
    for name, ds in rec.sites.items():
        if "/" in name:
            raise RecordingError("site names cannot contain '/'", file=path, site=name)
        validate_site(ds, file=path, site=name)
    root_attrs = {"schema": SCHEMA, "system_id": rec.system_id, **rec.attrs}
    if rec.task is not None:
        root_attrs["task"] = rec.task
    tree = {"/": xr.Dataset(attrs=_netcdf_attrs(root_attrs))}
    for name, ds in rec.sites.items():
        # replace the attrs, not update them: assign_attrs would keep a None (e.g. an NWB
        # file's missing subject id), which netCDF cannot store
        site = ds.copy(deep=False)
        site.attrs = _netcdf_attrs(ds.attrs)
        tree[f"/{name}"] = site
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    xr.DataTree.from_dict(tree).to_netcdf(tmp, engine="netcdf4")
    tmp.replace(path)  # never leave a half-written recording under the real name
    rec.path = path
    return path


def load_recording(path: str | Path, *, validate: bool = True) -> Recording:
    """Read a recording written by :func:`save_recording` (or by anyone following the schema)."""
    path = Path(path)
    if not path.exists():
        raise RecordingError("no such file", file=path, fix="check the path")
    with path.open("rb") as fh:
        magic = fh.read(8)
    if not (magic.startswith(b"\x89HDF") or magic.startswith(b"CDF")):
        from simbench.pickled import refuse_pickled

        refuse_pickled(path)  # a .pt/.pkl passed as a recording: say what it is
        raise RecordingError("not a netCDF file (wrong magic bytes)", file=path,
                             fix="write recordings with simbench.save_recording or xarray's "
                             "to_netcdf (netCDF-4)")
    check_declared_size(path)
    try:
        tree = xr.open_datatree(path, engine="netcdf4")
        tree.load()
    except Exception as exc:
        raise RecordingError(f"cannot read the file ({type(exc).__name__}: {exc}); it may be "
                             "truncated or corrupt", file=path,
                             fix="re-record or re-download it") from None
    root = tree.to_dataset()
    attrs = dict(root.attrs)
    sites = {}
    for name, node in tree.children.items():
        ds = _normalise_strings(node.to_dataset(inherit=False), path)
        sites[name] = ds
    if not sites and ACTIVITY in root.data_vars:  # a flat single-site file
        site_name = str(attrs.get("site", "default"))
        sites[site_name] = _normalise_strings(root, path)
    for ds in sites.values():  # so later errors (e.g. pairing) can name the file
        ds.encoding["source"] = str(path)
    tree.close()
    return _recording_from(path, sites, attrs, validate=validate, scan_values=True)


def open_recording(path: str | Path, *, validate: bool = True) -> Recording:
    """Open a recording without reading its activity: a :class:`Recording` whose sites hold
    every coordinate (stimulus ids, tokens, valid, causal variables) in memory and ``activity``
    as a lazy array backed by the file.

    For files too large to load (:func:`load_recording` refuses them): measures that read the
    activity a block of rows at a time (``cka``, ``rsa``) score them in bounded memory;
    anything that needs the activity whole gets the same refusal when it pairs the site (see
    :func:`simbench.pairing.pair_sites`). Only the coordinates must fit in memory. Validation
    checks the schema from the metadata and coordinates; NaN/Inf activity is reported when
    the block holding it is read (scanning it here would read the whole file once more).
    """
    path = Path(path)
    _check_netcdf(path)
    variables = _declared_or_none(path)
    if variables is not None:
        rest = [v for v in variables if v[0].rsplit("/", 1)[-1] != ACTIVITY]
        total, limit = sum(v[3] for v in rest), int(available_memory() * MEMORY_FRACTION)
        if total > limit:
            name, dims, dtype, nbytes = max(rest, key=lambda v: v[3])
            shape = ", ".join(f"{d}={n:,}" for d, n in dims.items())
            raise RecordingError(
                f"the file's coordinates alone declare {_size(total)} (largest: '{name}' "
                f"[{shape}] {dtype}, {_size(nbytes)}), more than the {_size(limit)} they may "
                "use; nothing was read", file=path, field=name.rsplit("/", 1)[-1],
                fix=f"split the recording into files by stimuli ({MEMORY_ENV} sets the memory "
                "simbench assumes)")
    try:
        tree = xr.open_datatree(path, engine="netcdf4")
        sites = {}
        for name, node in tree.children.items():
            sites[name] = _coords_loaded(node.to_dataset(inherit=False), path, name)
        root = tree.to_dataset()
        if not sites and ACTIVITY in root.data_vars:  # a flat single-site file
            sites[str(root.attrs.get("site", "default"))] = _coords_loaded(root, path, None)
        tree.close()  # the activity is read by _FileActivity, which holds no open handle
    except SimbenchError:
        raise
    except Exception as exc:
        raise RecordingError(f"cannot read the file ({type(exc).__name__}: {exc}); it may be "
                             "truncated or corrupt", file=path,
                             fix="re-record or re-download it") from None
    attrs = dict(root.attrs)
    for ds in sites.values():
        ds.encoding["source"] = str(path)
        ds.encoding[LAZY] = True
    return _recording_from(path, sites, attrs, validate=validate, scan_values=False)


def _recording_from(path: Path, sites: dict[str, xr.Dataset], attrs: dict[str, Any], *,
                    validate: bool, scan_values: bool) -> Recording:
    """The Recording of a file's sites and root attributes (system id, task, schema checked),
    each site validated (``scan_values``: its activity read for non-finite values too)."""
    system_id = str(attrs.pop("system_id", path.stem))
    task = attrs.pop("task", None)
    schema = attrs.pop("schema", None)
    if validate and schema is not None and str(schema) != SCHEMA:
        raise RecordingError(f"root attribute schema = {str(schema)!r}, expected {SCHEMA!r}",
                             file=path, field="schema",
                             fix=f"write the file in the {SCHEMA} schema (or drop the attribute "
                             "if it names another format by mistake)")
    if validate:
        if not sites:
            raise RecordingError("no site groups in the file", file=path, field="activity",
                                 fix="each site is a netCDF group holding an 'activity' variable")
        for name, ds in sites.items():
            validate_site(ds, file=path, site=name, scan_values=scan_values)
    return Recording(system_id=system_id, sites=sites, task=None if task is None else str(task),
                     attrs=attrs, path=path)


def load_or_open(path: str | Path) -> Recording:
    """:func:`load_recording` when the file's declared data fit in memory, else
    :func:`open_recording` (activity left in the file, read by rows).

    For callers that read activity a block of rows at a time (the ``cka`` and ``rsa``
    measures); everything else should call :func:`load_recording`, which refuses such files.
    """
    try:
        check_declared_size(path)
    except RecordingError:
        return open_recording(path)
    return load_recording(path)


def is_lazy(ds: xr.Dataset) -> bool:
    """Whether a site's activity is still in its file (opened by :func:`open_recording`)."""
    return bool(ds.encoding.get(LAZY))


def _check_netcdf(path: Path) -> None:
    """Refuse a missing file or one that is not netCDF (a pickle is named as such)."""
    if not path.exists():
        raise RecordingError("no such file", file=path, fix="check the path")
    with path.open("rb") as fh:
        magic = fh.read(8)
    if not (magic.startswith(b"\x89HDF") or magic.startswith(b"CDF")):
        from simbench.pickled import refuse_pickled

        refuse_pickled(path)
        raise RecordingError("not a netCDF file (wrong magic bytes)", file=path,
                             fix="write recordings with simbench.save_recording or xarray's "
                             "to_netcdf (netCDF-4)")


def _declared_or_none(path: Path) -> list[tuple[str, dict[str, int], str, int]] | None:
    try:
        return declared_variables(path)
    except Exception:  # unreadable headers: the open reports it
        return None


def _coords_loaded(ds: xr.Dataset, path: Path, group: str | None) -> xr.Dataset:
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
    return _normalise_strings(ds, path)


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


def _declared_schema(path: str | Path) -> str | None:
    """The root group's ``schema`` attribute, read from the headers only (None: none or
    unreadable)."""
    import netCDF4

    try:
        with netCDF4.Dataset(path, "r") as nc:
            value = nc.__dict__.get("schema")
    except Exception:
        return None
    return None if value is None else str(value)


def available_memory() -> int:
    """Bytes of memory available now: the OS's figure, capped by a cgroup limit and by the
    ``SIMBENCH_MEMORY_MB`` environment variable when either is lower."""
    import psutil

    avail = int(psutil.virtual_memory().available)
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap, used = Path(limit).read_text().strip(), Path(usage).read_text().strip()
        except OSError:
            continue
        if cap.isdigit() and used.isdigit():
            avail = min(avail, max(0, int(cap) - int(used)))
        break
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        try:
            avail = min(avail, int(float(env) * 2**20))
        except ValueError:
            raise RecordingError(f"{MEMORY_ENV}={env!r} is not a number of megabytes",
                                 field=MEMORY_ENV, fix=f"e.g. {MEMORY_ENV}=4096") from None
    return avail


def declared_variables(path: str | Path) -> list[tuple[str, dict[str, int], str, int]]:
    """Every variable of a netCDF file as (path, {dim: size}, dtype, bytes), from metadata only.

    Nothing is read but the headers, so this is fast whatever the file declares. Variable-length
    strings count ``STRING_BYTES`` per element.
    """
    import netCDF4

    out = []
    with netCDF4.Dataset(path, "r") as nc:
        groups = [nc]
        while groups:
            group = groups.pop()
            for name, var in group.variables.items():
                try:
                    dtype = np.dtype(var.dtype)
                    item = STRING_BYTES if dtype.kind in "OSU" else dtype.itemsize
                except TypeError:  # variable-length and compound types
                    dtype, item = np.dtype(object), STRING_BYTES
                label = "str" if var.dtype is str else str(dtype)
                where = f"{group.path.rstrip('/')}/{name}"
                out.append((where, dict(zip(var.dimensions, var.shape)), label,
                            math.prod(var.shape) * item))
            groups.extend(group.groups.values())
    return out


def check_declared_size(path: str | Path) -> None:
    """Refuse a file whose declared data would not fit in the available memory, before reading.

    The limit is ``MEMORY_FRACTION`` of :func:`available_memory`; the error names the declared
    total, the largest variable and its dims.
    """
    try:
        variables = declared_variables(path)
    except Exception:  # unreadable headers: load_recording's own open reports it
        return
    total = sum(v[3] for v in variables)
    avail = available_memory()
    limit = int(avail * MEMORY_FRACTION)
    if total <= limit:
        return
    name, dims, dtype, nbytes = max(variables, key=lambda v: v[3])
    shape = ", ".join(f"{d}={n:,}" for d, n in dims.items())
    raise RecordingError(
        f"the file declares {_size(total)} of data (largest: '{name}' [{shape}] {dtype}, "
        f"{_size(nbytes)}), more than the {_size(limit)} it may use "
        f"({MEMORY_FRACTION:.0%} of {_size(avail)} available); nothing was read",
        file=path, field=name.rsplit("/", 1)[-1],
        fix="if those sizes are wrong the file is damaged or was written with a wrong "
        "dimension (see `ncdump -h FILE`); if they are right, use a machine with more memory "
        f"or split the recording into files by site or by stimuli ({MEMORY_ENV} sets the "
        "memory simbench assumes)")


def _size(nbytes: float) -> str:
    """A byte count in binary units (1 MiB = 2**20 bytes, as ``SIMBENCH_MEMORY_MB`` counts)."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:,.0f} {unit}" if unit == "bytes" else f"{nbytes:,.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:,.1f} TiB"


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
    keep = {c: da[c] for c in da.coords
            if c != stimulus_id_coord and da[c].dims == tuple(d for d in order if d != "unit")}
    ds = xr.Dataset({ACTIVITY: (order, np.asarray(da.values, dtype=float))},
                    coords={"stimulus_id": ("stimulus", ids),
                            **{k: (v.dims, v.values) for k, v in keep.items()}},
                    attrs={"system_id": system_id, "site": site, "schema": SCHEMA})
    validate_site(ds, site=site)
    return Recording(system_id=system_id, sites={site: ds}, task=task)


def _normalise_strings(ds: xr.Dataset, path: Path | None = None) -> xr.Dataset:
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
            limit = int(available_memory() * MEMORY_FRACTION)
            if need > limit:
                raise RecordingError(
                    f"string variable of {var.size:,} entries up to {longest:,} characters "
                    f"long needs {_size(need)} as fixed-width text, more than the "
                    f"{_size(limit)} it may use", file=path, field=str(name),
                    fix="shorten the strings (ids and tokens are short labels)")
            ds[name] = var.astype(str)
    return ds


def _netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """netCDF attrs hold strings and numbers only: drop Nones, encode bools and dicts."""
    import json

    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (dict, list, tuple)) and not all(
                isinstance(v, (int, float)) for v in value):
            value = json.dumps(value)
        out[key] = value
    return out
