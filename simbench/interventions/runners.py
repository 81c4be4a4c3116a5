"""Running a frozen network with one site patched, without recomputing what cannot change.

A runner wraps one accessible system at one site. It caches the site's latents over a stimulus
pool once (the system is frozen, so they never change) and, for a single-position intervention,
runs only what follows the patch:

- :class:`RecurrentRunner` (zoo GRU/LSTM): starts the recurrence from the patched state and runs
  the rest of the counterfactual sequence in one fused nn.GRU/nn.LSTM call; the prefix is never
  run again.
- :class:`GenericRunner` (transformers, any model with ``run(tokens, edits=, record=)``): one
  parallel pass with the patch applied where it belongs.

Both return *continuation logits* [B, L, V]: entry i predicts the counterfactual token at
position ``tpos + 1 + i``; :class:`Continuation` holds the matching targets and mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

PatchFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclasses.dataclass
class Continuation:
    """What follows a patch at ``tpos``, left-aligned: targets [B, L], mask [B, L]."""

    cf: Tensor  # [B, W] counterfactual tokens
    tpos: Tensor  # [B]
    index: Tensor  # [B, L] position in cf of each continuation target (clipped)
    targets: Tensor  # [B, L]
    mask: Tensor  # [B, L] True where the causal model determines the token

    @classmethod
    def build(cls, cf: Tensor, cf_mask: Tensor, tpos: Tensor) -> Continuation:
        width = cf.shape[1]
        pos = torch.arange(width, device=cf.device)
        last = torch.where(cf_mask, pos, torch.zeros_like(pos)).amax(1)
        length = int((last - tpos).clamp(min=1).max())
        index = tpos[:, None] + 1 + torch.arange(length, device=cf.device)[None, :]
        inside = index < width
        index = index.clamp(max=width - 1)
        return cls(cf, tpos, index, cf.gather(1, index), cf_mask.gather(1, index) & inside)

    @property
    def inputs(self) -> Tensor:
        """Tokens consumed after the patched position (all but the last target)."""
        return self.targets[:, :-1]


class Runner:
    """One accessible system at one site (see module docstring).

    :meth:`cache` records the site over a stimulus pool once, under a key (``"train"``,
    ``"val"``, ...); :meth:`single` and :meth:`stepwise` then run patched continuations of
    that pool's stimuli.
    """

    def __init__(self, model: Any, site: str, width: int) -> None:
        self.model, self.site, self.width = model, site, width
        self.latents: dict[str, Tensor] = {}

    @torch.no_grad()
    def _record(self, tokens: Tensor, sites: tuple[str, ...], batch: int) -> dict[str, Tensor]:
        out: dict[str, list[Tensor]] = {s: [] for s in sites}
        for i in range(0, tokens.shape[0], batch):
            _, rec = self.model.run(tokens[i: i + batch], record=sites)
            for s in sites:
                out[s].append(rec[s])
        return {s: torch.cat(v).float() for s, v in out.items()}

    def cache(self, key: str, tokens: Tensor, batch: int = 1024) -> Tensor:
        """Record the site over ``tokens`` and keep it under ``key``; returns [n, T, d]."""
        self.latents[key] = self._record(tokens, (self.site,), batch)[self.site]
        return self.latents[key]

    def single(self, cont: Continuation, h_new: Tensor, key: str, tgt_idx: Tensor) -> Tensor:
        """Logits after replacing the site at ``cont.tpos`` by ``h_new`` [B, d]."""
        bsz, width = cont.cf.shape
        mask = torch.zeros((bsz, width), dtype=torch.bool, device=cont.cf.device)
        mask[torch.arange(bsz, device=mask.device), cont.tpos] = True

        def put(h: Tensor, b: Tensor, t: Tensor) -> Tensor:
            return h_new[b].to(h.dtype)

        return self._gather(self.model.run(cont.cf, edits={self.site: (mask, put)})[0], cont)

    def stepwise(self, cont: Continuation, fn: PatchFn) -> Tensor:
        """Logits after patching every position 0..tpos with ``fn(h, b, t)``."""
        pos = torch.arange(cont.cf.shape[1], device=cont.cf.device)[None, :]
        mask = pos <= cont.tpos[:, None]
        return self._gather(self.model.run(cont.cf, edits={self.site: (mask, fn)})[0], cont)

    @staticmethod
    def _gather(logits: Tensor, cont: Continuation) -> Tensor:
        index = (cont.index - 1)[..., None].expand(-1, -1, logits.shape[-1])
        return logits.gather(1, index)


class GenericRunner(Runner):
    """Any model with ``run(tokens, edits=..., record=...)``: one parallel patched pass."""


class RecurrentRunner(Runner):
    """Zoo GRU/LSTM: continue the recurrence from the patched state over the continuation only."""

    def __init__(self, model: Any, site: str, width: int) -> None:
        super().__init__(model, site, width)
        self.states: dict[str, Tensor] = {}

    def cache(self, key: str, tokens: Tensor, batch: int = 1024) -> Tensor:
        rec = self._record(tokens, tuple(dict.fromkeys((self.site, "hidden"))), batch)
        self.latents[key] = rec[self.site]
        if self.site == "embedding":  # continuing needs the state before the patched step
            self.states[key] = rec["hidden"]
        return self.latents[key]

    #: rows per length bucket below which one padded call is cheaper than several
    bucket_min_rows: int = 32
    buckets: int = 4

    def single(self, cont: Continuation, h_new: Tensor, key: str, tgt_idx: Tensor) -> Tensor:
        """Run each row only as far as its last determined token.

        Rows are sorted by continuation length and run in a few buckets, each padded only to
        its own longest row: continuations range from one token to the whole response, so one
        padded call would spend most of its time on padding.
        """
        bsz, length = cont.targets.shape
        needed = torch.where(cont.mask, torch.arange(1, length + 1, device=cont.mask.device),
                             torch.zeros_like(cont.targets)).amax(1).clamp(min=1)
        n_buckets = min(self.buckets, max(bsz // self.bucket_min_rows, 1))
        if n_buckets == 1:
            return self._continue(cont.inputs, h_new, key, tgt_idx, cont.tpos)
        order = torch.argsort(needed)
        parts = []
        for rows in order.chunk(n_buckets):
            steps = int(needed[rows].max())
            logits = self._continue(cont.inputs[rows, : steps - 1], h_new[rows], key,
                                    tgt_idx[rows], cont.tpos[rows])
            parts.append(torch.nn.functional.pad(logits, (0, 0, 0, length - steps)))
        return torch.cat(parts)[torch.argsort(order)]

    def _continue(self, inputs: Tensor, h_new: Tensor, key: str, tgt_idx: Tensor,
                  tpos: Tensor) -> Tensor:
        m = self.model
        x = m.embed(inputs)
        if self.site == "hidden":
            if x.shape[1] == 0:  # only the patched step's own prediction is determined
                return m.head(h_new[:, None])
            seq, _ = m.recur(x, m.site_to_state(h_new))
            return m.head(torch.cat([h_new[:, None], seq], 1))
        prev = self.states[key][tgt_idx, tpos - 1]
        seq, _ = m.recur(torch.cat([h_new[:, None].to(x.dtype), x], 1), m.site_to_state(prev))
        return m.head(seq)


def make_runner(model: Any, site: str) -> Runner:
    """The fastest runner the model supports at ``site``."""
    dims = getattr(model, "site_dims", {})
    width = dims.get(site)
    if width is None:
        from simbench.errors import SiteError

        raise SiteError(f"model has no patchable site '{site}'", site=site,
                        fix=f"sites: {', '.join(dims) or '(none)'}")
    if hasattr(model, "recur") and site in ("hidden", "embedding"):
        return RecurrentRunner(model, site, width)
    return GenericRunner(model, site, width)
