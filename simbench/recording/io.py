"""Reading and writing recordings as netCDF-4 files, one group per site.

:func:`load_recording` reads a file whole, :func:`open_recording` leaves the activity in the
file to be read by rows (for files too large to load), :func:`load_or_open` picks between them;
:func:`recording_problems` lists every problem of a file in bounded memory, and
:func:`name_tokens` writes a copy whose integer token codes are replaced by names.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import RecordingError, SimbenchError, TokenCodesWarning
from simbench.recording.lazy import GROUP, LAZY, coords_loaded, read_whole, unwritten_variables
from simbench.recording.memory import check_declared_size
from simbench.recording.schema import ACTIVITY, SCHEMA, Recording
from simbench.recording.tokens import has_token_codes, warn_token_codes
from simbench.recording.validate import (
    scanned_problems,
    site_problems,
    unwritten_problems,
    validate_site,
)


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
    tree = {"/": xr.Dataset(attrs=netcdf_attrs(root_attrs))}
    for name, ds in rec.sites.items():
        # replace the attrs, not update them: assign_attrs would keep a None (e.g. an NWB
        # file's missing subject id), which netCDF cannot store
        site = ds.copy(deep=False)
        site.attrs = netcdf_attrs(ds.attrs)
        tree[f"/{name}"] = site
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    xr.DataTree.from_dict(tree).to_netcdf(tmp, engine="netcdf4")
    tmp.replace(path)  # never leave a half-written recording under the real name
    rec.path = path
    return path


def load_recording(path: str | Path, *, validate: bool = True) -> Recording:
    """Read a recording written by :func:`save_recording` (or by anyone following the schema).

    Memory: refused before anything is read when what loading holds (every declared variable
    plus one read block, see :func:`~simbench.recording.memory.check_declared_size`) would not
    fit. The activity is read a block at a time into one array, so decoding fill values never
    costs a second copy; a site whose activity the file declares but never wrote is refused
    from the file's chunk index before any of it is read.
    """
    path = Path(path)
    check_netcdf(path)
    check_declared_size(path)
    sites, attrs = _open_sites(path)
    system_id, task, attrs = _root_fields(path, attrs, sites, validate=validate)
    for name, ds in sites.items():
        if validate:
            _refuse_unwritten(ds, path, name)
        if ACTIVITY in ds.data_vars:
            act = ds[ACTIVITY].variable
            try:
                values = read_whole(path, ds.encoding.get(GROUP), act.shape, act.dtype)
            except Exception as exc:
                raise RecordingError(f"cannot read the file ({type(exc).__name__}: {exc}); it "
                                     "may be truncated or corrupt", file=path, site=name,
                                     field=ACTIVITY, fix="re-record or re-download it") from None
            ds[ACTIVITY] = xr.Variable(act.dims, values, attrs=act.attrs)
        if validate:
            validate_site(ds, file=path, site=name, scan_values=True)
    return Recording(system_id=system_id, sites=sites, task=task, attrs=attrs, path=path)


def open_recording(path: str | Path, *, validate: bool = True) -> Recording:
    """Open a recording without reading its activity: a :class:`Recording` whose sites hold
    every coordinate (stimulus ids, tokens, valid, causal variables) in memory and ``activity``
    as a lazy array backed by the file.

    For files too large to load (:func:`load_recording` refuses them): measures that read the
    activity a block of rows at a time (``cka``, ``rsa``) score them in bounded memory;
    anything that needs the activity whole gets the same refusal when it pairs the site (see
    :func:`simbench.pairing.pair_sites`). Only the coordinates must fit in memory. Validation
    checks the schema from the metadata and coordinates, and refuses activity the file never
    wrote (from its chunk index); NaN/Inf activity is reported when the block holding it is
    read (scanning it here would read the whole file once more).
    """
    path = Path(path)
    check_netcdf(path)
    check_declared_size(path, lazy=True)
    sites, attrs = _open_sites(path)
    for ds in sites.values():
        ds.encoding[LAZY] = True
    system_id, task, attrs = _root_fields(path, attrs, sites, validate=validate)
    if validate:
        for name, ds in sites.items():
            validate_site(ds, file=path, site=name, scan_values=False)
            _refuse_unwritten(ds, path, name)
    return Recording(system_id=system_id, sites=sites, task=task, attrs=attrs, path=path)


def _open_sites(path: Path) -> tuple[dict[str, xr.Dataset], dict[str, Any]]:
    """Every site of a file with its coordinates in memory and its activity left in the file,
    and the root group's attributes."""
    try:
        tree = xr.open_datatree(path, engine="netcdf4")
        sites = {name: coords_loaded(node.to_dataset(inherit=False), path, name)
                 for name, node in tree.children.items()}
        root = tree.to_dataset()
        if not sites and ACTIVITY in root.data_vars:  # a flat single-site file
            sites[str(root.attrs.get("site", "default"))] = coords_loaded(root, path, None)
        tree.close()  # the activity is read by _FileActivity, which holds no open handle
    except SimbenchError:
        raise
    except Exception as exc:
        raise RecordingError(f"cannot read the file ({type(exc).__name__}: {exc}); it may be "
                             "truncated or corrupt", file=path,
                             fix="re-record or re-download it") from None
    for ds in sites.values():  # so later errors (e.g. pairing) can name the file
        ds.encoding["source"] = str(path)
    return sites, dict(root.attrs)


def _root_fields(path: Path, attrs: dict[str, Any], sites: dict[str, xr.Dataset], *,
                 validate: bool) -> tuple[str, str | None, dict[str, Any]]:
    """(system id, task, other attributes) of a file's root group, the schema checked, and a
    warning for each site whose tokens are integer codes (see :mod:`.tokens`)."""
    system_id = str(attrs.pop("system_id", path.stem))
    task = attrs.pop("task", None)
    schema = attrs.pop("schema", None)
    if validate and schema is not None and str(schema) != SCHEMA:
        raise RecordingError(f"root attribute schema = {str(schema)!r}, expected {SCHEMA!r}",
                             file=path, field="schema",
                             fix=f"write the file in the {SCHEMA} schema (or drop the attribute "
                             "if it names another format by mistake)")
    if validate and not sites:
        raise RecordingError("no site groups in the file", file=path, field="activity",
                             fix="each site is a netCDF group holding an 'activity' variable")
    for name, ds in sites.items():
        warn_token_codes(ds, file=path, site=name, task=None if task is None else str(task))
    return system_id, None if task is None else str(task), attrs


def _refuse_unwritten(ds: xr.Dataset, path: Path, site: str) -> None:
    """A RecordingError when the file never wrote activity the site declares (checked from
    the chunk index, before any of it is read)."""
    problems = unwritten_problems(ds) if ACTIVITY in ds.data_vars else []
    if problems:
        raise RecordingError(problems[0][1], file=path, site=site, field=ACTIVITY,
                             fix="see `simbench validate FILE`")


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


def check_netcdf(path: Path) -> None:
    """Refuse a missing file or one that is not netCDF (a pickle is named as such)."""
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


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """netCDF attrs hold strings and numbers only: drop Nones, encode bools and dicts."""
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


def recording_problems(path: str | Path) -> list[str]:
    """Every problem of a recording file, one sentence each (empty when it is valid).

    Bounded memory whatever the file declares: the coordinates are read into memory (refused,
    as a problem, when they alone would not fit), the activity is never held: stimuli the file
    holds no data for are found from its chunk index (:func:`unwritten_problems`), and the
    values it does hold are checked a block at a time (:func:`scanned_problems`).
    """
    try:
        rec = open_recording(path, validate=False)
    except SimbenchError as exc:  # e.g. a RecordingError, or a pickled checkpoint refused
        return [str(exc)]
    import netCDF4

    out = []
    with netCDF4.Dataset(path, "r") as nc:  # the root's schema, from the headers only
        declared = str(nc.__dict__.get("schema", SCHEMA))
    if declared != SCHEMA:
        out.append(f"file {path}, field 'schema': root attribute schema = {declared!r}, "
                   f"expected {SCHEMA!r} (or no schema attribute)")
    if not rec.sites:
        out.append(f"file {path}: no site groups; each site is a group holding 'activity'")
    for name, ds in rec.sites.items():
        problems = [(v, f"'{v}' was declared but never written: the file holds no data for "
                     "it, only its fill value; write it or drop it")
                    for v in unwritten_variables(path, ds.encoding.get(GROUP))
                    if v != ACTIVITY and v in ds.variables]
        problems += site_problems(ds, scan_values=False)
        if not any(f == ACTIVITY for f, _ in problems):  # activity readable as numbers
            # what was never written from the chunk index (no value read), then the values
            # that were, a block at a time (never-written blocks are skipped unread)
            problems = [*unwritten_problems(ds), *scanned_problems(ds), *problems]
        out.extend(f"file {path}, site '{name}', field '{f}': {p}" for f, p in problems)
    return out


def name_tokens(path: str | Path, out: str | Path, vocab: Sequence[str]) -> Path:
    """Write a copy of the recording at ``path`` to ``out`` with each integer token code
    replaced by its name, ``vocab[code]``; returns ``out``.

    ``vocab``: the token names in code order (for a task's own codes, its ``vocab``, e.g.
    ``get_registry().make_task("counting").vocab``). Codes at invalid steps outside the
    vocabulary become ``''``; a valid step whose code has no name is refused, naming the code.
    Loads the file whole (:func:`load_recording`).
    """
    if isinstance(vocab, str):
        raise RecordingError(f"vocab={vocab!r} is one string; pass the token names in code "
                             "order", field="vocab",
                             fix="for a task's own codes: get_registry().make_task(NAME).vocab")
    names = np.asarray([str(v) for v in vocab] + [""])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TokenCodesWarning)
        rec = load_recording(path)
    for site, ds in rec.sites.items():
        if not has_token_codes(ds):
            continue
        codes = np.asarray(ds["token"].values).astype(np.int64)
        inside = (codes >= 0) & (codes < len(vocab))
        valid = np.asarray(ds["valid"].values, dtype=bool) if "valid" in ds.coords else True
        bad = ~inside & valid
        if bad.any():
            raise RecordingError(
                f"token code {int(codes[bad][0])} has no name: the vocabulary has "
                f"{len(vocab)} names (codes 0 to {len(vocab) - 1})", file=path, site=site,
                field="token", fix="pass the vocabulary the codes index, in code order")
        ds["token"] = (ds["token"].dims, names[np.where(inside, codes, len(vocab))])
    return save_recording(rec, out)
