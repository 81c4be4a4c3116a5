"""Stimuli from outside a task's sampler: a recording's own token sequences, or a text file.

A network can be recorded on exactly the stimuli of someone else's recording (the tokens are in
the file), so a correlative measure compares responses to the same sequences with the same ids
whatever ``n`` and seed the recording was made with. Token strings are turned into ids through
the *network's* task vocabulary (:func:`token_ids_of_strings`).

Stimulus files (``simbench record --stimuli FILE``):

- a recording (``.nc``): its ``token`` coordinate (steps where ``valid`` is false, or whose token
  is the pad token or empty, are padding) and its stimulus ids;
- any other file is text: one stimulus per line, its tokens separated by spaces
  (``BOS D0 D1 T R R EOS``); blank lines and lines starting with ``#`` are skipped. Ids are the
  task's content ids (``{task}-{hash}``, repeats suffixed ``-2``, ``-3``, ...).

Importing this module does not import torch or xarray.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simbench.errors import RecordingError, TaskError

if TYPE_CHECKING:
    import xarray as xr

    from simbench.recording import Recording
    from simbench.tasks.base import Stimuli, Task

RECORDING_SUFFIXES = (".nc", ".nc4", ".cdf", ".h5")


def token_ids_of_strings(task: Task, tokens: np.ndarray, valid: np.ndarray | None = None, *,
                         file: Any = None, site: str | None = None) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Token strings [n, T] -> (ids int64 [n, T], valid bool [n, T]) in ``task``'s vocabulary.

    Padding (``valid`` false, or, without ``valid``, the pad token or an empty string) becomes
    the task's pad id. Tokens outside the vocabulary raise :class:`RecordingError` naming up to
    five of them (with how many steps hold them) and listing the vocabulary.
    """
    from simbench.recording.tokens import refuse_token_codes

    refuse_token_codes(tokens, task, file=file, site=site)  # integer codes: say how to convert
    tok = np.asarray(tokens, dtype=str)
    if tok.ndim != 2:
        raise RecordingError(f"tokens must be [stimulus, time], got shape {tok.shape}",
                             file=file, site=site, field="token")
    marked = (tok != task.pad_token) if valid is None else np.asarray(valid, dtype=bool)
    valid = marked & (tok != "")
    index = task.token_index
    uniq, inverse = np.unique(tok, return_inverse=True)
    lookup = np.array([index.get(u, index.get(task.token_aliases.get(u, u), -1)) for u in uniq],
                      dtype=np.int64)
    ids = lookup[inverse.reshape(tok.shape)]
    bad = valid & (ids < 0)
    if bad.any():
        names, counts = np.unique(tok[bad], return_counts=True)
        refuse_token_codes(tok, task, file=file, site=site, foreign=[str(n) for n in names])
        order = np.argsort(-counts, kind="stable")
        listed = ", ".join(f"{str(names[i])!r} ({int(counts[i])} steps)" for i in order[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        raise RecordingError(
            f"{len(names)} token(s) are not in task '{task.name}''s vocabulary: {listed}{more}",
            file=file, site=site, field="token",
            fix=f"task '{task.name}' has the tokens: {' '.join(task.vocab)}; record a network "
            "of the recording's own task, or pass that task with --task")
    return np.where(valid, ids, task.pad).astype(np.int64), valid


def dataset_token_ids(ds: xr.Dataset, task: Task, *, file: Any = None,
                      site: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A site's ``token`` coordinate (stimulus, time) and ``valid`` mask as ``task``'s token
    ids (:func:`token_ids_of_strings`); integer codes are refused, saying how to convert them."""
    from simbench.recording.tokens import refuse_token_codes

    tokens = ds["token"]
    if not {"stimulus", "time"} <= set(tokens.dims):
        raise RecordingError(f"the 'token' coordinate has dims {tokens.dims}, not (stimulus, "
                             "time)", file=file, site=site, field="token",
                             fix="record the token at every step (stimulus, time)")
    refuse_token_codes(tokens.values, task, file=file, site=site)  # before they become text
    tok = np.asarray(tokens.transpose("stimulus", "time").values, dtype=str)
    valid = (np.asarray(ds["valid"].transpose("stimulus", "time").values, dtype=bool)
             if "valid" in ds.coords else None)
    return token_ids_of_strings(task, tok, valid, file=file, site=site)


def stimuli_from_recording(recording: Recording, task: Task, *, site: str | None = None,
                           strict: bool = False) -> Stimuli:
    """The stimuli (tokens and stimulus ids) of a :class:`~simbench.recording.Recording` at
    ``site`` (default: its first site with a ``token`` coordinate).

    ``strict`` False keeps stimuli whose tokens ``task``'s causal model does not accept (a
    correlative measure needs no causal variables; they are then left out).
    """
    if site is None:
        site = next((s for s, ds in recording.sites.items() if "token" in ds.coords),
                    next(iter(recording.sites), None))
    if site is None:
        raise RecordingError("the recording has no sites", file=recording.path)
    ds, file = recording.site(site), recording.path
    if "token" not in ds.coords:
        raise RecordingError("the recording has no 'token' coordinate, so a network cannot be "
                             "run on its stimuli", file=file, site=site, field="token",
                             fix="add the input tokens (stimulus, time) as strings, or record "
                             "the network on the recording's stimuli yourself")
    ids, _ = dataset_token_ids(ds, task, file=file, site=site)
    stim_ids = np.asarray(ds["stimulus_id"].values, dtype=str)
    return task.stimuli_from_tokens(ids, stim_ids, strict=strict)


def read_stimulus_file(path: str | Path, task: Task, *, site: str | None = None) -> Stimuli:
    """Stimuli from a recording (``.nc``: its tokens and ids) or a text file (one sequence of
    space-separated tokens per line; ``#`` comments and blank lines skipped)."""
    path = Path(path)
    if not path.exists():
        raise RecordingError("no such stimulus file", file=path, fix="check the path")
    if path.suffix in RECORDING_SUFFIXES:
        from simbench.recording import load_recording

        return stimuli_from_recording(load_recording(path), task, site=site)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise RecordingError("the stimulus file is neither a recording (.nc) nor text",
                             file=path, fix="one sequence per line, tokens separated by "
                             "spaces; or a .nc recording") from None
    seqs = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not seqs:
        raise RecordingError("the stimulus file holds no sequences", file=path,
                             fix="one sequence per line, tokens separated by spaces")
    tok = np.array(list(itertools.zip_longest(*seqs, fillvalue=""))).T  # right-padded with ""
    ids, _ = token_ids_of_strings(task, tok, file=path)
    try:
        return task.stimuli_from_tokens(ids, strict=True)
    except TaskError as exc:
        raise RecordingError(f"the sequences do not fit task '{task.name}': {exc.message}",
                             file=path, field=exc.field, fix=exc.fix) from None


__all__ = ["dataset_token_ids", "read_stimulus_file", "stimuli_from_recording",
           "token_ids_of_strings"]
