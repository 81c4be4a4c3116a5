"""A language model recorded on a recording's own token sequences.

A correlative measure pairing a network with a recording runs the network on the recording's
stimuli: for a language model, the recording's ``token`` strings (the tokenizer's own tokens,
as :meth:`~simbench.lm.system.LMSystem.record` stores them) mapped back to ids and kept under
the recording's stimulus ids, so the pair shares every prompt and position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simbench.errors import RecordingError


def tokens_to_ids(lm: Any, tokens: np.ndarray, valid: np.ndarray, *, file: Any = None,
                  site: str | None = None) -> list[list[int]]:
    """Each stimulus's valid token strings as ``lm``'s token ids; a token the tokenizer does
    not have (the recording was made with another tokenizer) raises :class:`RecordingError`."""
    vocab = lm.vocab()
    missing: dict[str, int] = {}
    out = []
    for row, mask in zip(tokens, valid):
        ids = []
        for tok in row[mask]:
            if tok in vocab:
                ids.append(vocab[tok])
            else:
                missing[tok] = missing.get(tok, 0) + 1
        out.append(ids)
    if missing:
        listed = ", ".join(f"{t!r} ({n} steps)" for t, n in sorted(
            missing.items(), key=lambda kv: -kv[1])[:5])
        raise RecordingError(
            f"{len(missing)} token(s) of the recording are not in the tokenizer of "
            f"'{lm.system_id}': {listed}{' and more' if len(missing) > 5 else ''}",
            file=file, site=site, field="token",
            fix="pair the model with a recording made with the same tokenizer (e.g. `simbench "
            "record MODEL --prompts FILE --out X.nc` with a model of the same family)")
    return out


def record_on_recording(lm: Any, recording: Any, site: str, *, batch_size: int = 64) -> Any:
    """``lm``'s activity at ``site`` on ``recording``'s token sequences at that site: an
    :class:`xarray.Dataset` with the recording's stimulus ids, tokens and valid mask."""
    from simbench.recording import site_dataset

    ds = recording.site(site)
    if "token" not in ds.coords:
        raise RecordingError("the recording has no 'token' coordinate, so a language model "
                             "cannot be run on its prompts", file=recording.path, site=site,
                             field="token", fix="record the model on the same prompts: "
                             "--prompts FILE")
    tokens = np.asarray(ds["token"].transpose("stimulus", "time").values, dtype=str)
    valid = (np.asarray(ds["valid"].transpose("stimulus", "time").values, dtype=bool)
             if "valid" in ds.coords else tokens != "")
    ids = tokens_to_ids(lm, tokens, valid, file=recording.path, site=site)
    if any(not seq for seq in ids):
        raise RecordingError("a stimulus of the recording has no valid token",
                             file=recording.path, site=site, field="valid")
    lm.model.path(site)  # an unknown site fails before anything runs
    acts, own_valid = lm.run_sequences(ids, [site], tokens.shape[1], batch_size)
    shown = np.where(own_valid, _left_packed(tokens, valid), "")
    return site_dataset(acts[site], stimulus_ids=np.asarray(ds["stimulus_id"].values, dtype=str),
                        site=site, system_id=lm.system_id, task=lm.task, tokens=shown,
                        valid=own_valid, attrs={"recorded_on": str(recording.path or
                                                                   recording.system_id)})


def _left_packed(tokens: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each row's valid tokens first (the order the model read them), then empty strings."""
    out = np.full(tokens.shape, "", dtype=object)
    for r in range(len(tokens)):
        row = tokens[r][valid[r]]
        out[r, : len(row)] = row
    return out.astype(str)


__all__ = ["record_on_recording", "tokens_to_ids"]
