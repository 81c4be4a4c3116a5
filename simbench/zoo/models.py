"""What every zoo model shares: its config, the site and generation API, and the recurrent base.

The architectures themselves (one-layer GRU, one-layer LSTM, 2-layer pre-LayerNorm RoPE
transformer) live one file each in :mod:`simbench.zoo.archs`. Every model is a
``PatchableModel`` (``run`` with edits of :mod:`simbench.interventions.patch` and recorded
sites, ``site_dims``) with greedy ``generate``; the recurrent ones are also
``ContinuableModel``s, whose fast-path pieces let an engine cache a prefix state and run only
the continuation (the protocols are in :mod:`simbench.systems.accessible`). Generation stops a
sequence after its end token and pads the rest, with the ids the model's config records (its
task's, see :meth:`ModelConfig.for_task`) unless a call passes others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from simbench.errors import SiteError
from simbench.interventions.patch import Edit, Patch, is_per_step
from simbench.tasks.base import EOS, PAD

if TYPE_CHECKING:
    from simbench.tasks.base import Task
    from simbench.zoo.archs import Reparametrized


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

    def _patches(self, edits: Mapping[str, Edit] | None, tokens: Tensor,
                 record: Sequence[str] = ()) -> dict[str, Patch]:
        """The edits as patches of ``tokens``' shape, after checking their sites and those of
        ``record``."""
        if unknown := [s for s in (*record, *(edits or {})) if s not in self.sites]:
            raise SiteError(f"{self.arch} has no site {unknown[0]!r}", site=unknown[0],
                            fix=f"sites of this model: {', '.join(self.sites)}")
        return {site: Patch(site, edit, tuple(tokens.shape), tokens.device)
                for site, edit in (edits or {}).items()}

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
        return _cut((mask, what), width)
    m = torch.zeros((bsz, width), dtype=torch.bool, device=dev)
    m[:, : mask.shape[1]] = mask
    if callable(what):
        return (m, what)
    v = what.new_zeros((bsz, width, what.shape[-1]))
    v[:, : what.shape[1]] = what
    return (m, v)


def _step(out: Tensor, t: int, pred: Tensor, gen: Tensor, done: Tensor, *, eos: int,
          pad: int) -> Tensor:
    """Write the prediction for position t + 1 where it is generated (``pad`` in rows that
    have ended) and return which rows have finished; once all have, everything after the last
    written position becomes ``pad``."""
    done = done | ((out[:, t] == eos) & gen[:, t])
    col = torch.where(gen[:, t + 1], pred, out[:, t + 1])
    out[:, t + 1] = torch.where(done, torch.full_like(col, pad), col)
    done = done | ((out[:, t + 1] == eos) & gen[:, t + 1])
    if bool(done.all()):
        out[:, t + 2:] = pad
    return done


class RecurrentModel(ZooModel):
    """Embedding -> one recurrent layer -> linear read-out; sites ``embedding`` and ``hidden``.

    A subclass builds ``self.rnn`` (a one-layer, batch-first torch recurrent module) and
    ``self.readout``; the fast-path pieces below suit a cell with one state tensor [1, B, d]
    (nn.GRU, nn.RNN), and a cell with more (the LSTM's (h, c)) overrides them.
    """

    sites = ("embedding", "hidden")
    #: gate blocks stacked in the cell's weights (GRU: reset, update, new; LSTM: four)
    gates: ClassVar[int] = 1

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)

    # the fast-path pieces -------------------------------------------------------------------
    def embed(self, tokens: Tensor) -> Tensor:
        """Token ids [B, T] -> the vectors fed into the cell, [B, T, d_model] (site embedding)."""
        return self.embed_tokens(tokens)

    def init_state(self, batch: int, device: torch.device | None = None) -> Any:
        return torch.zeros(1, batch, self.rnn.hidden_size, device=device)

    def recur(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run the cell over a chunk: x [B, L, d_in] -> (site sequence [B, L, d_site], state)."""
        return self.rnn(x, state)

    def site_to_state(self, v: Tensor) -> Any:
        """A site vector [B, d_site] as the cell state to continue the recurrence from."""
        return v[None].contiguous()

    def head(self, site_seq: Tensor) -> Tensor:
        return self.readout(site_seq)

    @property
    def site_dims(self) -> dict[str, int]:
        return {"embedding": self.config.d_model, "hidden": self.config.d_model}

    # runs -----------------------------------------------------------------------------------
    def run(self, tokens: Tensor, *, edits: Mapping[str, Edit] | None = None,
            record: Sequence[str] = ()) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher-forced pass with patches; edit forms as in :mod:`simbench.interventions.patch`.

        A ``hidden`` patch at (b, t) replaces the cell's state after step t, so the recurrence
        continues from the patched state (for the LSTM both h and c). The sequence is split
        only at positions where some entry is patched, each chunk one fused call.
        """
        patches = self._patches(edits, tokens, record)
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
        return self.head(seq), {k: v for k, v in (("embedding", x), ("hidden", seq))
                                if k in record}

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
    """``edits`` cut to the first ``width`` positions (per-step edits as they are)."""
    if not edits:
        return None
    return {k: e if is_per_step(e) else _cut(e, width) for k, e in edits.items()}


def _cut(edit: Any, width: int) -> Any:
    """A (mask, values) edit's first ``width`` positions (a callable's values as they are)."""
    mask, what = edit
    return (mask[:, :width], what if callable(what) else what[:, :width])


def reparametrize_recurrent(model: RecurrentModel, gen: np.random.Generator,
                            permute_inputs: bool) -> Reparametrized:
    """Permute a recurrent model's units in place, exactly (see
    :mod:`simbench.calibration.planted`).

    The hidden units are permuted within each gate block of the input and recurrent weights
    and biases, the recurrent weights' columns and the read-out's columns; with
    ``permute_inputs`` the embedding's dimensions too (embedding columns, input weights'
    columns). The ``hidden`` site's permutation is :meth:`RecurrentModel.site_to_state`'s
    layout of it: the unit permutation, on both halves where the site is concat(h, c).
    """
    from simbench.zoo.archs import Reparametrized, in_blocks, permutation, take

    rnn = model.rnn
    units = rnn.hidden_size
    pi = permutation(gen, units)
    rho = permutation(gen, rnn.input_size, permute_inputs)
    rows = in_blocks(pi, model.gates)
    take(model.embed_tokens.weight, rho, 1)
    take(rnn.weight_ih_l0, rows, 0)
    take(rnn.weight_ih_l0, rho, 1)
    take(rnn.weight_hh_l0, rows, 0)
    take(rnn.weight_hh_l0, pi, 1)
    for bias in (rnn.bias_ih_l0, rnn.bias_hh_l0):
        take(bias, rows, 0)
    take(model.readout.weight, pi, 1)
    rnn.flatten_parameters()
    hidden = in_blocks(pi, model.site_dims["hidden"] // units)
    return Reparametrized(model, {"embedding": rho, "hidden": hidden},
                          {"units": pi, "embedding": rho})


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


def build_model(config: ModelConfig) -> ZooModel:
    """A fresh model for ``config.arch`` (a registered architecture or one of its aliases;
    see :mod:`simbench.zoo.archs`). ``config.arch`` is set to the architecture's name."""
    from simbench.zoo.archs import get_arch

    arch = get_arch(config.arch)
    config.arch = arch.name
    return arch.model(config)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["Edit", "ModelConfig", "RecurrentModel", "ZooModel", "build_model",
           "generate_by_full_passes", "n_params", "prepare_generation",
           "reparametrize_recurrent"]
