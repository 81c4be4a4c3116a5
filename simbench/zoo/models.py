"""The zoo's task models: one-layer GRU, one-layer LSTM, 2-layer pre-LayerNorm RoPE transformer.

Every model offers the same API, which the intervention engine builds on:

- ``forward(tokens) -> logits [B, T, V]`` (teacher-forced);
- ``run(tokens, *, edits=None, record=()) -> (logits, {site: Tensor [B, T, d]})``: a forward pass
  that patches sites (with downstream recomputation) and returns the sites asked for *as they
  were after patching*;
- ``generate(tokens, start, max_new=None, *, response_mask=None, edits=None) -> tokens``: greedy
  free-running generation;
- ``sites`` (names) and ``site_dims`` (name -> width).

Edits follow the protocol of :mod:`simbench.interventions.patch`. Generation stops a sequence
after its end token and pads the rest; both ids default to the ones the model's config records
(its task's ``eos`` and ``pad``, see :meth:`ModelConfig.for_task`) and can be passed per call.

Recurrent models also expose the pieces of a fast path: ``embed(tokens)``,
``recur(x, state) -> (site_seq, state)`` (one fused nn.GRU / nn.LSTM call over a chunk),
``site_to_state(v)``, ``init_state(B)`` and ``head(site_seq)``, so an engine can cache a prefix
state and run only the continuation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simbench.errors import SiteError
from simbench.interventions.patch import Edit, Patch, is_per_step
from simbench.tasks.base import EOS, PAD

if TYPE_CHECKING:
    from simbench.tasks.base import Task


@dataclasses.dataclass
class ModelConfig:
    """Architecture hyper-parameters (stored in each checkpoint's sidecar).

    ``vocab_size``, ``pad_id`` and ``eos_id`` are the task's (its vocabulary's size, pad and
    end-of-sequence ids; ``eos_id`` -1 when the task has no end token); the defaults are the
    built-in vocabulary's, which the shipped zoo's sidecars (written before these fields
    existed) rely on.
    """

    arch: str = "gru"
    vocab_size: int = 34
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    rope_base: float = 10000.0
    pad_id: int = PAD
    eos_id: int = EOS

    @classmethod
    def for_task(cls, task: Task, **kwargs: Any) -> ModelConfig:
        """A config whose vocabulary size and special ids are ``task``'s (``kwargs``: the
        other fields)."""
        eos = task.eos
        return cls(**{**kwargs, "vocab_size": len(task.vocab), "pad_id": task.pad,
                      "eos_id": -1 if eos is None else eos})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ZooModel(nn.Module):
    """Common base: site bookkeeping, edit normalisation and greedy generation."""

    arch: ClassVar[str] = ""
    sites: tuple[str, ...] = ()

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def site_dims(self) -> dict[str, int]:
        raise NotImplementedError

    def _patches(self, edits: Mapping[str, Edit] | None, tokens: Tensor) -> dict[str, Patch]:
        out = {}
        for site, edit in (edits or {}).items():
            self._check_site(site)
            out[site] = Patch(site, edit, tuple(tokens.shape), tokens.device)
        return out

    def _check_site(self, site: str) -> None:
        if site not in self.sites:
            raise SiteError(f"{self.arch} has no site {site!r}", site=site,
                            fix=f"sites of this model: {', '.join(self.sites)}")

    def forward(self, tokens: Tensor) -> Tensor:
        return self.run(tokens)[0]

    def run(self, tokens: Tensor, *, edits: Mapping[str, Edit] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, tokens: Tensor, start: int | Tensor, max_new: int | None = None, *,
                 response_mask: Tensor | None = None,
                 edits: Mapping[str, Edit] | None = None, eos: int | None = None,
                 pad: int | None = None) -> Tensor:
        """Greedy free-running generation.

        ``tokens`` [B, T] holds the prefix and any inputs that are teacher-forced; from position
        ``start`` (an int, or a LongTensor [B]) on, every position where ``response_mask`` is
        True (default: all of them) gets the model's own prediction, the others keep the given
        token. A sequence stops after it emits ``eos`` (the rest becomes ``pad``). The output
        has width ``max(start) + max_new`` (default: the width of ``tokens``). Edits apply as in
        :meth:`run`, at their positions of the generated sequence. ``eos``/``pad`` default to
        the config's ``eos_id``/``pad_id``.
        """
        eos = self.config.eos_id if eos is None else eos
        pad = self.config.pad_id if pad is None else pad
        return self._generate(*prepare_generation(tokens, start, max_new, response_mask, edits,
                                                  pad=pad), eos=eos, pad=pad)

    def _generate(self, out: Tensor, start: Tensor, gen: Tensor,
                  edits: Mapping[str, Edit] | None, *, eos: int, pad: int) -> Tensor:
        raise NotImplementedError


def prepare_generation(tokens: Any, start: int | Tensor, max_new: int | None,
                       response_mask: Tensor | None, edits: Mapping[str, Edit] | None, *,
                       pad: int = PAD
                       ) -> tuple[Tensor, Tensor, Tensor, dict[str, Edit] | None]:
    """The output buffer, per-row start, which positions are generated, and widened edits
    (the contract every ``generate`` shares; see :meth:`ZooModel.generate`)."""
    tokens = torch.as_tensor(tokens)
    bsz, width = tokens.shape
    dev = tokens.device
    start_t = torch.as_tensor(start, device=dev).long().expand(bsz)
    out_w = width if max_new is None else int(start_t.max()) + int(max_new)
    out = torch.full((bsz, out_w), pad, dtype=torch.long, device=dev)
    out[:, : min(width, out_w)] = tokens[:, :out_w]
    pos = torch.arange(out_w, device=dev)[None, :]
    gen = pos >= start_t[:, None]
    if response_mask is not None:
        rm = torch.zeros((bsz, out_w), dtype=torch.bool, device=dev)
        rm[:, : min(width, out_w)] = torch.as_tensor(response_mask, device=dev)[:, :out_w]
        gen &= rm | (pos >= width)
    widened = {k: _widen(v, bsz, out_w, dev) for k, v in edits.items()} if edits else None
    return out, start_t, gen, widened


def _widen(edit: Any, bsz: int, width: int, dev: torch.device) -> Any:
    """Pad an edit's mask (and values) to the generation width."""
    if is_per_step(edit):
        return edit
    mask, what = edit
    mask = torch.as_tensor(mask, device=dev).bool()
    if mask.shape[1] >= width:
        return (mask[:, :width], what if callable(what) else what[:, :width])
    m = torch.zeros((bsz, width), dtype=torch.bool, device=dev)
    m[:, : mask.shape[1]] = mask
    if callable(what):
        return (m, what)
    v = what.new_zeros((bsz, width, what.shape[-1]))
    v[:, : what.shape[1]] = what
    return (m, v)


def _step(out: Tensor, t: int, pred: Tensor, gen: Tensor, done: Tensor, *, eos: int,
          pad: int) -> Tensor:
    """Write the prediction for position t + 1 and return which rows have finished; once all
    have, everything after the last written position becomes ``pad``."""
    done = done | ((out[:, t] == eos) & gen[:, t])
    _finish(out, t + 1, pred, gen, done, pad=pad)
    done = done | ((out[:, t + 1] == eos) & gen[:, t + 1])
    if bool(done.all()):
        out[:, t + 2:] = pad
    return done


def _finish(out: Tensor, t: int, pred: Tensor, gen: Tensor, done: Tensor, *,
            pad: int) -> Tensor:
    """Write the prediction for position t where it is generated; ``pad`` after the end."""
    col = torch.where(gen[:, t], pred, out[:, t])
    col = torch.where(done, torch.full_like(col, pad), col)
    out[:, t] = col
    return col


# ---- recurrent models -------------------------------------------------------------------------
class RecurrentModel(ZooModel):
    """Embedding -> one recurrent layer -> linear read-out; sites ``embedding`` and ``hidden``."""

    sites = ("embedding", "hidden")

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)

    # the fast-path pieces -------------------------------------------------------------------
    def embed(self, tokens: Tensor) -> Tensor:
        """Token ids [B, T] -> the vectors fed into the cell, [B, T, d_model] (site embedding)."""
        return self.embed_tokens(tokens)

    def init_state(self, batch: int, device: torch.device | None = None) -> Any:
        raise NotImplementedError

    def recur(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run the cell over a chunk: x [B, L, d_in] -> (site sequence [B, L, d_site], state)."""
        raise NotImplementedError

    def site_to_state(self, v: Tensor) -> Any:
        """A site vector [B, d_site] as the cell state to continue the recurrence from."""
        raise NotImplementedError

    def head(self, site_seq: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def site_dims(self) -> dict[str, int]:
        return {"embedding": self.config.d_model, "hidden": self.config.d_model}

    # runs -----------------------------------------------------------------------------------
    def run(self, tokens: Tensor, *, edits: Mapping[str, Edit] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher-forced pass with patches; see the module docstring for edit forms.

        A ``hidden`` patch at (b, t) replaces the cell's state after step t, so the recurrence
        continues from the patched state (for the LSTM both h and c). The sequence is split
        only at positions where some entry is patched, each chunk one fused call.
        """
        for s in record:
            self._check_site(s)
        patches = self._patches(edits, tokens)
        x = self.embed(tokens)
        if "embedding" in patches:
            x = patches["embedding"].apply_seq(x)
        hp = patches.get("hidden")
        state = self.init_state(tokens.shape[0], tokens.device)
        if hp is None:
            seq, state = self.recur(x, state)
        else:
            cuts = list(range(tokens.shape[1])) if hp.per_step else hp.times()
            chunks, t0 = [], 0
            for t in [*cuts, tokens.shape[1] - 1]:
                if t < t0:
                    continue
                part, state = self.recur(x[:, t0: t + 1], state)
                if t in cuts:
                    last = hp.apply_step(part[:, -1], t)
                    part = torch.cat([part[:, :-1], last[:, None]], 1)
                    state = self.site_to_state(last)
                chunks.append(part)
                t0 = t + 1
            seq = torch.cat(chunks, 1)
        logits = self.head(seq)
        rec = {}
        if "embedding" in record:
            rec["embedding"] = x
        if "hidden" in record:
            rec["hidden"] = seq
        return logits, rec

    def _generate(self, out: Tensor, start: Tensor, gen: Tensor,
                  edits: Mapping[str, Edit] | None, *, eos: int, pad: int) -> Tensor:
        bsz, width = out.shape
        patches = self._patches(edits, out)
        s0 = int(start.min())
        # the shared prefix in one fused call (positions 0 .. s0 - 2)
        state = self.init_state(bsz, out.device)
        done = torch.zeros(bsz, dtype=torch.bool, device=out.device)
        if s0 >= 2:
            _, rec = self.run(out[:, : s0 - 1], edits=_crop(edits, s0 - 1), record=("hidden",))
            state = self.site_to_state(rec["hidden"][:, -1])
            done = (out[:, : s0 - 1] == eos).any(1)
        for t in range(max(s0 - 1, 0), width - 1):
            x = self.embed(out[:, t: t + 1])
            if "embedding" in patches:
                x = patches["embedding"].apply_seq(x, t)
            h, state = self.recur(x, state)
            h = h[:, 0]
            if "hidden" in patches:
                h = patches["hidden"].apply_step(h, t)
                state = self.site_to_state(h)
            done = _step(out, t, self.head(h[:, None])[:, 0].argmax(-1), gen, done, eos=eos,
                         pad=pad)
            if bool(done.all()):
                break
        return out


def _crop(edits: Mapping[str, Edit] | None, width: int) -> dict[str, Edit] | None:
    if not edits:
        return None
    out = {}
    for k, e in edits.items():
        if is_per_step(e):
            out[k] = e
        else:
            m, w = e
            out[k] = (m[:, :width], w if callable(w) else w[:, :width])
    return out


class GRUModel(RecurrentModel):
    """One-layer GRU, width 128; site ``hidden`` is h_t."""

    arch = "gru"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.rnn = nn.GRU(d, d, batch_first=True)
        self.readout = nn.Linear(d, config.vocab_size)

    def init_state(self, batch: int, device: torch.device | None = None) -> Tensor:
        return torch.zeros(1, batch, self.config.d_model, device=device)

    def recur(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.rnn(x, state)

    def site_to_state(self, v: Tensor) -> Tensor:
        return v[None].contiguous()

    def head(self, site_seq: Tensor) -> Tensor:
        return self.readout(site_seq)


class LSTMModel(RecurrentModel):
    """One-layer LSTM with 64 units; site ``hidden`` is concat(h_t, c_t) (128 wide).

    nn.LSTM returns only h per step; the cell states c_t are recomputed from the gates (which
    depend only on x_t and h_{t-1}, both known) with an elementwise scan, so recording both
    costs one extra matmul and no per-step matmuls.
    """

    arch = "lstm"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.units = config.d_model // 2
        self.rnn = nn.LSTM(config.d_model, self.units, batch_first=True)
        self.readout = nn.Linear(self.units, config.vocab_size)

    def init_state(self, batch: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        z = torch.zeros(1, batch, self.units, device=device)
        return (z, z.clone())

    def recur(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
              ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if state is None:
            state = self.init_state(x.shape[0], x.device)
        hs, (h_n, c_n) = self.rnn(x, state)
        if x.shape[1] == 1:
            return torch.cat([hs, c_n.transpose(0, 1)], -1), (h_n, c_n)
        h_prev = torch.cat([state[0].transpose(0, 1), hs[:, :-1]], 1)
        gates = (x @ self.rnn.weight_ih_l0.T + h_prev @ self.rnn.weight_hh_l0.T
                 + self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0)
        i, f, g, _ = gates.chunk(4, -1)
        ig = torch.sigmoid(i) * torch.tanh(g)
        f = torch.sigmoid(f)
        c = state[1][0]
        cs = []
        for t in range(x.shape[1]):
            c = f[:, t] * c + ig[:, t]
            cs.append(c)
        cseq = torch.stack(cs, 1)
        return torch.cat([hs, cseq], -1), (h_n, c_n)

    def site_to_state(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return (v[None, :, : self.units].contiguous(), v[None, :, self.units:].contiguous())

    def head(self, site_seq: Tensor) -> Tensor:
        return self.readout(site_seq[..., : self.units])

    def forward(self, tokens: Tensor) -> Tensor:
        """Teacher-forced logits without the c_t scan (what training uses)."""
        hs, _ = self.rnn(self.embed(tokens))
        return self.readout(hs)


# ---- transformer ------------------------------------------------------------------------------
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
        for s in record:
            self._check_site(s)
        patches = self._patches(edits, tokens)
        rec: dict[str, Tensor] = {}
        x = self.embed_tokens(tokens)
        if "embedding" in patches:
            x = patches["embedding"].apply_seq(x)
        if "embedding" in record:
            rec["embedding"] = x
        for i, layer in enumerate(self.layers):
            x = layer(x)
            names = (f"resid.{i}", "hidden") if i == 0 else (f"resid.{i}",)
            for name in names:
                if name in patches:
                    x = patches[name].apply_seq(x)
            for name in names:
                if name in record:
                    rec[name] = x
        return self.readout(self.ln_f(x)), rec

    def _layer_of(self, site: str) -> int | None:
        """The layer whose output ``site`` is (None for ``embedding``)."""
        if site == "hidden":
            return 0
        if site.startswith("resid."):
            return int(site.split(".", 1)[1])
        return None

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
            if i > layer:
                x = self.layers[i](x)
            for name in (f"resid.{i}", "hidden") if i == 0 else (f"resid.{i}",):
                if name in patches:
                    x = patches[name].apply_seq(x)
        return self.readout(self.ln_f(x))

    def _generate(self, out: Tensor, start: Tensor, gen: Tensor,
                  edits: Mapping[str, Edit] | None, *, eos: int, pad: int) -> Tensor:
        return generate_by_full_passes(self.run, out, start, gen, edits, eos=eos, pad=pad)


def generate_by_full_passes(run: Callable[..., tuple[Tensor, Any]], out: Tensor, start: Tensor,
                            gen: Tensor, edits: Mapping[str, Edit] | None, *, eos: int = EOS,
                            pad: int = PAD) -> Tensor:
    """Greedy generation for models without a recurrence to step: one full pass per token."""
    bsz, width = out.shape
    done = torch.zeros(bsz, dtype=torch.bool, device=out.device)
    s0 = max(int(start.min()), 1)
    if s0 >= 2:
        done = ((out[:, : s0 - 1] == eos) & gen[:, : s0 - 1]).any(1)
    for t in range(s0 - 1, width - 1):
        logits, _ = run(out[:, : t + 1], edits=_crop(edits, t + 1))
        done = _step(out, t, logits[:, -1].argmax(-1), gen, done, eos=eos, pad=pad)
        if bool(done.all()):
            break
    return out


ARCHS: dict[str, type[ZooModel]] = {"gru": GRUModel, "lstm": LSTMModel,
                                    "transformer": TransformerModel}
ARCH_ALIASES = {"tf": "transformer"}


def build_model(config: ModelConfig) -> ZooModel:
    """A fresh model for ``config.arch`` (gru, lstm or transformer)."""
    from simbench.errors import SimbenchError

    arch = ARCH_ALIASES.get(config.arch, config.arch)
    if arch not in ARCHS:
        raise SimbenchError(f"unknown architecture {config.arch!r}", field="arch",
                            fix=f"valid architectures: {', '.join(ARCHS)}")
    config.arch = arch
    return ARCHS[arch](config)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ARCHS", "Edit", "GRUModel", "LSTMModel", "ModelConfig", "RecurrentModel",
           "TransformerModel", "ZooModel", "build_model", "n_params"]
