"""Behaviour data for stepwise MAS between language models.

Every model greedily continues every prompt (:class:`OwnBehaviour`: the prompt followed by
``new_tokens`` generated tokens); models share a tokenizer, so position p is the same token
slot everywhere. A stepwise intervention source s -> target t (:func:`sample_interventions`)
pairs a source and a target sequence with a step j: the target reads its own tokens up to j
and the source's after j, its site is patched at every position 0..j with the source's aligned
subspace, and it should then produce the source's continuation tokens after j. IIA is the
share of those tokens predicted right (token level) and of interventions with every one right
(whole continuation, equal to free-running generation).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor


@dataclasses.dataclass
class OwnBehaviour:
    """One model's own sequences over the prompt pool, right-padded: tokens [n, W]."""

    tokens: Tensor
    lengths: Tensor  # [n] prompt + continuation
    prompt_len: Tensor  # [n]

    @classmethod
    def build(cls, prompts: list[list[int]], continuations: list[list[int]], pad: int
              ) -> OwnBehaviour:
        seqs = [p + c for p, c in zip(prompts, continuations)]
        width = max(len(s) for s in seqs)
        tokens = torch.full((len(seqs), width), pad, dtype=torch.long)
        for i, s in enumerate(seqs):
            tokens[i, : len(s)] = torch.as_tensor(s)
        return cls(tokens, torch.as_tensor([len(s) for s in seqs]),
                   torch.as_tensor([len(p) for p in prompts]))

    @property
    def mask(self) -> Tensor:
        pos = torch.arange(self.tokens.shape[1])[None, :]
        return (pos < self.lengths[:, None]).long()


@dataclasses.dataclass
class LMInterventions:
    """One direction's stepwise interventions for one split (all [n, W] unless noted).

    ``scored[q]`` marks logit positions whose prediction (the token at q + 1) is a source
    continuation token after the step; ``targets[q]`` is that token.
    """

    src_idx: Tensor  # [n] rows of the source's own sequences
    tgt_idx: Tensor  # [n]
    step: Tensor  # [n]
    cf: Tensor
    mask: Tensor  # attention mask of cf
    patch: Tensor  # bool: positions 0..step
    scored: Tensor  # bool
    targets: Tensor

    def __len__(self) -> int:
        return int(self.src_idx.shape[0])

    @property
    def iv(self) -> LMInterventions:
        """The engine's training loop counts interventions through ``data.iv``."""
        return self

    def to(self, device: str | torch.device) -> LMInterventions:
        return LMInterventions(**{f.name: getattr(self, f.name).to(device)
                                  for f in dataclasses.fields(self)})


#: the step j leaves at least this many positions before it (j >= MIN_BEFORE) ...
MIN_BEFORE = 4
#: ... and this many source tokens predicted after it: the paper keeps 10 tokens clear at each
#: end of up to 128; the zoo's sequences are 32 tokens at most, so the margins scale down.
MIN_AFTER = 2


def step_bounds(len_s: Tensor, len_t: Tensor, min_before: int = MIN_BEFORE,
                min_after: int = MIN_AFTER) -> tuple[Tensor, Tensor]:
    """(lo, hi) of the uniform step per intervention: ``hi = min(len_s - 1 - min_after,
    len_t - 1)``, ``lo = min(min_before, hi)`` (both at least 0; a sequence too short for the
    margins keeps the widest range it has)."""
    hi = torch.minimum(len_s - 1 - min_after, len_t - 1)
    hi = torch.where(hi < 0, torch.minimum(len_s - 2, len_t - 1).clamp(min=0), hi)
    lo = torch.minimum(torch.full_like(hi, min_before), hi)
    return lo, hi


def sample_interventions(src: OwnBehaviour, tgt: OwnBehaviour, rows: np.ndarray, n: int,
                         rng: np.random.Generator, *, min_before: int = MIN_BEFORE,
                         min_after: int = MIN_AFTER) -> LMInterventions:
    """``n`` stepwise interventions source -> target over prompt ``rows`` (see module), the
    step j uniform in :func:`step_bounds` (``min_before = min_after = 0``: the earlier
    protocol, j anywhere up to ``min(len_s - 2, len_t - 1)``)."""
    s_idx = torch.as_tensor(rng.choice(rows, n))
    t_idx = torch.as_tensor(rng.choice(rows, n))
    len_s, len_t = src.lengths[s_idx], tgt.lengths[t_idx]
    if min_before == 0 and min_after == 0:
        lo, hi = torch.zeros_like(len_s), torch.minimum(len_s - 2, len_t - 1).clamp(min=0)
    else:
        lo, hi = step_bounds(len_s, len_t, min_before, min_after)
    step = lo + torch.as_tensor(np.floor(rng.random(n) * (hi - lo + 1).numpy()).astype(np.int64))
    width = max(src.tokens.shape[1], tgt.tokens.shape[1])
    pos = torch.arange(width)[None, :]
    s_tok = torch.nn.functional.pad(src.tokens[s_idx], (0, width - src.tokens.shape[1]))
    t_tok = torch.nn.functional.pad(tgt.tokens[t_idx], (0, width - tgt.tokens.shape[1]))
    patch = pos <= step[:, None]
    cf = torch.where(patch, t_tok, s_tok)
    mask = (pos < len_s[:, None]).long()
    nxt = pos + 1
    scored = (pos >= step[:, None]) & (nxt >= src.prompt_len[s_idx][:, None]) & (
        nxt < len_s[:, None])
    targets = torch.cat([s_tok[:, 1:], s_tok[:, :1] * 0], 1)
    return LMInterventions(s_idx, t_idx, step, cf, mask, patch, scored, targets)


__all__ = ["MIN_AFTER", "MIN_BEFORE", "LMInterventions", "OwnBehaviour", "sample_interventions",
           "step_bounds"]
