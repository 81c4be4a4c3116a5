"""Stepwise MAS between language models: the shared training loop on behaviour data.

:class:`LMEngine` is the interventions :class:`~simbench.interventions.engine.Engine` (its
training loop, validation and early stopping) on the language-model data of
:mod:`simbench.lm.data` instead of a task's counterfactuals: all directions into one target
run as one batch, from cached source states and, with the fast runner, the target's cached
frozen prefix (:mod:`simbench.lm.runner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import parametrize

from simbench.interventions.engine import SPLITS, Engine, EngineConfig, Party
from simbench.interventions.maps import InterventionMap
from simbench.lm.data import (
    MIN_AFTER,
    MIN_BEFORE,
    LMInterventions,
    OwnBehaviour,
    sample_interventions,
)
from simbench.seeds import rng

#: bytes of cached prefix states (all splits, all directions) above which states are computed
#: per batch instead (still only the layers above the site are patched and rerun)
CACHE_BYTES = 1 << 30


def split_prompts(n: int, seed: int) -> dict[str, np.ndarray]:
    """Prompt rows per split: a seeded 60/20/20 partition (every split gets at least one; with
    fewer than 3 prompts every split uses them all)."""
    if n < 3:
        rows = np.arange(n)
        return dict.fromkeys(SPLITS, rows)
    perm = rng(seed, 0x1A6).permutation(n)
    k = max(1, n // 5)
    return {"train": np.sort(perm[2 * k:]), "val": np.sort(perm[:k]),
            "test": np.sort(perm[k: 2 * k])}


class LMEngine(Engine):
    """Trains ``imap`` so the target continues with the source's tokens (see module)."""

    #: the step's margins (:func:`simbench.lm.data.step_bounds`); 0 and 0: the step anywhere
    min_before: int = MIN_BEFORE
    min_after: int = MIN_AFTER

    def __init__(self, parties: Sequence[Party], imap: InterventionMap,
                 directions: Sequence[tuple[int, int]], config: EngineConfig, *,
                 behaviour: Sequence[OwnBehaviour]) -> None:
        self.behaviour = list(behaviour)
        self.splits = split_prompts(int(self.behaviour[0].tokens.shape[0]), config.seed)
        self.own_states: list[Tensor] = []
        self.states: dict[str, dict[tuple[int, int], Tensor | None]] = {}
        super().__init__(parties, imap, directions, config)

    # ---- data -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        cfg = self.cfg
        dev = cfg.device
        for p, own in zip(self.parties, self.behaviour):
            self.own_states.append(p.runner.site_states(own.tokens.to(dev), own.mask.to(dev)))
        counts = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        for split in SPLITS:
            self.data[split] = {}
            for s, t in self.directions:
                iv = sample_interventions(self.behaviour[s], self.behaviour[t],
                                          self.splits[split], counts[split], self.rng,
                                          min_before=self.min_before,
                                          min_after=self.min_after)
                self.data[split][(s, t)] = iv.to(dev)  # type: ignore[assignment]
        need = sum(len(self.data[sp][(s, t)]) * int(self.data[sp][(s, t)].cf.shape[1])
                   * self.parties[t].width * 4 for sp in SPLITS for s, t in self.directions)
        self.cached = need <= CACHE_BYTES
        for split in SPLITS:
            self.states[split] = {}
            for s, t in self.directions:
                runner = self.parties[t].runner
                iv = self.data[split][(s, t)]
                self.states[split][(s, t)] = (runner.site_states(iv.cf, iv.mask)
                                              if self.cached and runner.fast else None)

    # ---- one patched pass -------------------------------------------------------------------
    def lm_logits(self, split: str, target: int, chunks: Sequence[tuple[int, Tensor]]
                  ) -> tuple[Tensor, Tensor, Tensor, int]:
        """(logits [N, V], row of each [N], target token of each [N], rows) at the scored
        positions of rows of several directions into ``target``, in one pass."""
        runner = self.parties[target].runner
        parts: list[tuple[int, LMInterventions, Tensor]] = [
            (s, self.data[split][(s, target)], rows) for s, rows in chunks]  # type: ignore[misc]
        width = max(iv.cf.shape[1] for _, iv, _ in parts)

        def cat(name: str) -> Tensor:
            return torch.cat([F.pad(getattr(iv, name)[r], (0, width - iv.cf.shape[1]))
                              for _, iv, r in parts])

        cf, mask, patch, want, targets = (cat(n) for n in ("cf", "mask", "patch", "scored",
                                                           "targets"))
        codes = []
        for s, iv, r in parts:
            z = self.imap.code(s, target, self.own_states[s][iv.src_idx[r]])
            codes.append(F.pad(z, (0, 0, 0, width - z.shape[1])))
        z_all = torch.cat(codes)
        states = None
        if runner.fast:
            cached = [self.states[split][(s, target)] for s, _, _ in parts]
            if all(c is not None for c in cached):
                states = torch.cat([F.pad(c[r], (0, 0, 0, width - c.shape[1]))
                                    for c, (_, _, r) in zip(cached, parts)])
            else:
                states = runner.site_states(cf, mask)

        def fn(h: Tensor, b: Tensor, t: Tensor) -> Tensor:
            return self.imap.apply(target, h, z_all[b, t])

        logits = runner.patched(cf, mask, patch, fn, want, states)
        return logits, want.nonzero(as_tuple=True)[0], targets[want], int(cf.shape[0])

    # ---- losses and accuracy ------------------------------------------------------------------
    @staticmethod
    def per_row(values: Tensor, rows: Tensor, n: int) -> Tensor:
        """Mean of ``values`` per row (rows without a scored token: 0)."""
        total = torch.zeros(n, device=values.device, dtype=values.dtype).index_add(0, rows,
                                                                                   values)
        count = torch.zeros(n, device=values.device, dtype=values.dtype).index_add(
            0, rows, torch.ones_like(values))
        return total / count.clamp(min=1)

    def step_loss(self, batches: dict[tuple[int, int], Tensor]) -> Tensor:
        """Cross-entropy to the source's tokens, per row then over rows, averaged over
        directions (all directions into one target in one pass)."""
        losses = []
        for target in sorted({t for _, t in batches}):
            chunks = [(s, rows) for (s, t), rows in batches.items() if t == target]
            logits, rows, targets, n = self.lm_logits("train", target, chunks)
            ce = F.cross_entropy(logits, targets, reduction="none")
            losses.append(self.per_row(ce, rows, n).mean() * len(chunks))
        return torch.stack(losses).sum() / max(len(batches), 1)

    @torch.no_grad()
    def _hits(self, split: str, s: int, t: int, chunk: int) -> tuple[Tensor, Tensor]:
        """Per intervention: every scored token right (trial) and the share right (token)."""
        n = len(self.data[split][(s, t)])
        trials, tokens = [], []
        for i in range(0, n, chunk):
            rows = torch.arange(i, min(i + chunk, n), device=self.cfg.device)
            logits, row, targets, m = self.lm_logits(split, t, [(s, rows)])
            hit = (logits.argmax(-1) == targets).float()
            token = self.per_row(hit, row, m)
            wrong = torch.zeros(m, device=hit.device).index_add(0, row, 1 - hit)
            trials.append(wrong == 0)
            tokens.append(token)
        return torch.cat(trials), torch.cat(tokens)

    @torch.no_grad()
    def iia(self, split: str = "val", directions: Sequence[tuple[int, int]] | None = None,
            chunk: int = 512) -> dict[tuple[int, int], float]:
        """Whole-continuation IIA per direction."""
        with parametrize.cached():
            return {(s, t): float(self._hits(split, s, t, chunk)[0].float().mean())
                    for s, t in directions or self.directions}

    @torch.no_grad()
    def evaluate(self, split: str = "test", chunk: int = 512,
                 directions: Sequence[tuple[int, int]] | None = None
                 ) -> dict[tuple[int, int], dict]:
        """Whole-continuation (trial) and token IIA per direction (all, or ``directions``);
        ``token_rows`` holds each intervention's share of tokens right."""
        out: dict[tuple[int, int], dict[str, Any]] = {}
        with parametrize.cached():
            for s, t in directions or self.directions:
                trial, token = self._hits(split, s, t, chunk)
                out[(s, t)] = {"trial": float(trial.float().mean()),
                               "token": float(token.mean()), "n": int(trial.numel()),
                               "hits": int(trial.sum()),
                               "token_rows": token.detach().cpu().numpy()}
        return out


@torch.no_grad()
def init_from_prompts(engine: LMEngine) -> bool:
    """A data-driven start for the subspaces (MAS ``init = pca`` for language models).

    Every model reads the same prompt tokens, so their site states at the training prompts'
    positions pair up: U_0 spans the first model's top-k principal directions there, every
    other U_i is the Procrustes match to its coordinates, so an exact re-parametrization of a
    model starts exactly aligned. False (the random start kept) when the map is not one
    subspace per model.
    """
    from simbench.interventions.init import procrustes, set_subspaces

    imap = engine.imap
    subspaces = getattr(imap, "subspaces", None)
    if subspaces is None or len(subspaces) != len(engine.parties):
        return False
    rows = torch.as_tensor(engine.splits["train"])
    hs = []
    for own, states in zip(engine.behaviour, engine.own_states):
        pos = torch.arange(states.shape[1])[None, :]
        keep = (pos < own.prompt_len[:, None])[rows].to(states.device)
        h = states[rows.to(states.device)][keep].double()
        hs.append(h - h.mean(0))
    if any(h.shape != hs[0].shape for h in hs) or hs[0].shape[0] < imap.k:
        return False
    _, _, vt = torch.linalg.svd(hs[0], full_matrices=False)
    u0 = vt[: imap.k].T
    z0 = hs[0] @ u0
    set_subspaces(imap, [u0] + [procrustes(h, z0) for h in hs[1:]])
    return True


__all__ = ["LMEngine", "init_from_prompts", "split_prompts"]
