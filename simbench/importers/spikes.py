"""Spike times and trial times in, a recording in simbench's schema out.

An electrophysiology experiment comes as spike times per sorted unit (seconds on the session
clock) and a trial structure (when each trial starts and ends, what was shown, what the task
variables were). Measures need ``activity`` [stimulus, time, unit]: :func:`from_spike_times`
bins each trial's window into fixed-width bins, one stimulus per trial, and pads trials of
different lengths to the longest with ``valid`` false past each trial's end.

The binning is vectorised (see ``_bin_into``); memory beyond the output array stays at about
80 MB whatever the number of spikes.

Bins are half-open, ``[t0 + j * bin_width, t0 + (j + 1) * bin_width)`` with the edges computed
exactly that way, so a spike on an edge counts in the later bin, as with ``np.histogram``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from simbench.errors import RecordingError
from simbench.recording import Recording, site_dataset
from simbench.tasks.base import UNDEFINED  # a causal variable's value where it has none

# Output cells filled per block of trials: 2**21 cells (8 MB of int32) stay in cache while
# counts are added into them.
BLOCK_CELLS = 1 << 21
# Spikes binned at once: the scratch arrays take about 80 bytes a spike, so at most 2**20
# spikes (80 MB) and at most one 64th of the output's cells (well under the output's size).
MAX_GROUP_SPIKES = 1 << 20
MIN_GROUP_SPIKES = 1 << 14
RESERVED_NAMES = ("stimulus", "time", "unit", "stimulus_id", "token", "valid")
WHOLE_TOL = 1e-6  # in bins: a duration within this of a whole number of bins is whole


class SpikeWarning(UserWarning):
    """Spikes were dropped: outside every trial window, or in a dropped partial last bin."""


def from_spike_times(
    spike_times: Any,
    trial_starts: Any,
    *,
    bin_width: float,
    system_id: str,
    trial_duration: float | Sequence[float] | np.ndarray | None = None,
    trial_ends: Sequence[float] | np.ndarray | None = None,
    align_to: Sequence[float] | np.ndarray | None = None,
    tokens: Any = None,
    variables: Any = None,
    stimulus_ids: Sequence[str] | np.ndarray | None = None,
    site: str = "units",
    task: str | None = None,
    rates: bool = False,
    unit_ids: Sequence[Any] | None = None,
    outside: Literal["error", "drop"] = "error",
    partial_bins: Literal["error", "drop"] = "error",
    blank: str = "",
    pad_token: str = "PAD",
    dtype: Any = None,
    attrs: Mapping[str, Any] | None = None,
) -> Recording:
    """Bin spike times into a one-site :class:`~simbench.recording.Recording`.

    Args:
        spike_times: seconds on the session clock, one of: a sequence with one sorted 1-D
            array per unit; a dict ``{unit_id: times}``; or a flat pair ``(times, unit_index)``
            of equal-length arrays (integer ``unit_index``, e.g. Kilosort's spike clusters),
            each unit's times in increasing order.
        trial_starts: start time of each trial (seconds), one per trial, in any order; the
            recording's stimuli follow this order.
        bin_width: bin width in seconds.
        system_id: the recorded system (the animal, the session).
        trial_duration: the window length after each trial's start (or ``align_to`` event):
            one number, or one per trial. Give this or ``trial_ends``.
        trial_ends: end time of each trial (seconds). Give this or ``trial_duration``.
        align_to: event times, one per trial (e.g. stimulus onset), to start each trial's
            window at instead of its start; each must lie inside its trial.
        tokens: the input at each bin, one of: an array [trial, bin] of strings (bins past a
            trial's end are replaced by ``pad_token``); per trial, a string (the token of
            every bin of the trial), a sequence of strings (one per bin of that trial), or a
            sequence of ``(time, token)`` events on the session clock, each binned into the
            bin holding its time (other bins get ``blank``; two events in one bin are an
            error).
        variables: causal variables as integers, one of: a ``{name: values}`` dict whose
            values are per trial (1-D, one value per trial, held over the whole trial), per
            bin ([trial, bin] array) or a list of per-trial 1-D arrays with one value per bin;
            or a per-trial table (a pandas DataFrame, one row per trial). NaN means
            undefined and becomes -1, as does padding.
        stimulus_ids: one unique id per trial (default ``trial00000``, ``trial00001``, ...);
            recordings are paired on these.
        site: the site name (one group in the file).
        task: the task name the recording is of.
        rates: store rates in Hz (count / bin_width, float64) instead of counts (int32).
        unit_ids: one id per unit (default: the dict keys, else ``0, 1, ...``); stored as the
            ``unit`` coordinate.
        outside: spikes outside every trial window: ``"error"`` refuses with their number and
            where they are; ``"drop"`` drops them with a :class:`SpikeWarning` saying how
            many. Either way the site attrs record ``n_spikes_outside``.
        partial_bins: a trial whose duration is not a whole number of bins: ``"error"``
            refuses; ``"drop"`` drops its incomplete last bin (and the spikes in it).
        blank: the token of bins without an event (event-form ``tokens`` only).
        pad_token: the token of bins past a trial's end.
        dtype: the activity dtype (default int32 for counts, float64 for rates).
        attrs: extra provenance stored on the site and the root.

    Returns:
        A Recording with one site: ``activity`` [stimulus, time, unit], ``valid``, ``token``
        (when given), the variables, a ``time`` coordinate (bin start in seconds from each
        window's start) and a ``unit`` coordinate (unit ids).

    Raises:
        RecordingError: naming the field and the fix, for spikes outside every trial (with
            ``outside="error"``), unsorted, negative or non-finite spike times, a bin width
            that does not divide a trial, overlapping trial windows, tokens or variables whose
            number of trials or bins does not match, non-integer variables.
    """
    bw = _bin_width(bin_width)
    for name, policy in (("outside", outside), ("partial_bins", partial_bins)):
        if policy not in ("error", "drop"):
            raise RecordingError(f"{name}={policy!r} is not one of 'error', 'drop'",
                                 site=site, field=name)
    win = _windows(trial_starts, trial_duration, trial_ends, align_to, bw, partial_bins, site)
    units, ids = _units(spike_times, unit_ids, site)
    n_trials, n_time, n_units = len(win.t0), win.n_time, len(units)
    dtype = np.dtype((np.float64 if rates else np.int32) if dtype is None else dtype)
    # the per-trial inputs first: their mistakes surface before the binning work
    ids_arr = _stimulus_ids(stimulus_ids, n_trials, site)
    token_arr = None if tokens is None else _tokens(tokens, win, blank, pad_token, site)
    var_arrs = {} if variables is None else _variables(variables, win, site)

    out = np.zeros((n_trials, n_time, n_units), dtype=dtype)
    stats = _bin_into(out, units, win, rates)
    n_spikes = int(sum(len(t) for t in units))
    n_out = int(stats.outside.sum())
    if n_out:
        _outside(stats, n_spikes, ids, win, outside, site)
    if stats.overflow:
        raise RecordingError(f"a bin holds more spikes than dtype {dtype} holds", site=site,
                             field="dtype", fix="pass a wider dtype (the default is int32)")
    n_tail = stats.tail
    if n_tail:
        warnings.warn(f"site '{site}': dropped {n_tail:,} spikes in the incomplete last bins "
                      "of trials (partial_bins='drop')", SpikeWarning, stacklevel=2)

    info = {
        "generator": "simbench.importers.from_spike_times",
        "bin_width_s": bw,
        "activity_kind": "rate_hz" if rates else "count",
        "n_spikes": n_spikes,
        "n_spikes_binned": n_spikes - n_out - n_tail,
        "n_spikes_outside": n_out,
        "n_spikes_partial_bins": n_tail,
        "aligned": int(align_to is not None),
        **dict(attrs or {}),
    }
    ds = site_dataset(out, stimulus_ids=ids_arr, site=site, system_id=system_id, task=task,
                      tokens=token_arr, valid=win.valid, variables=var_arrs, attrs=info)
    ds = ds.assign_coords(
        time=("time", np.arange(n_time) * bw,
              {"long_name": "bin start, seconds from the start of each trial's window"}),
        unit=("unit", np.asarray(ids, dtype=str)),
    )
    return Recording(system_id=system_id, sites={site: ds}, task=task,
                     attrs={"generator": info["generator"], **dict(attrs or {})})


class _BinStats:
    """What binning left out: spikes outside every window (per unit, before the first window,
    after the last) and spikes in dropped partial last bins; ``overflow`` if a narrow integer
    dtype could not hold a count."""

    def __init__(self, n_units: int) -> None:
        self.outside = np.zeros(n_units, dtype=np.int64)
        self.before = self.after = self.tail = 0
        self.overflow = False


def _bin_into(out: np.ndarray, units: list[np.ndarray], win: _Windows, rates: bool
              ) -> _BinStats:
    """Add every unit's spikes into ``out`` [trial, bin, unit], a block of trials at a time.

    A block of trials is a contiguous stretch of the output that fits in cache, so adding
    counts into it stays cheap; its spikes are each unit's slice between the block's first
    window start and the next block's (``searchsorted`` per unit). Within a unit the spikes
    are sorted and the windows do not overlap, so along the unit-by-unit concatenation the key
    (unit, trial, bin) never decreases: equal keys are adjacent, and counting is a run-length
    encoding (no sort, no dense scratch array) added into the output with one fancy ``+=``.
    """
    n_trials, n_time, n_units = out.shape
    stats = _BinStats(n_units)
    per_block = max(1, BLOCK_CELLS // (n_time * n_units))
    block_starts = np.arange(0, n_trials, per_block)
    # bounds[u, c]: first spike of unit u at or after block c's first window start; the last
    # column is the first spike at or after the last window's end.
    edges = np.append(win.t0s[block_starts], win.t1s[-1])
    bounds = np.array([np.searchsorted(t, edges, side="left") for t in units], dtype=np.int64)
    lengths = np.array([len(t) for t in units], dtype=np.int64)
    stats.before = int(bounds[:, 0].sum())
    stats.after = int((lengths - bounds[:, -1]).sum())
    stats.outside += bounds[:, 0] + lengths - bounds[:, -1]
    group = int(np.clip(out.size // 64, MIN_GROUP_SPIKES, MAX_GROUP_SPIKES))
    for c, k0 in enumerate(block_starts):
        k1 = min(int(k0) + per_block, n_trials)
        pieces: list[tuple[int, np.ndarray]] = []
        size = 0
        for u, t in enumerate(units):
            lo, hi = int(bounds[u, c]), int(bounds[u, c + 1])
            for a in range(lo, hi, group):  # a long stretch is split; += adds the parts
                piece = t[a:min(a + group, hi)]
                pieces.append((u, piece))
                size += len(piece)
                if size >= group:
                    _bin_group(pieces, out, win, int(k0), k1, rates, stats)
                    pieces, size = [], 0
        if pieces:
            _bin_group(pieces, out, win, int(k0), k1, rates, stats)
    return stats


def _bin_group(pieces: list[tuple[int, np.ndarray]], out: np.ndarray, win: _Windows, k0: int,
               k1: int, rates: bool, stats: _BinStats) -> None:
    """Count one group of spikes, all within sorted trials [k0, k1) and their gaps."""
    _, n_time, n_units = out.shape
    bw, flat = win.bw, out.reshape(-1)
    limit = np.iinfo(out.dtype).max if out.dtype.kind in "iu" and out.dtype.itemsize < 4 else None
    lens = np.array([len(p) for _, p in pieces], dtype=np.int64)
    times = np.concatenate([p for _, p in pieces])
    unit = np.repeat(np.array([u for u, _ in pieces], dtype=np.int64), lens)
    t0s, t1s = win.t0s[k0:k1], win.t1s[k0:k1]
    k = np.searchsorted(t0s, times, side="right") - 1  # >= 0: no spike precedes t0s[0]
    inside = times < t1s[k]
    if not inside.all():  # in the gaps between windows
        stats.outside += np.bincount(unit[~inside], minlength=n_units)
        times, unit, k = times[inside], unit[inside], k[inside]
    start = t0s[k]
    b = ((times - start) / bw).astype(np.int64)
    b -= times < start + b * bw  # edges exactly at start + j * bw, as np.histogram has them
    b += times >= start + (b + 1) * bw
    np.minimum(b, win.cap_s[k0:k1][k], out=b)  # float noise at a whole trial's last edge
    ok = b < win.n_bins_s[k0:k1][k]
    if not ok.all():  # spikes in dropped partial last bins
        stats.tail += int((~ok).sum())
        b, unit, k = b[ok], unit[ok], k[ok]
    if not len(b):
        return
    key = (unit * (k1 - k0) + k) * n_time + b  # non-decreasing: see _bin_into
    first = np.empty(len(key), dtype=bool)
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    run = np.flatnonzero(first)
    counts = np.diff(run, append=len(key))
    pos = (win.order[k0 + k[run]] * n_time + b[run]) * n_units + unit[run]
    if limit is not None and (flat[pos] + counts).max() > limit:
        stats.overflow = True
        return
    flat[pos] = flat[pos] + (counts / bw if rates else counts)  # assignment casts to dtype


# ---- trial windows --------------------------------------------------------------------------
class _Windows:
    """Each trial's binned window [t0, t1), its number of bins, and the windows sorted by t0."""

    def __init__(self, t0: np.ndarray, t1: np.ndarray, n_bins: np.ndarray, whole: np.ndarray,
                 bw: float) -> None:
        self.t0, self.t1, self.n_bins, self.bw = t0, t1, n_bins, bw
        self.n_time = int(n_bins.max())
        #: [trial, bin]: the bins inside each trial (False on the padding past its end)
        self.valid = np.arange(self.n_time)[None, :] < n_bins[:, None]
        self.order = np.argsort(t0, kind="stable")
        self.t0s, self.t1s = t0[self.order], t1[self.order]
        self.n_bins_s = n_bins[self.order]
        # a whole trial's last edge may sit a float ulp before t1: clamp its spikes to the
        # last bin; a partial trial's spikes past its last whole bin are dropped instead.
        self.cap_s = np.where(whole[self.order], self.n_bins_s - 1, self.n_bins_s)


def _bin_width(bin_width: Any) -> float:
    try:
        bw = float(bin_width)
    except (TypeError, ValueError):
        bw = float("nan")
    if not np.isfinite(bw) or bw <= 0:
        raise RecordingError(f"bin_width must be a positive number of seconds, got {bin_width!r}",
                             field="bin_width", fix="e.g. bin_width=0.01 for 10 ms bins")
    return bw


def _float_1d(values: Any, name: str, site: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordingError(f"{name} must be numbers in seconds ({exc})", site=site,
                             field=name) from None
    if arr.ndim != 1:
        raise RecordingError(f"{name} must be 1-D (one value per trial), got shape {arr.shape}",
                             site=site, field=name)
    if n is not None and len(arr) != n:
        raise RecordingError(f"{name} has {len(arr)} values for {n} trials", site=site,
                             field=name, fix="give one value per trial, in trial_starts' order")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise RecordingError(f"{name} has {int(bad.sum())} NaN/Inf values (first at trial "
                             f"{int(np.argmax(bad))})", site=site, field=name,
                             fix="drop those trials or give their times")
    return arr


def _windows(trial_starts: Any, trial_duration: Any, trial_ends: Any, align_to: Any, bw: float,
             partial_bins: str, site: str) -> _Windows:
    starts = _float_1d(trial_starts, "trial_starts", site)
    n = len(starts)
    if n == 0:
        raise RecordingError("no trials", site=site, field="trial_starts",
                             fix="give at least one trial start time")
    if (trial_duration is None) == (trial_ends is None):
        raise RecordingError("give exactly one of trial_duration and trial_ends", site=site,
                             field="trial_duration",
                             fix="trial_duration=2.0 (seconds, or one per trial) or "
                             "trial_ends=[...] (one end time per trial)")
    t0 = starts
    if align_to is not None:
        t0 = _float_1d(align_to, "align_to", site, n)
        early = t0 < starts
        if early.any():
            i = int(np.argmax(early))
            raise RecordingError(f"{int(early.sum())} align_to events lie before their trial's "
                                 f"start (first: trial {i}, event {t0[i]:.6g} s, start "
                                 f"{starts[i]:.6g} s)", site=site, field="align_to",
                                 fix="give one event time per trial, inside that trial")
    if trial_ends is not None:
        t1 = _float_1d(trial_ends, "trial_ends", site, n)
    else:
        dur = np.asarray(trial_duration, dtype=np.float64)
        if dur.ndim == 0:
            dur = np.full(n, float(dur))
        t1 = t0 + _float_1d(dur, "trial_duration", site, n)
    short = t1 <= t0
    if short.any():
        i = int(np.argmax(short))
        what = "trial_ends" if trial_ends is not None else "trial_duration"
        raise RecordingError(f"{int(short.sum())} trials end at or before their window starts "
                             f"(first: trial {i}, window {t0[i]:.6g} s to {t1[i]:.6g} s)",
                             site=site, field=what, fix="each trial must end after it starts "
                             "(after its align_to event when aligning)")
    exact = (t1 - t0) / bw
    rounded = np.round(exact)
    whole = np.abs(exact - rounded) <= WHOLE_TOL
    n_bins = np.where(whole, rounded, np.floor(exact)).astype(np.int64)
    if not whole.all() and partial_bins == "error":
        bad = np.flatnonzero(~whole)
        eg = ", ".join(f"trial {i}: {t1[i] - t0[i]:.6g} s = {exact[i]:.4g} bins"
                       for i in bad[:3])
        raise RecordingError(
            f"bin_width {bw:g} s does not divide the duration of {len(bad)} of {n} trials "
            f"({eg})", site=site, field="bin_width",
            fix="choose a bin width that divides every trial, give trial_duration= a whole "
            "number of bins, or pass partial_bins='drop' to drop each trial's incomplete "
            "last bin")
    if (n_bins == 0).all():
        raise RecordingError(f"every trial is shorter than one bin ({bw:g} s)", site=site,
                             field="bin_width", fix="choose a smaller bin width")
    win = _Windows(t0, t1, n_bins, whole, bw)
    overlap = win.t0s[1:] < win.t1s[:-1]
    if overlap.any():
        j = int(np.argmax(overlap))
        a, b = int(win.order[j]), int(win.order[j + 1])
        raise RecordingError(
            f"{int(overlap.sum())} trial windows overlap the next one (first: trial {a} "
            f"[{t0[a]:.6g}, {t1[a]:.6g}) s and trial {b} [{t0[b]:.6g}, {t1[b]:.6g}) s)",
            site=site, field="trial_ends" if trial_ends is not None else "trial_duration",
            fix="trial windows must not overlap (a spike would count in two trials): "
            "shorten trial_duration or check the trial times")
    return win


# ---- spike times ----------------------------------------------------------------------------
def _units(spike_times: Any, unit_ids: Sequence[Any] | None, site: str
           ) -> tuple[list[np.ndarray], list[str]]:
    """One sorted float64 array per unit, and the unit ids, after checking every unit."""
    keys: list[Any] | None = None
    if isinstance(spike_times, Mapping):
        if unit_ids is not None:
            raise RecordingError("unit ids given twice (dict keys and unit_ids)", site=site,
                                 field="unit_ids", fix="drop unit_ids= or pass a list")
        keys = list(spike_times)
        arrays = [spike_times[k] for k in keys]
    elif _is_flat_pair(spike_times):
        arrays = _split_flat(spike_times, unit_ids, site)
    else:
        if isinstance(spike_times, np.ndarray) and spike_times.ndim == 1 \
                and spike_times.dtype != object:
            raise RecordingError("spike_times is one flat array; give one array per unit or a "
                                 "(times, unit_index) pair", site=site, field="spike_times",
                                 fix="for a single unit pass [times]")
        arrays = list(spike_times)
    units = []
    for u, arr in enumerate(arrays):
        try:
            t = np.asarray(arr, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RecordingError(f"unit {u}: spike times are not numbers ({exc})", site=site,
                                 field="spike_times") from None
        if t.ndim != 1:
            raise RecordingError(f"unit {u}: spike times must be 1-D, got shape {t.shape}",
                                 site=site, field="spike_times",
                                 fix="give one 1-D array per unit (for a single unit: [times])")
        units.append(t)
    if not units:
        raise RecordingError("no units", site=site, field="spike_times",
                             fix="give one array of spike times per unit")
    if keys is not None:
        ids = [str(k) for k in keys]
    elif unit_ids is not None:
        ids = [str(x) for x in unit_ids]
        if len(ids) != len(units):
            raise RecordingError(f"unit_ids has {len(ids)} ids for {len(units)} units",
                                 site=site, field="unit_ids", fix="give one id per unit")
    else:
        ids = [str(u) for u in range(len(units))]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise RecordingError(f"duplicate unit ids, e.g. {dup}", site=site, field="unit_ids",
                             fix="give every unit a unique id")
    for u, t in enumerate(units):
        _check_unit(t, ids[u], site)
    return units, ids


def _is_flat_pair(spike_times: Any) -> bool:
    if not (isinstance(spike_times, tuple) and len(spike_times) == 2):
        return False
    times, index = (np.asarray(x) for x in spike_times)
    return (times.ndim == 1 and index.ndim == 1 and len(times) == len(index)
            and index.dtype.kind in "iu" and times.dtype.kind in "iuf")


def _split_flat(pair: tuple[Any, Any], unit_ids: Sequence[Any] | None, site: str
                ) -> list[np.ndarray]:
    """(times, unit_index) -> one array per unit, keeping each unit's order (stable sort)."""
    times = np.asarray(pair[0], dtype=np.float64)
    index = np.asarray(pair[1])
    if len(index) and index.min() < 0:
        raise RecordingError(f"unit_index has {int((index < 0).sum())} negative values",
                             site=site, field="spike_times",
                             fix="unit_index holds 0-based unit numbers")
    n_units = len(unit_ids) if unit_ids is not None else (int(index.max()) + 1 if len(index)
                                                          else 0)
    if len(index) and index.max() >= n_units:
        raise RecordingError(f"unit_index goes up to {int(index.max())} but unit_ids names "
                             f"{n_units} units", site=site, field="unit_ids",
                             fix="give one id per unit number 0..max(unit_index)")
    small = index.astype(np.min_scalar_type(max(n_units - 1, 0)))  # radix sort for small ints
    in_order = len(small) < 2 or bool((small[1:] >= small[:-1]).all())  # no sort needed
    grouped = times if in_order else times[np.argsort(small, kind="stable")]
    bounds = np.cumsum(np.bincount(small, minlength=n_units))
    return np.split(grouped, bounds[:-1])


def _check_unit(t: np.ndarray, uid: str, site: str) -> None:
    bad = ~np.isfinite(t)
    if bad.any():
        raise RecordingError(f"unit '{uid}' has {int(bad.sum())} NaN/Inf spike times",
                             site=site, field="spike_times", fix="remove them")
    down = t[1:] < t[:-1]
    if down.any():
        i = int(np.argmax(down))
        raise RecordingError(
            f"unit '{uid}': spike times are not sorted ({int(down.sum())} decreases; first at "
            f"index {i + 1}: {t[i + 1]:.6g} s after {t[i]:.6g} s)", site=site,
            field="spike_times", fix="sort each unit's spike times (np.sort); if they come "
            "from several segments, put them on one session clock first")
    if len(t) and t[0] < 0:
        neg = int(np.searchsorted(t, 0.0, side="left"))
        raise RecordingError(
            f"unit '{uid}' has {neg} negative spike times (earliest {t[0]:.6g} s)", site=site,
            field="spike_times", fix="spike and trial times are seconds from the session "
            "start; shift them all by the same offset so none is negative")


def _outside(stats: _BinStats, n_spikes: int, ids: list[str], win: _Windows, policy: str,
             site: str) -> None:
    """Refuse (or warn about) spikes outside every trial window, saying where they are."""
    per_unit, before, after = stats.outside, stats.before, stats.after
    n_out = int(per_unit.sum())
    worst = np.argsort(-per_unit, kind="stable")[:3]
    worst_text = ", ".join(f"'{ids[u]}' ({int(per_unit[u]):,})" for u in worst
                           if per_unit[u] > 0)
    text = (f"{n_out:,} of {n_spikes:,} spikes fall outside every trial window: {before:,} "
            f"before the first window starts ({win.t0s[0]:.6g} s), "
            f"{n_out - before - after:,} between windows, {after:,} after the last ends "
            f"({win.t1s[-1]:.6g} s); most in units {worst_text}")
    if policy == "error":
        raise RecordingError(text, site=site, field="spike_times",
                             fix="pass outside='drop' to drop them (with a warning), or widen "
                             "the trial windows (trial_ends / trial_duration) to cover them")
    warnings.warn(f"site '{site}': {text}; dropped them (outside='drop')", SpikeWarning,
                  stacklevel=3)


# ---- tokens, variables, ids -----------------------------------------------------------------
def _tokens(tokens: Any, win: _Windows, blank: str, pad_token: str, site: str) -> np.ndarray:
    """Tokens [trial, bin] as strings, ``pad_token`` past each trial's end."""
    n, n_time = len(win.t0), win.n_time
    if isinstance(tokens, np.ndarray) and tokens.ndim == 2:
        if tokens.shape != (n, n_time):
            raise RecordingError(f"tokens has shape {tokens.shape}, expected (trials, bins) = "
                                 f"({n}, {n_time})", site=site, field="tokens",
                                 fix="one row per trial, one column per bin of the longest "
                                 "trial (or one sequence per trial)")
        return np.where(win.valid, tokens.astype(str), pad_token)
    if isinstance(tokens, str) or len(tokens) != n:
        got = "a string" if isinstance(tokens, str) else f"{len(tokens)} entries"
        raise RecordingError(f"tokens has {got} for {n} trials", site=site, field="tokens",
                             fix="give one entry per trial, in trial_starts' order")
    lengths = [max(len(str(x)) for x in (blank, pad_token))]
    rows: list[np.ndarray] = []
    for i, entry in enumerate(tokens):
        nb = int(win.n_bins[i])
        row = np.full(n_time, pad_token, dtype=object)
        if isinstance(entry, (str, np.str_)):
            row[:nb] = str(entry)
        else:
            items = list(entry)
            if not items or not isinstance(items[0], (str, np.str_)):  # events (maybe none)
                row[:nb] = blank
                _bin_events(items, i, win, row, site)
            else:
                if len(items) not in (nb, n_time):
                    raise RecordingError(
                        f"trial {i} has {nb} bins ({win.t1[i] - win.t0[i]:.6g} s) but "
                        f"{len(items)} tokens", site=site, field="tokens",
                        fix="give one token per bin of the trial, or (time, token) events to "
                        "bin")
                row[:nb] = [str(x) for x in items[:nb]]
        rows.append(row)
        lengths.append(max((len(x) for x in row[:nb]), default=1))
    return np.array(rows, dtype=f"<U{max(lengths)}")


def _bin_events(items: list[Any], trial: int, win: _Windows, row: np.ndarray, site: str
                ) -> None:
    t0, t1 = float(win.t0[trial]), float(win.t1[trial])
    bw = win.bw
    seen: dict[int, str] = {}
    for item in items:
        try:
            time, token = item
            time = float(time)
        except (TypeError, ValueError):
            raise RecordingError(f"trial {trial}: token event {item!r} is not a (time, token) "
                                 "pair", site=site, field="tokens",
                                 fix="give events as (seconds on the session clock, token)"
                                 ) from None
        b = int(np.floor((time - t0) / bw))
        if b >= 0 and time < t0 + b * bw:
            b -= 1
        if time >= t0 + (b + 1) * bw:
            b += 1
        if not (t0 <= time < t1) or b >= int(win.n_bins[trial]):
            raise RecordingError(f"trial {trial}: token event {token!r} at {time:.6g} s lies "
                                 f"outside the trial's window [{t0:.6g}, {t1:.6g}) s",
                                 site=site, field="tokens",
                                 fix="event times are seconds on the session clock (like the "
                                 "spike times), inside their trial")
        if b in seen:
            raise RecordingError(f"trial {trial}: events {seen[b]!r} and {token!r} fall in the "
                                 f"same bin ({b})", site=site, field="tokens",
                                 fix="use a smaller bin_width so each bin holds one event")
        seen[b] = str(token)
        row[b] = str(token)


def _variables(variables: Any, win: _Windows, site: str) -> dict[str, np.ndarray]:
    """Each causal variable as int64 [trial, bin], -1 on padding and where undefined."""
    n, n_time = win.valid.shape
    if hasattr(variables, "columns") and hasattr(variables, "to_numpy"):  # a pandas table
        if len(variables) != n:
            raise RecordingError(f"the variable table has {len(variables)} rows for {n} trials",
                                 site=site, field="variables",
                                 fix="one row per trial, in trial_starts' order")
        variables = {str(c): variables[c].to_numpy() for c in variables.columns}
    if not isinstance(variables, Mapping):
        raise RecordingError(f"variables must be a dict {{name: values}} or a per-trial table, "
                             f"got {type(variables).__name__}", site=site, field="variables")
    out = {}
    for name, values in variables.items():
        name = str(name)
        if name in RESERVED_NAMES:
            raise RecordingError(f"'{name}' is a reserved name, not a variable name", site=site,
                                 field=name, fix=f"rename it (reserved: {', '.join(RESERVED_NAMES)})")
        grid = _variable_grid(values, name, win, n, n_time, site)
        out[name] = np.where(win.valid, grid, UNDEFINED)
    return out


def _variable_grid(values: Any, name: str, win: _Windows, n: int, n_time: int, site: str
                   ) -> np.ndarray:
    try:
        arr = np.asarray(values)
        ragged = arr.dtype == object and arr.ndim == 1 and len(arr) and hasattr(arr[0], "__len__")
    except ValueError:  # numpy refuses ragged nested lists
        arr, ragged = None, True
    if ragged:
        seq = list(values)
        if len(seq) != n:
            raise RecordingError(f"variable '{name}' has {len(seq)} trials, expected {n}",
                                 site=site, field=name,
                                 fix="one entry per trial, in trial_starts' order")
        grid = np.full((n, n_time), UNDEFINED, dtype=np.int64)
        for i, row in enumerate(seq):
            ints = _integers(np.asarray(row), name, site)
            nb = int(win.n_bins[i])
            if ints.ndim != 1 or len(ints) not in (nb, n_time):
                raise RecordingError(f"variable '{name}', trial {i}: {np.size(ints)} values for "
                                     f"{nb} bins", site=site, field=name,
                                     fix="one value per bin of the trial")
            grid[i, :nb] = ints[:nb]
        return grid
    assert arr is not None
    if arr.ndim == 1:
        if len(arr) != n:
            raise RecordingError(f"variable '{name}' has {len(arr)} values for {n} trials",
                                 site=site, field=name,
                                 fix="one value per trial (held over the trial), a [trial, "
                                 "bin] array, or one array of per-bin values per trial")
        return np.broadcast_to(_integers(arr, name, site)[:, None], (n, n_time))
    if arr.ndim == 2:
        if arr.shape[0] != n:
            raise RecordingError(f"variable '{name}' has {arr.shape[0]} trials, expected {n}",
                                 site=site, field=name, fix="one row per trial")
        if arr.shape[1] != n_time:
            nbs = np.unique(win.n_bins)
            if not (len(nbs) == 1 and arr.shape[1] == nbs[0]):
                raise RecordingError(f"variable '{name}' has {arr.shape[1]} bins per trial, "
                                     f"expected {n_time}", site=site, field=name,
                                     fix="one column per bin of the longest trial")
        return _integers(arr, name, site)
    raise RecordingError(f"variable '{name}' has shape {arr.shape}; expected one value per "
                         "trial or [trial, bin]", site=site, field=name)


def _integers(arr: np.ndarray, name: str, site: str) -> np.ndarray:
    """Integer values as int64; NaN -> -1 (undefined); anything else non-integer is an error."""
    if arr.dtype.kind in "biu":  # booleans and integers
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        filled = np.where(np.isnan(arr), UNDEFINED, arr)
        frac = filled != np.round(filled)
        if frac.any():
            raise RecordingError(f"variable '{name}' has non-integer values, e.g. "
                                 f"{float(filled[frac].flat[0])!r}", site=site, field=name,
                                 fix="causal variables are integers (-1 where undefined); "
                                 "round or bin them")
        return filled.astype(np.int64)
    example = arr.flat[0] if arr.size else None
    raise RecordingError(f"variable '{name}' holds {arr.dtype} values (e.g. {example!r}), not "
                         "integers", site=site, field=name,
                         fix="code categories as integers, e.g. pandas.factorize(values)[0]")


def _stimulus_ids(stimulus_ids: Any, n: int, site: str) -> np.ndarray:
    if stimulus_ids is None:
        return np.array([f"trial{i:05d}" for i in range(n)])
    ids = np.asarray([str(x) for x in stimulus_ids])
    if len(ids) != n:
        raise RecordingError(f"stimulus_ids has {len(ids)} ids for {n} trials", site=site,
                             field="stimulus_ids", fix="one unique id per trial")
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = [str(x) for x in uniq[counts > 1][:3]]
        raise RecordingError(f"{int((counts > 1).sum())} stimulus ids repeat, e.g. {dup}",
                             site=site, field="stimulus_ids",
                             fix="every trial needs a unique id (e.g. add the repeat number: "
                             "'img7-r2')")
    return ids


__all__ = ["SpikeWarning", "from_spike_times"]
