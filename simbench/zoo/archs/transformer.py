"""The zoo's 2-layer pre-LayerNorm causal transformer with rotary positions (width 128, FF 512).

Its exact re-parametrization (:func:`reparametrize`) permutes the residual basis (embedding,
every LayerNorm's weight and bias, every weight reading or writing the residual stream, the
read-out), which is exact because LayerNorm's statistics are symmetric in the units and its
affine part is per unit, and within each layer the attention heads (query, key and value blocks
together, and the output projection's columns) and the feed-forward hidden units. Dimensions
inside a head are not permuted: rotary position encoding pairs dimension i with i + d_head/2 at
a fixed frequency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simbench.errors import SiteError
from simbench.interventions.patch import Edit
from simbench.zoo.archs import Arch, Reparametrized, in_blocks, permutation, register, take
from simbench.zoo.models import ModelConfig, ZooModel, generate_by_full_passes


def _rope(x: Tensor, base: float) -> Tensor:
    """Rotary position encoding over the last dim of x [B, H, T, Dh] (pairs (i, i + Dh/2))."""
    _, _, length, dh = x.shape
    half = dh // 2
    inv = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = torch.arange(length, device=x.device, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class Block(nn.Module):
    """Pre-LayerNorm causal self-attention with RoPE, then a GELU feed-forward."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.n_heads = config.n_heads
        self.base = config.rope_base
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.d_ff), nn.GELU(), nn.Linear(config.d_ff, d))

    def forward(self, x: Tensor) -> Tensor:
        bsz, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(bsz, length, 3, self.n_heads, -1).permute(
            2, 0, 3, 1, 4)
        q, k = _rope(q, self.base), _rope(k, self.base)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(bsz, length, d))
        return x + self.ff(self.ln2(x))


def _layer_sites(i: int) -> tuple[str, ...]:
    """The sites at layer ``i``'s output (``hidden`` is an alias of ``resid.0``)."""
    return (f"resid.{i}", "hidden") if i == 0 else (f"resid.{i}",)


def _patched(x: Tensor, i: int, patches: Mapping[str, Any]) -> Tensor:
    """Layer ``i``'s output ``x`` with the patches at its sites applied."""
    for name in _layer_sites(i):
        if name in patches:
            x = patches[name].apply_seq(x)
    return x


class TransformerModel(ZooModel):
    """2-layer pre-LN causal transformer with rotary positions (width 128, FF 512, GELU).

    Sites: ``embedding`` (token embedding, the input of layer 0), ``resid.0`` (residual stream
    after layer 0; alias ``hidden``) and ``resid.1`` (after layer 1, before the final norm).
    """

    arch = "transformer"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.readout = nn.Linear(d, config.vocab_size)
        self.sites = ("embedding", "hidden", *(f"resid.{i}" for i in range(config.n_layers)))
        nn.init.normal_(self.embed_tokens.weight, std=0.02)

    @property
    def site_dims(self) -> dict[str, int]:
        return dict.fromkeys(self.sites, self.config.d_model)

    def run(self, tokens: Tensor, *, edits: Mapping[str, Edit] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """One parallel pass; a patch at layer l's site changes every later position through
        attention in the layers above it (exactly what a step-by-step run would compute)."""
        patches = self._patches(edits, tokens, record)
        rec: dict[str, Tensor] = {}
        x = self.embed_tokens(tokens)
        if "embedding" in patches:
            x = patches["embedding"].apply_seq(x)
        if "embedding" in record:
            rec["embedding"] = x
        for i, layer in enumerate(self.layers):
            x = _patched(layer(x), i, patches)
            rec.update((name, x) for name in _layer_sites(i) if name in record)
        return self.readout(self.ln_f(x)), rec

    def _layer_of(self, site: str) -> int | None:
        """The layer whose output ``site`` is (None for ``embedding``)."""
        if site == "hidden":
            return 0
        return int(site.split(".", 1)[1]) if site.startswith("resid.") else None

    def can_run_from(self, site: str) -> bool:
        """Whether :meth:`run_from` can start at ``site`` (the residual sites: a patch there
        cannot change anything below it, so the layers below need not run again)."""
        return site in self.sites and self._layer_of(site) is not None

    def run_from(self, site: str, x: Tensor, *,
                 edits: Mapping[str, Edit] | None = None) -> Tensor:
        """Logits of a pass that starts at ``site`` from its unpatched activations ``x``
        [B, T, d] (what ``run(tokens, record=(site,))`` records): the site's own edit is
        applied, then only the layers above run. Equal to ``run(tokens, edits=edits)[0]``
        for edits at ``site`` or above; edits below it cannot be honoured and are refused."""
        layer = self._layer_of(site)
        if layer is None or site not in self.sites:
            raise SiteError(f"{self.arch} cannot start a pass at site {site!r}", site=site,
                            fix="start at hidden or resid.<layer>")
        patches = self._patches(edits, x[..., 0])
        for name in patches:
            below = self._layer_of(name)
            if below is None or below < layer:
                raise SiteError(f"an edit at {name!r} lies below {site!r}, where this pass "
                                "starts", site=name, fix="run the whole pass with run()")
        for i in range(layer, len(self.layers)):
            x = _patched(self.layers[i](x) if i > layer else x, i, patches)
        return self.readout(self.ln_f(x))

    def _generate(self, out: Tensor, start: Tensor, gen: Tensor,
                  edits: Mapping[str, Edit] | None, *, eos: int, pad: int) -> Tensor:
        return generate_by_full_passes(self.run, out, start, gen, edits, eos=eos, pad=pad)


def reparametrize(model: TransformerModel, gen: np.random.Generator, permute_inputs: bool
                  ) -> Reparametrized:
    """Permute the residual basis, each layer's heads and feed-forward units, in place."""
    d = model.config.d_model
    rho = permutation(gen, d, permute_inputs)
    units: dict[str, np.ndarray] = {"residual": rho}
    take(model.embed_tokens.weight, rho, 1)
    for i, block in enumerate(model.layers):
        heads = block.n_heads
        d_head = d // heads
        eta = permutation(gen, heads)
        # q, k and v of new head h are old head eta[h]'s; the projection reads v's heads
        head_cols = (eta[:, None] * d_head + np.arange(d_head)[None, :]).ravel()
        qkv_rows = in_blocks(head_cols, 3)
        mu = permutation(gen, block.ff[0].out_features)
        for ln in (block.ln1, block.ln2):
            _take_layer(ln, rho)
        _take_layer(block.qkv, qkv_rows, rho)
        _take_layer(block.proj, rho, head_cols)
        _take_layer(block.ff[0], mu, rho)
        _take_layer(block.ff[2], rho, mu)
        units[f"heads.{i}"] = eta
        units[f"mlp.{i}"] = mu
    _take_layer(model.ln_f, rho)
    take(model.readout.weight, rho, 1)
    return Reparametrized(model, dict.fromkeys(model.sites, rho), units)


def _take_layer(layer: nn.Module, out: np.ndarray, inputs: np.ndarray | None = None) -> None:
    """Permute a Linear's (or a LayerNorm's) outputs by ``out`` (weight rows and bias) and a
    Linear's inputs by ``inputs`` (weight columns)."""
    take(layer.weight, out, 0)
    if inputs is not None:
        take(layer.weight, inputs, 1)
    take(layer.bias, out, 0)


#: a causal job on a transformer runs a full parallel pass per patched batch instead of a
#: recurrent continuation: 5-8x the GRU pairs in paper.toml
ARCH = register(Arch(
    "transformer", TransformerModel, site_order=("embedding", "resid.0", "resid.1"),
    short="tf", aliases=("tf",), cost_weight=6.0, reparametrize=reparametrize,
    # a lower learning rate and a longer warm-up than the recurrent nets
    train={"lr": 2e-3, "batch_size": 128, "max_steps": 3000, "warmup": 100,
           "decay_steps": 2000},
    widths=lambda d: {"d_model": d, "d_ff": 4 * d}))
