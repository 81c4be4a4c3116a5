"""Patched passes of a frozen causal LM, with the frozen prefix cached.

A stepwise intervention at decoder layer L changes nothing below L, whose inputs (the
counterfactual tokens) never change while a map trains. So the site's states are computed once
(:meth:`LMRunner.site_states`) and each patched pass (:meth:`LMRunner.patched`) runs only the
layers above L, those up to L swapped for that pass for a module returning the patched states
(at ``embedding`` they enter as ``inputs_embeds``); the output head runs only where tokens
are scored. ``fast=False`` is the baseline: hooks on the full model, every pass from the
embeddings; both give the same logits (tested to 1e-5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from simbench.interventions.patch import site_output, with_output
from simbench.lm import sites as lm_sites
from simbench.lm.text import forward, pass_inputs

PatchFn = Callable[[Tensor, Tensor, Tensor], Tensor]
#: model types whose logits are exactly ``lm_head(base_model(...).last_hidden_state)``
HEAD_ONLY_TYPES = frozenset({"gpt2", "llama", "qwen2", "mistral", "qwen3", "gpt_neox", "opt"})


class _Const(nn.Module):
    """Stands in for a decoder layer during one pass: returns the given states."""

    def __init__(self, h: Tensor, as_tuple: int) -> None:
        super().__init__()
        self.h, self.as_tuple = h, as_tuple

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.as_tuple:
            return (self.h, *([None] * (self.as_tuple - 1)))
        return self.h


class LMRunner:
    """One frozen LM at one site: site states, and patched passes (fast or baseline)."""

    def __init__(self, system: Any, site: str, *, fast: bool = True) -> None:
        self.system = system
        self.module: nn.Module = system.module
        self.site = site
        self.path = system.model.path(site)
        self.width = system.model.width(site)
        self.layer = lm_sites.layer_index(self.module, self.path)
        self.fast = fast and (self.layer is not None or site == lm_sites.EMBEDDING)
        self._out_len = 0  # the layer's output: 0 a tensor, n a tuple of n items
        config = getattr(self.module, "config", None)
        self.head_only = getattr(config, "model_type", None) in HEAD_ONLY_TYPES

    #: read ``embedding`` states by the embedding lookup alone (False: a full forward pass
    #: with a hook, as for any other site; both give the same tensor)
    embedding_lookup: bool = True

    @torch.no_grad()
    def site_states(self, tokens: Tensor, mask: Tensor, batch: int = 256) -> Tensor:
        """The site's output [n, W, d] over token sequences (no patch); at ``embedding``, the
        input-embedding module's alone (the rest of the model cannot change it)."""
        if self.embedding_lookup and self.site == lm_sites.EMBEDDING:
            emb = self.module.get_input_embeddings()
            return torch.cat([emb(tokens[i: i + batch]).float()
                              for i in range(0, tokens.shape[0], batch)])
        out = []
        modules = dict(self.module.named_modules())
        for i in range(0, tokens.shape[0], batch):
            got: dict[str, Tensor] = {}

            def hook(mod: nn.Module, inp: Any, o: Any, got: dict = got) -> None:
                got["h"] = site_output(o, self.site, self.site)
                self._out_len = len(o) if isinstance(o, tuple) else 0

            handle = modules[self.path].register_forward_hook(hook)
            try:
                forward(self.module, tokens[i: i + batch], mask[i: i + batch])
            finally:
                handle.remove()
            out.append(got["h"].float())
        return torch.cat(out)

    def patched(self, tokens: Tensor, mask: Tensor, patch: Tensor, fn: PatchFn,
                want: Tensor, states: Tensor | None = None) -> Tensor:
        """Logits [N, V] at the ``want`` positions (row-major) after patching the site at
        ``patch`` positions with ``fn(h [N, d], b [N], t [N])``.

        ``states``: the site's unpatched states of ``tokens`` (the frozen prefix); with them
        and ``fast``, only what lies above the site runs.
        """
        if self.fast and states is not None:
            return self._fast(tokens, mask, patch, fn, want, states)
        return self._hooked(tokens, mask, patch, fn, want)

    def _hooked(self, tokens: Tensor, mask: Tensor, patch: Tensor, fn: PatchFn,
                want: Tensor) -> Tensor:
        module = dict(self.module.named_modules())[self.path]

        def hook(mod: nn.Module, inp: Any, out: Any) -> Any:
            h = site_output(out, self.site, self.site)
            b, t = patch.nonzero(as_tuple=True)
            h = h.index_put((b, t), fn(h[b, t], b, t).to(h.dtype))
            return with_output(out, h)

        handle = module.register_forward_hook(hook)
        try:
            logits = forward(self.module, tokens, mask)
        finally:
            handle.remove()
        return logits[want]

    def _fast(self, tokens: Tensor, mask: Tensor, patch: Tensor, fn: PatchFn, want: Tensor,
              states: Tensor) -> Tensor:
        b, t = patch.nonzero(as_tuple=True)
        h = states.index_put((b, t), fn(states[b, t], b, t).to(states.dtype))
        if self.layer is None:  # the embedding: patched states enter as inputs_embeds
            return self._head(None, mask, want, inputs_embeds=h)
        found = lm_sites.decoder_layers(self.module)
        assert found is not None
        layers = found[1]
        saved = [layers[i] for i in range(self.layer + 1)]
        const = _Const(h, self._out_len)
        try:
            for i in range(self.layer + 1):
                layers[i] = const
            return self._head(tokens, mask, want)
        finally:
            for i, m in enumerate(saved):
                layers[i] = m

    def _head(self, tokens: Tensor | None, mask: Tensor, want: Tensor,
              inputs_embeds: Tensor | None = None) -> Tensor:
        """Logits at ``want`` only: the output head runs on those positions alone where the
        architecture's logits are exactly head(last hidden state)."""
        if not self.head_only:
            return forward(self.module, tokens, mask, inputs_embeds=inputs_embeds)[want]
        base = self.module.base_model(**pass_inputs(tokens, mask, inputs_embeds))
        hidden = base.last_hidden_state if hasattr(base, "last_hidden_state") else base[0]
        return self.module.get_output_embeddings()(hidden[want])


__all__ = ["LMRunner"]
