"""The edit protocol: how a caller asks a runnable model to patch one of its sites.

Every model simbench can patch (the zoo's GRU, LSTM and transformer, and a user's module
wrapped by :class:`~simbench.systems.torch.HookedModel`) takes ``edits={site: edit}`` in
``run`` and ``generate``. An *edit* of one site is one of

- ``(mask, values)``: bool [B, T] and [B, T, d]: the site's vector at (b, t) becomes
  ``values[b, t]`` wherever ``mask[b, t]``;
- ``(mask, fn)``: ``fn(h [N, d], b [N], t [N]) -> [N, d]`` computes the new vectors of the N
  masked entries from their current (already downstream-of-earlier-edits) vectors; this is
  what a low-rank interchange ``h + (h_s U_s - h U) U^T`` needs, and it stays differentiable;
- ``fn(t: int, h [B, d]) -> [B, d]``: called at every step (the slow, general path).

:class:`Patch` normalises any of them to a mask plus a function of the masked entries, and
applies it to a block of steps (parallel models) or to one step (recurrent models). A caller
that already knows the masked entries passes an :class:`IndexedEdit`, so finding them
(``mask.nonzero()``) never waits for the device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from simbench.errors import SiteError

EditFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``fn(h [N, d], b [N], t [N]) -> [N, d]``: new vectors for the N masked entries."""

Edit = tuple[Tensor, Tensor | EditFn] | Callable[[int, Tensor], Tensor]
"""One site's edit: ``(mask, values)``, ``(mask, fn)`` or a per-step ``fn(t, h)``."""


class IndexedEdit:
    """An edit function ``fn(h, b, t)`` that also carries its mask's nonzero entries.

    ``b``, ``t``: ``mask.nonzero(as_tuple=True)``, on the mask's device; ``times``: the
    positions with an entry, ascending, on the host (None: unknown); ``rows_at``: per such
    position, ``mask[:, t].nonzero()`` (for models that patch one step at a time).
    """

    def __init__(self, fn: EditFn, b: Tensor, t: Tensor, times: list[int] | None = None,
                 rows_at: dict[int, Tensor] | None = None) -> None:
        self.fn, self.b, self.t, self.times, self.rows_at = fn, b, t, times, rows_at

    def __call__(self, h: Tensor, b: Tensor, t: Tensor) -> Tensor:
        return self.fn(h, b, t)


def is_per_step(edit: Any) -> bool:
    """Whether ``edit`` is the per-step form ``fn(t, h)`` (not a (mask, ...) pair)."""
    return callable(edit) and not isinstance(edit, tuple | list)


class Patch:
    """One site's edit normalised to a mask plus a function of the masked entries.

    ``shape`` is the token batch's (B, T); the mask must match it. A per-step edit gets an
    all-True mask and is called at every position.
    """

    def __init__(self, site: str, edit: Edit, shape: tuple[int, int],
                 device: torch.device) -> None:
        self.site = site
        self.per_step: Callable[[int, Tensor], Tensor] | None = None
        self.fn: EditFn | None = None
        self.index: IndexedEdit | None = None
        if is_per_step(edit):
            self.per_step = edit  # type: ignore[assignment]
            self.mask = torch.ones(shape, dtype=torch.bool, device=device)
            return
        if not (isinstance(edit, tuple | list) and len(edit) == 2):
            raise SiteError("an edit must be (mask, values), (mask, fn) or fn(t, h)", site=site,
                            fix="see simbench.interventions.patch for the edit forms")
        mask, what = edit
        mask = torch.as_tensor(mask, device=device).bool()
        if tuple(mask.shape) != shape:
            raise SiteError(f"edit mask has shape {tuple(mask.shape)}, tokens are {shape}",
                            site=site, fix="give a bool mask [B, T] matching the tokens")
        self.mask = mask
        if isinstance(what, IndexedEdit):
            self.index = what
        if callable(what):
            self.fn = what
        else:
            values = what

            def take(h: Tensor, b: Tensor, t: Tensor) -> Tensor:
                return values[b, t].to(h.dtype)

            self.fn = take

    def apply_seq(self, seq: Tensor, t0: int = 0) -> Tensor:
        """Patch a whole [B, L, d] block covering positions t0 .. t0 + L - 1."""
        length = seq.shape[1]
        if self.per_step is not None:
            steps = [self.per_step(t0 + j, seq[:, j]) for j in range(length)]
            return torch.stack(steps, 1)
        assert self.fn is not None
        if self.index is not None and t0 == 0 and length == self.mask.shape[1]:
            b, t = self.index.b, self.index.t  # the whole mask: its entries are known
            return seq.index_put((b, t), self.fn(seq[b, t], b, t).to(seq.dtype))
        m = self.mask[:, t0: t0 + length]
        if not bool(m.any()):
            return seq
        b, t = m.nonzero(as_tuple=True)
        new = self.fn(seq[b, t], b, t + t0)
        return seq.index_put((b, t), new.to(seq.dtype))

    def apply_step(self, h: Tensor, t: int) -> Tensor:
        """Patch one time step [B, d] at position t."""
        if self.per_step is not None:
            return self.per_step(t, h)
        assert self.fn is not None
        if t >= self.mask.shape[1]:
            return h
        if self.index is not None and self.index.rows_at is not None:
            rows = self.index.rows_at.get(t)  # known: no read-back
            if rows is None:
                return h
            return h.index_put((rows,), self.fn(h[rows], rows, torch.full_like(rows, t))
                               .to(h.dtype))
        col = self.mask[:, t]
        if not bool(col.any()):
            return h
        b = col.nonzero(as_tuple=True)[0]
        tt = torch.full_like(b, t)
        return h.index_put((b,), self.fn(h[b], b, tt).to(h.dtype))

    def times(self) -> list[int]:
        """Positions with at least one patched entry."""
        if self.index is not None and self.index.times is not None:
            return list(self.index.times)
        return self.mask.any(0).nonzero(as_tuple=True)[0].tolist()


def site_output(out: Any, site: str, path: str) -> Tensor:
    """The [B, T, d] tensor the module at ``path`` returned (the first item of a tuple)."""
    h = out[0] if isinstance(out, tuple | list) else out
    if not (isinstance(h, Tensor) and h.dim() == 3):
        raise SiteError(f"module {path!r} outputs {type(h).__name__} "
                        f"{tuple(getattr(h, 'shape', ()))}, not [B, T, d]", site=site,
                        fix="choose a module whose output is [batch, time, units], e.g. a "
                        "recurrent layer or a decoder block")
    return h


def with_output(out: Any, h: Tensor) -> Any:
    """``out`` with its tensor replaced by ``h`` (a tuple's or list's other items kept)."""
    if isinstance(out, tuple):
        return (h, *out[1:])
    if isinstance(out, list):
        return [h, *out[1:]]
    return h


@contextmanager
def hooked_sites(module: torch.nn.Module, paths: Mapping[str, str], tokens: Tensor,
                 edits: Mapping[str, Any] | None, record: Sequence[str]
                 ) -> Iterator[dict[str, Tensor]]:
    """Forward hooks, for the block, that patch ``edits`` into and read ``record`` from the
    modules at ``paths[site]``; yields the dict the reads (after patching) land in."""
    patches = {s: Patch(s, e, tuple(tokens.shape), tokens.device)
               for s, e in (edits or {}).items()}
    rec: dict[str, Tensor] = {}
    modules = dict(module.named_modules())

    def make_hook(site: str) -> Callable[..., Any]:
        def hook(mod: torch.nn.Module, inp: Any, out: Any) -> Any:
            h = site_output(out, site, paths[site])
            if site in patches:
                h = patches[site].apply_seq(h)
            if site in record:
                rec[site] = h
            return with_output(out, h) if site in patches else None
        return hook

    handles = [modules[paths[site]].register_forward_hook(make_hook(site))
               for site in dict.fromkeys([*record, *patches])]
    try:
        yield rec
    finally:
        for h in handles:
            h.remove()


__all__ = ["Edit", "EditFn", "IndexedEdit", "Patch", "hooked_sites", "is_per_step",
           "site_output", "with_output"]
