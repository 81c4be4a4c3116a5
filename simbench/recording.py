"""Recordings: one system's activity at named sites, as netCDF-4 through xarray.

A recording is one file per system with one group per site. Each site dataset holds a data
variable ``activity`` with dims (``stimulus``, ``time``, ``unit``) (``time`` may be absent for
static data) and coordinates:

- ``stimulus_id`` (stimulus): unique strings; two systems are paired on these.
- ``token`` (stimulus, time): the input at each step, as strings.
- ``valid`` (stimulus, time): bool, false on padding; padding never enters a measure.
- causal variables, e.g. ``count``, ``phase`` (stimulus, time): their values after each step.

The root group's attrs hold ``schema`` (``simbench-recording/1``), ``system_id`` and ``task``.
Brain-Score style assemblies (``presentation``, ``neuroid``, ``time_bin``) load through
:func:`from_brainscore`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import RecordingError, SiteError

SCHEMA = "simbench-recording/1"
ACTIVITY = "activity"
RESERVED_COORDS = ("stimulus_id", "token", "valid")
BRAINSCORE_RENAMING = {"presentation": "stimulus", "neuroid": "unit", "time_bin": "time"}


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
def site_problems(ds: xr.Dataset) -> list[tuple[str, str]]:
    """Every schema problem of one site dataset, as (field, explanation) pairs."""
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
    else:
        values = act.values
        valid = ds["valid"].values if "valid" in ds.coords else None
        bad = ~np.isfinite(values)
        if valid is not None and valid.shape == values.shape[:-1]:
            bad &= valid[..., None]
        if bad.any():
            where = np.argwhere(bad)[0]
            problems.append((ACTIVITY, f"{int(bad.sum())} NaN/Inf values (first at index "
                             f"{tuple(int(i) for i in where)}); remove them or mark the steps "
                             "invalid"))
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
    if "valid" in ds.coords and ds["valid"].dtype != bool:
        problems.append(("valid", f"'valid' must be bool, got {ds['valid'].dtype}"))
    return problems


def validate_site(ds: xr.Dataset, *, file: object = None, site: str | None = None) -> None:
    """Raise a RecordingError listing every problem of one site dataset."""
    problems = site_problems(ds)
    if problems:
        field = problems[0][0]
        detail = "; ".join(f"{f}: {p}" for f, p in problems)
        raise RecordingError(detail, file=file, site=site, field=field,
                             fix="see `simbench validate FILE` and the README's schema section")


def recording_problems(path: str | Path) -> list[str]:
    """Every problem of a recording file, one sentence each (empty when it is valid)."""
    try:
        rec = load_recording(path, validate=False)
    except RecordingError as exc:
        return [str(exc)]
    out = []
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
        tree[f"/{name}"] = ds.assign_attrs(_netcdf_attrs(ds.attrs))
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
        raise RecordingError("not a netCDF file (wrong magic bytes)", file=path,
                             fix="write recordings with simbench.save_recording or xarray's "
                             "to_netcdf (netCDF-4)")
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
        ds = _normalise_strings(node.to_dataset(inherit=False))
        sites[name] = ds
    if not sites and ACTIVITY in root.data_vars:  # a flat single-site file
        site_name = str(attrs.get("site", "default"))
        sites[site_name] = _normalise_strings(root)
    for ds in sites.values():  # so later errors (e.g. pairing) can name the file
        ds.encoding["source"] = str(path)
    tree.close()
    system_id = str(attrs.pop("system_id", path.stem))
    task = attrs.pop("task", None)
    attrs.pop("schema", None)
    rec = Recording(system_id=system_id, sites=sites, task=None if task is None else str(task),
                    attrs=attrs, path=path)
    if validate:
        if not sites:
            raise RecordingError("no site groups in the file", file=path, field="activity",
                                 fix="each site is a netCDF group holding an 'activity' variable")
        for name, ds in sites.items():
            validate_site(ds, file=path, site=name)
    return rec


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


def _normalise_strings(ds: xr.Dataset) -> xr.Dataset:
    """netCDF returns variable-length strings as objects; give them back their str dtype."""
    for name in list(ds.variables):
        var = ds[name]
        if var.dtype == object:
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
