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

Both run rows in a few buckets of similar continuation length (:meth:`Runner.in_buckets`),
planned on the host when the caller knows the lengths (:class:`HostRows`), so a training step
never waits for the device. Both return *continuation logits* [B, L, V]: entry i predicts the
counterfactual token at position ``tpos + 1 + i``; :class:`Continuation` holds the matching
targets and mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from simbench.devices import to_device
from simbench.errors import SiteError
from simbench.interventions.patch import IndexedEdit
from simbench.systems.accessible import ContinuableModel, PatchableModel, ResumableModel

PatchFn = Callable[[Tensor, Tensor, Tensor], Tensor]
RunFn = Callable[[Tensor, int, int, "np.ndarray | None"], Tensor]
"""``run(rows, steps, width, tpos)``: the first ``steps`` continuation logits of ``rows``,
reading no counterfactual token at or after position ``width``; ``tpos`` holds the rows'
patched positions on the host (None when the plan was read back from the device)."""


@dataclasses.dataclass
class HostRows:
    """What the host knows about a batch of rows, so no shape is read back from the device.

    ``needed``: continuation logits each row needs (>= 1: its last determined position minus
    its patched one); ``tpos``: each row's patched position. Both numpy, in batch order.
    """

    needed: np.ndarray
    tpos: np.ndarray


def continuation_needs(cf_mask: np.ndarray, tpos: np.ndarray) -> np.ndarray:
    """Per row, how many continuation logits reach its last determined token (at least 1)."""
    pos = np.arange(cf_mask.shape[1])
    last = np.where(cf_mask, pos, 0).max(1) if cf_mask.shape[1] else np.zeros(len(tpos), int)
    return np.maximum(last - tpos, 1).astype(np.int64)


def _chunk_bounds(n: int, chunks: int) -> list[tuple[int, int]]:
    """The (start, stop) of ``torch.chunk(range(n), chunks)``: equal parts but the last."""
    size = -(-n // chunks)
    return [(i, min(i + size, n)) for i in range(0, n, size)]


@dataclasses.dataclass
class Continuation:
    """What follows a patch at ``tpos``, left-aligned: targets [B, L], mask [B, L]."""

    cf: Tensor  # [B, W] counterfactual tokens
    tpos: Tensor  # [B]
    index: Tensor  # [B, L] position in cf of each continuation target (clipped)
    targets: Tensor  # [B, L]
    mask: Tensor  # [B, L] True where the causal model determines the token
    host: HostRows | None = None  # the rows' lengths, known without asking the device

    @classmethod
    def build(cls, cf: Tensor, cf_mask: Tensor, tpos: Tensor, host: HostRows | None = None,
              length: int | None = None) -> Continuation:
        """The continuation of each row, ``length`` long (default: as long as the longest row
        needs); ``host`` (when given) supplies the lengths, so the device is never waited for."""
        width = cf.shape[1]
        if length is None and host is not None:
            length = int(host.needed.max())
        elif length is None:
            pos = torch.arange(width, device=cf.device)
            last = torch.where(cf_mask, pos, torch.zeros_like(pos)).amax(1)
            length = int((last - tpos).clamp(min=1).max())  # reads back from the device
        index = tpos[:, None] + 1 + torch.arange(length, device=cf.device)[None, :]
        inside = index < width
        index = index.clamp(max=width - 1)
        return cls(cf, tpos, index, cf.gather(1, index), cf_mask.gather(1, index) & inside, host)

    @property
    def inputs(self) -> Tensor:
        """Tokens consumed after the patched position (all but the last target)."""
        return self.targets[:, :-1]


class Runner:
    """One accessible system at one site: :meth:`cache` records the site over a stimulus pool
    once, under a key (``"train"``, ...); :meth:`single` and :meth:`stepwise` then run patched
    continuations of that pool's stimuli."""

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

    def cache(self, key: str, tokens: Tensor, batch: int = 1024,
              reach: np.ndarray | None = None) -> Tensor:
        """Record the site over ``tokens`` and keep it under ``key``; returns [n, T, d].
        ``reach`` (per row, how far its real tokens go) is for runners that can skip the
        padding (:meth:`RecurrentRunner.cache`); this one records every position."""
        self.latents[key] = self.below(tokens, batch)
        return self.latents[key]

    #: rows per length bucket below which one padded call is cheaper than several
    bucket_min_rows: int = 32
    #: buckets on the CPU; on CUDA one, where launches bound these small networks (H200 MAS
    #: step: 14.5 ms in one padded call, 25.2 ms in four buckets)
    buckets: int = 4

    def in_buckets(self, cont: Continuation, run: RunFn, upto: int | None = None) -> Tensor:
        """Continuation logits [B, L, V], a few buckets of rows at a time.

        Continuations range from one token to the whole response, so rows are sorted by how
        many logits they need and each bucket runs ``run`` (:data:`RunFn`) only as far as its
        longest row; ``upto`` caps that (the rest come back as zeros). With ``cont.host`` the
        plan is made on the host; otherwise the lengths are read back from the device.
        """
        bsz, length = cont.targets.shape
        n_buckets = 1 if cont.cf.is_cuda else min(self.buckets,
                                                   max(bsz // self.bucket_min_rows, 1))
        cf_width = cont.cf.shape[1]
        parts = []
        if cont.host is not None:
            needed_h = cont.host.needed
            if upto is not None:
                needed_h = np.minimum(needed_h, max(upto, 1))
            order_h = np.argsort(needed_h, kind="stable")  # = torch's stable argsort
            moved = to_device(np.concatenate([order_h, np.argsort(order_h)]), cont.cf.device)
            order, back = moved[:bsz], moved[bsz:]
            for lo, hi in _chunk_bounds(bsz, n_buckets):
                rows_h = order_h[lo:hi]
                steps = int(needed_h[rows_h].max())
                tpos_h = cont.host.tpos[rows_h]
                width = min(cf_width, int((tpos_h + steps).max()))
                parts.append(F.pad(run(order[lo:hi], steps, width, tpos_h),
                                   (0, 0, 0, length - steps)))
            return torch.cat(parts)[back]
        needed = torch.where(cont.mask, torch.arange(1, length + 1, device=cont.mask.device),
                             torch.zeros_like(cont.targets)).amax(1).clamp(min=1)
        if upto is not None:
            needed = needed.clamp(max=max(upto, 1))
        order = torch.argsort(needed, stable=True)  # ties: same buckets on every device
        for rows in order.chunk(n_buckets):
            steps = int(needed[rows].max())  # reads back from the device (evaluation only)
            width = min(cf_width, int((cont.tpos[rows] + steps).max()))
            parts.append(F.pad(run(rows, steps, width, None), (0, 0, 0, length - steps)))
        return torch.cat(parts)[torch.argsort(order)]

    @property
    def resumes(self) -> bool:
        """Whether a patched pass can start at the site from its recorded activations
        (:meth:`below`), skipping the layers a patch there cannot change."""
        model = self.model
        return isinstance(model, ResumableModel) and model.can_run_from(self.site)

    @torch.no_grad()
    def below(self, tokens: Tensor, batch: int = 1024) -> Tensor:
        """The site's unpatched activations over ``tokens`` [n, T] -> [n, T, d]: what a
        patched pass over those tokens starts from (see :attr:`resumes`)."""
        return self._record(tokens, (self.site,), batch)[self.site]

    def _pass(self, tokens: Tensor, edit: Any, rows: Tensor, width: int,
              below: Tensor | None) -> Tensor:
        """Logits of one patched pass over ``tokens``, from ``below`` when given."""
        edits = {self.site: edit}
        if below is not None:
            return self.model.run_from(self.site, below[rows, :width],  # type: ignore[attr-defined]
                                       edits=edits)
        return self.model.run(tokens, edits=edits)[0]

    def single(self, cont: Continuation, h_new: Tensor, key: str, tgt_idx: Tensor,
               upto: int | None = None, below: Tensor | None = None) -> Tensor:
        """Logits after replacing the site at ``cont.tpos`` by ``h_new`` [B, d].

        ``below`` (optional, [B, W, d]): the site's unpatched activations over ``cont.cf``
        (:meth:`below`), so the pass starts at the site (only where :attr:`resumes`).
        """
        def run(rows: Tensor, steps: int, width: int, tpos_h: np.ndarray | None) -> Tensor:
            tokens, tpos, h = cont.cf[rows, :width], cont.tpos[rows], h_new[rows]
            mask = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
            b = torch.arange(len(rows), device=mask.device)
            mask[b, tpos] = True

            def put(old: Tensor, b: Tensor, t: Tensor) -> Tensor:
                return h[b].to(old.dtype)

            # one entry per row, row-major: the mask's nonzero() without reading it back
            times = None if tpos_h is None else np.unique(tpos_h).tolist()
            edit = IndexedEdit(put, b, tpos, times) if tpos_h is not None else put
            logits = self._pass(tokens, (mask, edit), rows, width, below)
            return self._gather(logits, cont, rows, steps)

        return self.in_buckets(cont, run, upto)

    def stepwise(self, cont: Continuation, fn: PatchFn, upto: int | None = None,
                 below: Tensor | None = None) -> Tensor:
        """Logits after patching every position 0..tpos with ``fn(h, b, t)`` (``below``: as
        for :meth:`single`)."""
        def run(rows: Tensor, steps: int, width: int, tpos_h: np.ndarray | None) -> Tensor:
            tokens = cont.cf[rows, :width]
            pos = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
            mask = pos <= cont.tpos[rows, None]

            def patch(h: Tensor, b: Tensor, t: Tensor) -> Tensor:  # b indexes the bucket
                return fn(h, rows[b], t)

            edit: PatchFn = patch
            if tpos_h is not None:  # the mask's nonzero(), row-major, made on the host
                counts = tpos_h + 1
                b_h = np.repeat(np.arange(len(tpos_h)), counts)
                t_h = np.arange(len(b_h)) - np.repeat(np.cumsum(counts) - counts, counts)
                times = list(range(int(tpos_h.max()) + 1))
                at = [np.flatnonzero(tpos_h >= t) for t in times]  # rows patched at step t
                moved = to_device(np.concatenate([b_h, t_h, *at]), tokens.device)
                n = len(b_h)
                bounds = np.cumsum([2 * n] + [len(a) for a in at])
                rows_at = {t: moved[lo:hi] for t, lo, hi in zip(times, bounds[:-1], bounds[1:])}
                edit = IndexedEdit(patch, moved[:n], moved[n: 2 * n], times, rows_at)
            logits = self._pass(tokens, (mask, edit), rows, width, below)
            return self._gather(logits, cont, rows, steps)

        return self.in_buckets(cont, run, upto)

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

    def cache(self, key: str, tokens: Tensor, batch: int = 1024,
              reach: np.ndarray | None = None) -> Tensor:
        """As :meth:`Runner.cache`; with ``reach`` on the CPU, rows are recorded in length
        buckets, each only as far as its longest row (a recurrence's state depends on no later
        token; positions past a row's reach, which nothing reads, stay zero)."""
        sites = tuple(dict.fromkeys((self.site, "hidden")))
        rec = (self._record(tokens, sites, batch) if reach is None or tokens.is_cuda
               else self._record_by_reach(tokens, sites, reach))
        self.latents[key] = rec[self.site]
        if self.site == "embedding":  # continuing needs the state before the patched step
            self.states[key] = rec["hidden"]
        return self.latents[key]

    @torch.no_grad()
    def _record_by_reach(self, tokens: Tensor, sites: tuple[str, ...],
                         reach: np.ndarray) -> dict[str, Tensor]:
        n, width = tokens.shape
        order = np.argsort(reach, kind="stable")
        out: dict[str, Tensor] = {}
        for lo, hi in _chunk_bounds(n, self.buckets):
            rows = order[lo:hi]
            upto = max(1, min(width, int(reach[rows].max())))
            idx = torch.as_tensor(rows, device=tokens.device)
            _, rec = self.model.run(tokens[idx, :upto], record=sites)
            for s in sites:
                if s not in out:
                    out[s] = torch.zeros((n, width, *rec[s].shape[2:]), device=tokens.device)
                out[s][idx, :upto] = rec[s].float()
        return out

    @property
    def resumes(self) -> bool:
        return False  # continuing the recurrence already skips everything before the patch

    def single(self, cont: Continuation, h_new: Tensor, key: str, tgt_idx: Tensor,
               upto: int | None = None, below: Tensor | None = None) -> Tensor:
        """Continue each row from its patched state, only as far as its last determined token."""
        def run(rows: Tensor, steps: int, width: int, tpos_h: np.ndarray | None) -> Tensor:
            return self.continue_from(cont.inputs[rows, : steps - 1], h_new[rows], key,
                                  tgt_idx[rows], cont.tpos[rows])

        return self.in_buckets(cont, run, upto)

    def continue_from(self, inputs: Tensor, h_new: Tensor, key: str, tgt_idx: Tensor,
                      tpos: Tensor) -> Tensor:
        """Logits [B, L, V] of the recurrence continued from the patched site ``h_new`` over
        ``inputs`` (``key``: the pool whose states precede the patch, for ``embedding``)."""
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
