"""Integer token codes: a ``token`` coordinate holding codes instead of token names.

Files from other tools often store the input tokens as integer codes. The schema asks for
names (``'A'``, ``'<eos>'``) because a code does not say which vocabulary it indexes. Such a
file still loads, with a :class:`~simbench.errors.TokenCodesWarning`: measures that never read
tokens (``cka``, ``rsa``, and the others on two recordings) use it as it is. What reads tokens
refuses it with the one line that converts the codes
(:func:`simbench.recording.io.name_tokens`): CLMAS, which
derives the causal variables and matches counterfactuals from the tokens, and pairing a
network with the recording, which runs the network on the recording's token sequences.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simbench.errors import RecordingError, TokenCodesWarning

#: Vocabularies longer than this are not spelled out in a refusal's conversion line.
MAX_LISTED = 40


def has_token_codes(ds: xr.Dataset) -> bool:
    """Whether a site's ``token`` coordinate holds integer codes rather than names."""
    return "token" in ds.coords and ds["token"].dtype.kind in "iu"


def conversion_line(file: Any = None, vocab: Sequence[str] | None = None,
                    task: str | None = None) -> str:
    """The one command that writes a copy of ``file`` with token names for its codes.

    ``vocab``: the names in code order, spelled out when at most ``MAX_LISTED``; else the
    vocabulary of ``task`` looked up in the command; else a placeholder for the user's list.
    """
    src = str(file) if file is not None else "FILE.nc"
    out = str(Path(src).with_name(Path(src).stem + "_named.nc"))
    head = "from simbench.recording import name_tokens; "
    if vocab is not None and len(vocab) <= MAX_LISTED:
        names = repr([str(v) for v in vocab])
    elif task is not None:
        head += "from simbench.registry import get_registry; "
        names = f"get_registry().make_task({task!r}).vocab"
    else:
        names = "[NAME_OF_CODE_0, NAME_OF_CODE_1, ...]"
    return f"python -c \"{head}name_tokens({src!r}, {out!r}, vocab={names})\""


def warn_token_codes(ds: xr.Dataset, *, file: Any = None, site: str | None = None,
                     task: str | None = None) -> None:
    """Warn (:class:`TokenCodesWarning`) when a site's tokens are integer codes, saying what
    still works and what will need the names (``task``: the recording's, for the line)."""
    if not has_token_codes(ds):
        return
    where = f"{file}, site '{site}'" if file is not None else f"site '{site}'"
    task = task if task is not None else ds.attrs.get("task")
    warnings.warn(TokenCodesWarning(
        f"{where}: 'token' holds integer codes ({ds['token'].dtype}), not token names; "
        "measures that do not read tokens (cka, rsa, and any measure of two recordings) use "
        "the file as it is, but CLMAS (which derives the causal variables and counterfactuals "
        "from the tokens) and pairing a network with this recording (which runs it on the "
        "recording's token sequences) need the names; convert once with: "
        + conversion_line(file, task=task if isinstance(task, str) else None)), stacklevel=3)


def refuse_token_codes(tokens: Any, task: Any, *, file: Any = None, site: str | None = None,
                       foreign: Sequence[str] = ()) -> None:
    """Raise a RecordingError when ``tokens`` are integer codes (an integer array, or, already
    turned into text, ``foreign`` tokens that are all integers), giving the conversion line."""
    arr = np.asarray(tokens)
    foreign = [str(n) for n in foreign]  # codes turned into text (not foreign token names)?
    if arr.dtype.kind not in "iu" and not (foreign and all(n.lstrip("-").isdigit()
                                                           for n in foreign)):
        return
    sample = foreign[:3] if len(foreign) else [str(v) for v in np.unique(arr)[:3]]
    vocab = list(getattr(task, "vocab", []) or [])
    name = getattr(task, "name", None)
    hint = (f" (if code i is task '{name}''s i-th token: {' '.join(map(str, vocab[:8]))}"
            f"{' ...' if len(vocab) > 8 else ''})" if name else "")
    raise RecordingError(
        f"'token' holds integer codes (e.g. {', '.join(map(str, sample))}), not token names, "
        "and this needs the names: CLMAS derives the causal variables and counterfactuals "
        "from them, and a network paired with a recording runs on its token sequences",
        file=file, site=site, field="token",
        fix=f"convert the codes to names once{hint}: "
        + conversion_line(file, vocab or None, task=name))
