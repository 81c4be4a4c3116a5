"""Prompts to token ids, batches with attention masks, and greedy continuation.

Padding follows the tokenizer (left or right), positions counted from each row's first real
token, so a padded row computes what it computes alone. Prompts longer than the model's
context (with the continuation) are refused, never truncated: that would silently change the
behaviour being compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from simbench.errors import TaskError


def context_length(model: nn.Module) -> int | None:
    """The most positions the model takes (``max_position_embeddings``), or None."""
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def pad_id(tokenizer: Any) -> int:
    """The id padding is filled with (never attended to): pad, else end-of-text, else 0."""
    for attr in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return 0


def encode_prompts(tokenizer: Any, prompts: Sequence[str], *, new_tokens: int,
                   context: int | None, what: str = "model") -> list[list[int]]:
    """Token ids of each prompt (the tokenizer's special tokens included).

    A prompt that encodes to no token, or whose tokens plus ``new_tokens`` exceed ``context``,
    raises :class:`TaskError` naming it.
    """
    out = []
    for i, text in enumerate(prompts):
        ids = list(tokenizer(text)["input_ids"])
        shown = text if len(text) <= 40 else text[:37] + "..."
        if not ids:
            raise TaskError(f"prompt {i} ({shown!r}) encodes to no token", field="prompts",
                            fix="remove it or give it some text")
        unknown = unknown_words(tokenizer, text, ids)
        if unknown:
            raise TaskError(
                f"prompt {i} ({shown!r}) has {len(unknown)} word(s) not in '{what}''s "
                f"vocabulary: {', '.join(map(repr, unknown[:8]))}"
                f"{' and more' if len(unknown) > 8 else ''}; the tokenizer would turn them into "
                f"{tokenizer.unk_token!r}, silently changing the prompt",
                field="prompts", fix="use words of the model's vocabulary (its tokenizer's: "
                "tokenizer.json in the model directory), or drop the prompt")
        if context is not None and len(ids) + new_tokens > context:
            raise TaskError(
                f"prompt {i} ({shown!r}) has {len(ids)} tokens; with {new_tokens} continuation "
                f"tokens that is {len(ids) + new_tokens}, more than the {context} positions of "
                f"'{what}'s context. simbench refuses such prompts rather than truncating them",
                field="prompts", fix="shorten the prompt or lower --new-tokens")
        out.append(ids)
    return out


def unknown_words(tokenizer: Any, text: str, ids: Sequence[int]) -> list[str]:
    """The words of ``text`` the tokenizer can only encode as its unknown token (``[UNK]``).

    Empty when ``ids`` hold no unknown token, when the tokenizer has none (byte-level BPE,
    e.g. GPT-2's, encodes every text), or when its unknown token doubles as a special token
    it adds itself. A word written as the unknown token itself is not counted.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    unk_text = getattr(tokenizer, "unk_token", None)
    specials = {getattr(tokenizer, a, None) for a in ("bos_token_id", "eos_token_id",
                                                      "pad_token_id")}
    if not isinstance(unk, int) or unk in specials or unk not in ids:
        return []
    words = []
    for word in dict.fromkeys(text.split()):
        if word == unk_text:
            continue
        if unk in tokenizer(word, add_special_tokens=False)["input_ids"]:
            words.append(word)
    return words


def pad_batch(seqs: Sequence[Sequence[int]], pad: int, *, side: str = "right",
              device: Any = "cpu") -> tuple[Tensor, Tensor]:
    """``(ids [B, W], attention_mask [B, W])`` of token sequences padded on ``side``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, sl] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, sl] = 1
    return ids.to(device), mask.to(device)


def position_ids(mask: Tensor) -> Tensor:
    """Positions counted from each row's first real token (padding: 0)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def forward(model: nn.Module, ids: Tensor | None, mask: Tensor, *,
            inputs_embeds: Tensor | None = None) -> Tensor:
    """Logits [B, W, V] of one pass with the attention mask and mask-derived positions."""
    out = model(**pass_inputs(ids, mask, inputs_embeds))
    return out.logits if hasattr(out, "logits") else out[0]


def pass_inputs(ids: Tensor | None, mask: Tensor, inputs_embeds: Tensor | None = None
                ) -> dict[str, Any]:
    """A pass's keyword arguments: token ids (or ``inputs_embeds`` when given), the attention
    mask and positions counted from each row's first real token, no cache."""
    kwargs: dict[str, Any] = {"attention_mask": mask, "position_ids": position_ids(mask),
                              "use_cache": False}
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = ids
    return kwargs


@torch.no_grad()
def greedy_continue(model: nn.Module, prompts: Sequence[Sequence[int]], new_tokens: int, *,
                    pad: int, side: str = "right", batch_size: int = 64) -> list[list[int]]:
    """Each prompt's greedy continuation: exactly ``new_tokens`` argmax tokens.

    Generation does not stop at an end-of-text token (every continuation has the same length,
    so continuations compare token by token). One full pass per new token: exact with either
    padding side.
    """
    device = next(model.parameters()).device
    out: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        seqs = [list(p) for p in prompts[start: start + batch_size]]
        conts: list[list[int]] = [[] for _ in seqs]
        for _ in range(new_tokens):
            ids, mask = pad_batch(seqs, pad, side=side, device=device)
            logits = forward(model, ids, mask)
            last = (mask * torch.arange(mask.shape[1], device=device)).argmax(1)
            nxt = logits[torch.arange(len(seqs), device=device), last].argmax(-1).tolist()
            for s, c, t in zip(seqs, conts, nxt):
                s.append(int(t))
                c.append(int(t))
        out.extend(conts)
    return out


__all__ = ["context_length", "encode_prompts", "forward", "greedy_continue", "pad_batch",
           "pad_id", "position_ids"]
