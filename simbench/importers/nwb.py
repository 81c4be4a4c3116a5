"""NWB files in: the units table's spike times binned per trial of the trials table.

NWB (Neurodata Without Borders) is the field's standard container for electrophysiology. A
sorted session keeps each unit's spike times in the ``units`` table and the trial structure in
the ``trials`` table (``start_time``, ``stop_time`` and any custom columns: stimulus, choice,
event times). :func:`from_nwb` reads both through ``pynwb`` (an optional dependency:
``pip install simbench[nwb]``) and hands them to :func:`~simbench.importers.from_spike_times`,
mapping trial columns to tokens, stimulus ids and causal variables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simbench.errors import RecordingError, SimbenchError
from simbench.importers.spikes import from_spike_times
from simbench.recording import Recording

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def from_nwb(
    path: str | Path,
    *,
    bin_width: float,
    system_id: str | None = None,
    site: str = "units",
    task: str | None = None,
    align_to: str = "start_time",
    trial_duration: float | None = None,
    tokens: str | Mapping[str, str] | None = None,
    variables: Sequence[str] | Mapping[str, str] | None = None,
    stimulus_ids: str | None = None,
    rates: bool = False,
    outside: Literal["error", "drop"] = "drop",
    partial_bins: Literal["error", "drop"] = "error",
    blank: str = "",
    pad_token: str = "PAD",
    dtype: Any = None,
) -> Recording:
    """Bin an NWB file's units over its trials into a one-site Recording.

    Each row of the trials table becomes one stimulus; its window starts at ``align_to`` and
    ends at ``stop_time`` (or lasts ``trial_duration`` seconds).

    Args:
        path: an NWB 2 file (HDF5).
        bin_width: bin width in seconds.
        system_id: the recorded system; default the subject's ``subject_id``, else the file's
            ``identifier``.
        site: the site name.
        task: the task name the recording is of.
        align_to: the trials column whose times start each window: ``"start_time"`` or an
            event column (e.g. ``"stim_on_time"``).
        trial_duration: a fixed window length in seconds after ``align_to``; default: up to
            each trial's ``stop_time``.
        tokens: a trials column whose per-trial value is the token of every bin of the trial
            (a static stimulus), or ``{event_time_column: token}`` where the token is a
            trials column (its per-trial value) or, if no column has that name, a literal
            string: each event is placed in the bin holding its time (NaN times are skipped,
            other bins get ``blank``).
        variables: trials columns holding integer causal variables, as a list of names or
            ``{variable name: column}``; each trial's value holds over the whole trial (NaN
            means undefined, -1).
        stimulus_ids: a trials column of unique stimulus ids; default ``trial00000``, ... from
            the trials table's ids.
        rates, partial_bins, blank, pad_token, dtype: as in
            :func:`~simbench.importers.from_spike_times`.
        outside: spikes outside every trial window (inter-trial intervals, before the first
            trial): ``"drop"`` (default, with a warning saying how many; a session records
            between trials) or ``"error"``.

    Raises:
        SimbenchError: pynwb is not installed.
        RecordingError: not an NWB file, no units or no trials table, overlapping trials, a
            column that does not exist (the message lists those that do), plus every error of
            :func:`~simbench.importers.from_spike_times`.
    """
    path = Path(path)
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise SimbenchError("reading NWB files needs pynwb, which is not installed",
                            file=path, fix="pip install 'simbench[nwb]'") from None
    if not path.exists():
        raise RecordingError("no such file", file=path, fix="check the path")
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic != HDF5_MAGIC:
        raise RecordingError("not an NWB file (not HDF5)", file=path,
                             fix="give an NWB 2 file written by pynwb/MatNWB (.nwb)")
    try:
        io = NWBHDF5IO(str(path), mode="r")
        nwb = io.read()
    except Exception as exc:
        raise RecordingError(f"not an NWB file, or one pynwb cannot read "
                             f"({type(exc).__name__}: {exc})", file=path,
                             fix="give an NWB 2 file written by pynwb/MatNWB (.nwb)") from None
    try:
        data, attrs = _read(nwb, path, align_to, tokens, variables, stimulus_ids)
    finally:
        io.close()

    if system_id is None:
        system_id = attrs["nwb_subject_id"] or attrs["nwb_identifier"]
    if trial_duration is not None:
        attrs["trial_duration_s"] = float(trial_duration)
        data["trial_ends"] = None
    if align_to == "start_time":
        data["align_to"] = None
    try:
        return from_spike_times(
            **data, bin_width=bin_width, system_id=str(system_id),
            trial_duration=trial_duration, site=site, task=task, rates=rates, outside=outside,
            partial_bins=partial_bins, blank=blank, pad_token=pad_token, dtype=dtype,
            attrs=attrs)
    except RecordingError as exc:  # the same error, now naming the NWB file
        raise RecordingError(exc.message, file=path, site=exc.site, field=exc.field,
                             fix=exc.fix) from None


def _read(nwb: Any, path: Path, align_to: str, tokens: Any, variables: Any,
          stimulus_ids: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments from_spike_times needs, read out of the open file as numpy arrays, and
    the recording's provenance attributes."""
    units, trials = nwb.units, nwb.trials
    missing = [name for name, table in (("units", units), ("trials", trials)) if table is None]
    if missing:
        raise RecordingError(f"the file has no {' and no '.join(missing)} table", file=path,
                             field=missing[0],
                             fix="from_nwb needs a sorted units table (spike times) and a "
                             "trials table; add them with NWBFile.add_unit / add_trial")
    if "spike_times" not in units.colnames:
        raise RecordingError(f"the units table has no spike_times column (columns: "
                             f"{', '.join(units.colnames) or 'none'})", file=path,
                             field="units", fix="add units with NWBFile.add_unit(spike_times=...)")
    st = units["spike_times"]
    flat = np.asarray(st.target.data[:], dtype=np.float64)
    ends = np.asarray(st.data[:], dtype=np.int64)
    spikes = np.split(flat, ends[:-1]) if len(ends) else []
    unit_ids = [str(i) for i in units.id[:]]

    trial_ids = np.asarray(trials.id[:])
    start = np.asarray(trials["start_time"].data[:], dtype=np.float64)
    stop = np.asarray(trials["stop_time"].data[:], dtype=np.float64)
    _check_trials(start, stop, trial_ids, path)
    columns = list(trials.colnames)
    for name in ("start_time", "stop_time"):
        if name not in columns:
            columns.insert(0, name)

    def column(name: str, what: str) -> np.ndarray:
        if name not in columns:
            raise RecordingError(f"{what}: the trials table has no column '{name}' (columns: "
                                 f"{', '.join(columns)})", file=path, field=name,
                                 fix="name one of those columns")
        col = trials[name]
        if hasattr(col, "target"):  # a ragged column: several values per trial
            raise RecordingError(f"{what}: trials column '{name}' is ragged (several values "
                                 "per trial)", file=path, field=name,
                                 fix="name a column with one value per trial")
        values = np.asarray(col.data[:])
        if values.dtype.kind in "SO":
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values])
        return values

    align = column(align_to, "align_to").astype(np.float64)
    token_arg: Any = None
    if isinstance(tokens, str):
        token_arg = [str(v) for v in column(tokens, "tokens")]
    elif tokens is not None:
        events: list[list[tuple[float, str]]] = [[] for _ in trial_ids]
        for time_col, tok in tokens.items():
            times = column(time_col, "tokens (event time column)").astype(np.float64)
            labels = (column(tok, "tokens (token column)") if tok in columns
                      else np.full(len(trial_ids), tok))
            for i, (t, label) in enumerate(zip(times, labels)):
                if np.isfinite(t):
                    events[i].append((float(t), str(label)))
        token_arg = [sorted(ev) for ev in events]
    var_arg = None
    if variables is not None:
        mapping = (dict(variables) if isinstance(variables, Mapping)
                   else {str(c): str(c) for c in variables})
        var_arg = {name: column(col, f"variable '{name}'") for name, col in mapping.items()}
    ids = ([f"trial{int(i):05d}" for i in trial_ids] if stimulus_ids is None
           else [str(v) for v in column(stimulus_ids, "stimulus_ids")])
    subject = getattr(nwb, "subject", None)
    return {
        "spike_times": spikes, "unit_ids": unit_ids, "trial_starts": start, "trial_ends": stop,
        "align_to": align, "tokens": token_arg, "variables": var_arg, "stimulus_ids": ids,
    }, {
        "nwb_file": path.name, "nwb_identifier": str(nwb.identifier),
        "nwb_session_description": str(nwb.session_description),
        "nwb_subject_id": None if subject is None or subject.subject_id is None
        else str(subject.subject_id), "align_to": align_to, "trial_ids": trial_ids.tolist(),
    }


def _check_trials(start: np.ndarray, stop: np.ndarray, ids: np.ndarray, path: Path) -> None:
    """Trials must end after they start and must not overlap (a spike would count twice)."""
    if len(start) == 0:
        raise RecordingError("the trials table is empty", file=path, field="trials",
                             fix="add trials with NWBFile.add_trial")
    bad = ~(stop > start)
    if bad.any():
        i = int(np.argmax(bad))
        raise RecordingError(f"{int(bad.sum())} trials do not end after they start (first: "
                             f"trial id {ids[i]}, {start[i]:.6g} s to {stop[i]:.6g} s)",
                             file=path, field="trials", fix="fix the trials' stop_time")
    order = np.argsort(start, kind="stable")
    overlap = start[order][1:] < stop[order][:-1]
    if overlap.any():
        j = int(np.argmax(overlap))
        a, b = order[j], order[j + 1]
        raise RecordingError(
            f"{int(overlap.sum())} trials overlap the next one (first: trial id {ids[a]} "
            f"[{start[a]:.6g}, {stop[a]:.6g}] s and trial id {ids[b]} [{start[b]:.6g}, "
            f"{stop[b]:.6g}] s)", file=path, field="trials",
            fix="trials must not overlap (a spike would count in two trials): fix their "
            "start_time/stop_time in the file")


__all__ = ["from_nwb"]
