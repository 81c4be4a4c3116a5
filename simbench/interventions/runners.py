"""Running a frozen network with one site patched, without recomputing what cannot change.

A runner wraps one accessible system at one site. It caches the site's latents over a stimulus
pool once (the system is frozen, so they never change) and, for a single-position intervention,
runs only what follows the patch:

- :class:`RecurrentRunner` (zoo GRU/LSTM): starts the recurrence from the patched state and runs
  the rest of the counterfactual sequence in one fused nn.GRU/nn.LSTM call; the prefix is never
  run again.
- :class:`GenericRunner` (transformers, any autoregressive
  :class:`~simbench.systems.accessible.PatchableModel`): one parallel pass with the patch
  applied where it belongs.

Both run rows in a few buckets of similar continuation length, each only as far as it needs
(:meth:`Runner.in_buckets`).

Both return *continuation logits* [B, L, V]: entry i predicts the counterfactual token at
position ``tpos + 1 + i``; :class:`Continuation` holds the matching targets and mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from simbench.errors import SiteError
from simbench.systems.accessible import ContinuableModel, PatchableModel

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

    def __init__(self, model: PatchableModel, site: str, width: int) -> None:
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

    #: rows per length bucket below which one padded call is cheaper than several
    bucket_min_rows: int = 32
    buckets: int = 4

    def in_buckets(self, cont: Continuation, run: Callable[[Tensor, int], Tensor],
                   upto: int | None = None) -> Tensor:
        """Continuation logits [B, L, V], computed a few buckets of rows at a time.

        Continuations range from one token to the whole response, so one padded call would
        spend most of its time on padding: rows are sorted by how many continuation logits
        they need and each bucket runs only as far as its longest row. ``run(rows, steps)``
        returns the first ``steps`` continuation logits of ``rows``; ``upto`` asks for no more
        than that many (generation needs one more each step), the rest come back as zeros.
        """
        bsz, length = cont.targets.shape
        needed = torch.where(cont.mask, torch.arange(1, length + 1, device=cont.mask.device),
                             torch.zeros_like(cont.targets)).amax(1).clamp(min=1)
        if upto is not None:
            needed = needed.clamp(max=max(upto, 1))
        n_buckets = min(self.buckets, max(bsz // self.bucket_min_rows, 1))
        order = torch.argsort(needed, stable=True)  # ties: same buckets on every device
        parts = []
        for rows in order.chunk(n_buckets):
            steps = int(needed[rows].max())
            parts.append(F.pad(run(rows, steps), (0, 0, 0, length - steps)))
        return torch.cat(parts)[torch.argsort(order)]

    def single(self, cont: Continuation, h_new: Tensor, key: str, tgt_idx: Tensor,
               upto: int | None = None) -> Tensor:
        """Logits after replacing the site at ``cont.tpos`` by ``h_new`` [B, d]."""
        def run(rows: Tensor, steps: int) -> Tensor:
            tokens, tpos, h = self._truncated(cont, rows, steps), cont.tpos[rows], h_new[rows]
            mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
            mask[torch.arange(len(rows), device=mask.device), tpos] = True

            def put(old: Tensor, b: Tensor, t: Tensor) -> Tensor:
                return h[b].to(old.dtype)

            logits = self.model.run(tokens, edits={self.site: (mask, put)})[0]
            return self._gather(logits, cont, rows, steps)

        return self.in_buckets(cont, run, upto)

    def stepwise(self, cont: Continuation, fn: PatchFn, upto: int | None = None) -> Tensor:
        """Logits after patching every position 0..tpos with ``fn(h, b, t)``."""
        def run(rows: Tensor, steps: int) -> Tensor:
            tokens = self._truncated(cont, rows, steps)
            pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
            mask = pos <= cont.tpos[rows, None]

            def patch(h: Tensor, b: Tensor, t: Tensor) -> Tensor:  # b indexes the bucket
                return fn(h, rows[b], t)

            logits = self.model.run(tokens, edits={self.site: (mask, patch)})[0]
            return self._gather(logits, cont, rows, steps)

        return self.in_buckets(cont, run, upto)

    @staticmethod
    def _truncated(cont: Continuation, rows: Tensor, steps: int) -> Tensor:
        """The counterfactual tokens of ``rows``, cut after the last one their first ``steps``
        continuation logits read (the models are autoregressive: later tokens change nothing)."""
        width = min(cont.cf.shape[1], int((cont.tpos[rows] + steps).max()))
        return cont.cf[rows, :width]

    @staticmethod
    def _gather(logits: Tensor, cont: Continuation, rows: Tensor, steps: int) -> Tensor:
        index = (cont.index[rows, :steps] - 1)[..., None].expand(-1, -1, logits.shape[-1])
        return logits.gather(1, index)


class GenericRunner(Runner):
    """Any autoregressive :class:`~simbench.systems.accessible.PatchableModel`: one parallel
    patched pass per length bucket."""


class RecurrentRunner(Runner):
    """Zoo GRU/LSTM: continue the recurrence from the patched state over the continuation only."""

    model: ContinuableModel

    def __init__(self, model: ContinuableModel, site: str, width: int) -> None:
        super().__init__(model, site, width)
        self.states: dict[str, Tensor] = {}

    def cache(self, key: str, tokens: Tensor, batch: int = 1024) -> Tensor:
        rec = self._record(tokens, tuple(dict.fromkeys((self.site, "hidden"))), batch)
        self.latents[key] = rec[self.site]
        if self.site == "embedding":  # continuing needs the state before the patched step
            self.states[key] = rec["hidden"]
        return self.latents[key]

    def single(self, cont: Continuation, h_new: Tensor, key: str, tgt_idx: Tensor,
               upto: int | None = None) -> Tensor:
        """Continue each row from its patched state, only as far as its last determined token."""
        def run(rows: Tensor, steps: int) -> Tensor:
            return self._continue(cont.inputs[rows, : steps - 1], h_new[rows], key,
                                  tgt_idx[rows], cont.tpos[rows])

        return self.in_buckets(cont, run, upto)

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


def make_runner(model: PatchableModel, site: str) -> Runner:
    """The fastest runner the model supports at ``site``."""
    dims = model.site_dims
    width = dims.get(site)
    if width is None:
        raise SiteError(f"model has no patchable site '{site}'", site=site,
                        fix=f"sites: {', '.join(dims) or '(none)'}")
    if isinstance(model, ContinuableModel) and site in ("hidden", "embedding"):
        return RecurrentRunner(model, site, width)
    return GenericRunner(model, site, width)
