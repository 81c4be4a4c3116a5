"""The baseline the engine is measured against: MAS written the straightforward way.

Full d x d orthogonal matrices with torch's default parametrization (the matrix exponential for
square matrices), every direction its own forward pass from BOS for the source and for the
target, nothing cached. It trains on the engine's own intervention sets, so both see the same
data and the comparison is of implementations only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations


class NaiveMAS(nn.Module):
    def __init__(self, models: list, site: str, k: int, width: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.models, self.site, self.k = models, site, k
        self.rot = nn.ModuleList()
        for _ in models:
            lin = nn.Linear(width, width, bias=False)
            parametrizations.orthogonal(lin, "weight")  # square -> matrix_exp
            self.rot.append(lin)
        self.mask = torch.zeros(width)
        self.mask[:k] = 1

    def logits(self, engine, split: str, s: int, t: int, rows: torch.Tensor) -> tuple:
        d = engine.data[split][(s, t)]
        src_tokens = torch.as_tensor(engine.parties[s].pools[split].tokens)[d.src_idx[rows]]
        _, rec = self.models[s].run(src_tokens, record=(self.site,))  # from BOS, every time
        h_s = rec[self.site][torch.arange(len(rows)), d.spos[rows]]
        r_s, r_t = self.rot[s].weight, self.rot[t].weight
        m = self.mask
        cf, tpos = d.cf[rows], d.tpos[rows]
        patch = torch.zeros(cf.shape, dtype=torch.bool)
        patch[torch.arange(len(rows)), tpos] = True

        def fn(h, b, _t):
            return ((1 - m) * (h @ r_t) + m * (h_s[b] @ r_s)) @ r_t.T

        logits, _ = self.models[t].run(cf, edits={self.site: (patch, fn)})
        # position j predicts token j + 1
        return logits[:, :-1], cf[:, 1:], d.cf_mask[rows][:, 1:]

    def loss(self, engine, batches: dict) -> torch.Tensor:
        losses = []
        for (s, t), rows in batches.items():
            logits, target, mask = self.logits(engine, "train", s, t, rows)
            ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            losses.append(((ce * mask).sum(1) / mask.sum(1).clamp(min=1)).mean())
        return torch.stack(losses).mean()

    @torch.no_grad()
    def iia(self, engine, split: str = "test") -> dict:
        out = {}
        for s, t in engine.directions:
            n = len(engine.data[split][(s, t)].iv)
            logits, target, mask = self.logits(engine, split, s, t, torch.arange(n))
            hit = (logits.argmax(-1) == target) | ~mask
            out[(s, t)] = float(hit.all(1).float().mean())
        return out
