"""Planted identity: a zoo network and an exact re-parametrization of it.

Permuting a network's hidden units consistently through every weight that reads or writes them
gives a different set of weights computing exactly the same function; its activity at every site
is the original's with the units reordered. A similarity measure that is meant to be invariant to
the choice of basis must call the two identical (or as similar as the network is to itself).

:func:`reparametrize` builds that copy for each zoo architecture:

- GRU: the hidden units are permuted within each gate block (reset, update, new) of the input
  and recurrent weights and biases, the recurrent weights' columns, and the read-out's columns;
  the embedding's dimensions are permuted too (embedding columns, input weights' columns).
- LSTM: the same with four gate blocks (input, forget, cell, output); the ``hidden`` site is
  concat(h, c), so its permutation is the unit permutation applied to both halves.
- Transformer: the residual basis is permuted (embedding, every LayerNorm's weight and bias,
  every weight reading or writing the residual stream, the read-out), which is exact because
  LayerNorm's statistics are symmetric in the units and its affine part is per unit. Within each
  layer the attention heads (query, key and value blocks together, and the output projection's
  columns) and the feed-forward hidden units are permuted. Dimensions inside a head are not:
  rotary position encoding pairs dimension i with i + d_head/2 at a fixed frequency.

Floating-point sums run in a different order in the copy, so outputs agree to rounding (about
1e-6 in float32), not bit for bit.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simbench.errors import SimbenchError

if TYPE_CHECKING:
    from simbench.zoo.models import ZooModel

#: random stream tag of the planted permutations
PLANTED_STREAM = 0x1D
RNN_GATES = {"gru": 3, "lstm": 4}


@dataclasses.dataclass
class Reparametrized:
    """The re-parametrized copy and how its units relate to the original's.

    ``site_perms[site]`` is an index array ``perm`` with ``copy_activity == original[..., perm]``
    at that site; ``unit_perms`` holds the internal permutations (hidden units, heads, MLP units)
    in the same convention.
    """

    model: ZooModel
    site_perms: dict[str, np.ndarray]
    unit_perms: dict[str, np.ndarray]


def reparametrize(model: ZooModel, seed: int, *, permute_inputs: bool = True) -> Reparametrized:
    """An exact re-parametrization of a zoo ``model``: same function, units permuted (seeded).

    ``permute_inputs`` also permutes the embedding dimensions of the recurrent nets and the
    residual basis of the transformer (default); without it only hidden units, heads and MLP
    units move and the ``embedding`` (and, for the transformer, residual) sites are unchanged.
    The original model is not modified.
    """
    import torch

    arch = getattr(model, "arch", "")
    gen = np.random.default_rng(np.random.SeedSequence([int(seed), PLANTED_STREAM]))
    new = copy.deepcopy(model)
    with torch.no_grad():
        if arch in RNN_GATES:
            out = _recurrent(new, gen, RNN_GATES[arch], permute_inputs)
        elif arch == "transformer":
            out = _transformer(new, gen, permute_inputs)
        else:
            raise SimbenchError(f"no exact re-parametrization is known for architecture "
                                f"{arch or type(model).__name__!r}", field="arch",
                                fix="use a zoo GRU, LSTM or transformer")
    return out


def _perm(gen: np.random.Generator, n: int, on: bool = True) -> np.ndarray:
    return gen.permutation(n) if on else np.arange(n)


def _blocks(perm: np.ndarray, n_blocks: int) -> np.ndarray:
    """``perm`` applied inside each of ``n_blocks`` consecutive blocks of len(perm) rows."""
    size = len(perm)
    return np.concatenate([b * size + perm for b in range(n_blocks)])


def _take(param: Any, index: np.ndarray, dim: int) -> None:
    """Reorder ``param`` in place along ``dim`` so that new[..., j, ...] = old[..., index[j], ...]."""
    import torch

    idx = torch.as_tensor(index, device=param.device)
    param.copy_(param.index_select(dim, idx))


def _recurrent(model: Any, gen: np.random.Generator, gates: int, permute_inputs: bool
               ) -> Reparametrized:
    rnn = model.rnn
    units = rnn.hidden_size
    d_in = rnn.input_size
    pi = _perm(gen, units)
    rho = _perm(gen, d_in, permute_inputs)
    rows = _blocks(pi, gates)
    _take(model.embed_tokens.weight, rho, 1)
    _take(rnn.weight_ih_l0, rows, 0)
    _take(rnn.weight_ih_l0, rho, 1)
    _take(rnn.weight_hh_l0, rows, 0)
    _take(rnn.weight_hh_l0, pi, 1)
    for bias in (rnn.bias_ih_l0, rnn.bias_hh_l0):
        _take(bias, rows, 0)
    _take(model.readout.weight, pi, 1)
    rnn.flatten_parameters()
    hidden = pi if model.arch == "gru" else np.concatenate([pi, units + pi])  # concat(h, c)
    return Reparametrized(model, {"embedding": rho, "hidden": hidden},
                          {"units": pi, "embedding": rho})


def _transformer(model: Any, gen: np.random.Generator, permute_inputs: bool) -> Reparametrized:
    d = model.config.d_model
    rho = _perm(gen, d, permute_inputs)
    units: dict[str, np.ndarray] = {"residual": rho}
    _take(model.embed_tokens.weight, rho, 1)
    for i, block in enumerate(model.layers):
        heads = block.n_heads
        d_head = d // heads
        eta = _perm(gen, heads)
        # q, k and v of new head h are old head eta[h]'s; the projection reads v's heads
        head_cols = (eta[:, None] * d_head + np.arange(d_head)[None, :]).ravel()
        qkv_rows = _blocks(head_cols, 3)
        mu = _perm(gen, block.ff[0].out_features)
        for ln in (block.ln1, block.ln2):
            _take(ln.weight, rho, 0)
            _take(ln.bias, rho, 0)
        _take(block.qkv.weight, qkv_rows, 0)
        _take(block.qkv.weight, rho, 1)
        _take(block.qkv.bias, qkv_rows, 0)
        _take(block.proj.weight, rho, 0)
        _take(block.proj.weight, head_cols, 1)
        _take(block.proj.bias, rho, 0)
        _take(block.ff[0].weight, mu, 0)
        _take(block.ff[0].weight, rho, 1)
        _take(block.ff[0].bias, mu, 0)
        _take(block.ff[2].weight, rho, 0)
        _take(block.ff[2].weight, mu, 1)
        _take(block.ff[2].bias, rho, 0)
        units[f"heads.{i}"] = eta
        units[f"mlp.{i}"] = mu
    _take(model.ln_f.weight, rho, 0)
    _take(model.ln_f.bias, rho, 0)
    _take(model.readout.weight, rho, 1)
    return Reparametrized(model, dict.fromkeys(model.sites, rho), units)


#: the planted and untrained networks of the shipped validity spec: (zoo id, seed)
VALIDITY_NETWORKS: tuple[tuple[str, int], ...] = (
    ("gru_multi_s1", 0), ("lstm_multi_s1", 0), ("tf_multi_s1", 0))


def write_planted(zoo_id: str, directory: str | Path, *, seed: int = 0) -> Path:
    """Save the exact re-parametrization of zoo model ``zoo_id`` as a checkpoint in ``directory``
    (``{zoo_id}_planted.safetensors`` + sidecar), so a spec can name it as a system.

    Checkpoints store float16; permuting float16 weights moves values without rounding them, so
    the saved copy is exactly the shipped weights in another order.
    """
    from simbench.zoo import load_model
    from simbench.zoo.checkpoint import save_model

    model, meta = load_model(zoo_id)
    planted = reparametrize(model, seed)
    out = Path(directory) / f"{zoo_id}_planted.safetensors"
    save_model(planted.model, out, {
        "task": meta["task"], "seed": meta.get("seed"), "planted_from": zoo_id,
        "planted_seed": int(seed),
        "note": "exact re-parametrization (hidden units, heads and MLP units permuted through "
                "every weight): the same function as the zoo model, units reordered"})
    return out


def write_untrained(zoo_id: str, directory: str | Path, *, seed: int = 0) -> Path:
    """Save a randomly initialised network of ``zoo_id``'s architecture and sizes (never
    trained; torch's default initialisation seeded with ``seed``) as
    ``{zoo_id}_untrained.safetensors``: the specificity check's reference."""
    import torch

    from simbench.zoo import load_model
    from simbench.zoo.checkpoint import save_model
    from simbench.zoo.models import ModelConfig, build_model

    _, meta = load_model(zoo_id)
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        model = build_model(ModelConfig(**meta["config"]))
    finally:
        torch.random.set_rng_state(gen_state)
    out = Path(directory) / f"{zoo_id}_untrained.safetensors"
    save_model(model, out, {
        "task": meta["task"], "seed": int(seed), "untrained_like": zoo_id,
        "note": "random initial weights of the zoo architecture, never trained"})
    return out


def write_validity_networks(directory: str | Path) -> list[Path]:
    """(Re)build the planted and untrained checkpoints the validity spec names."""
    out = []
    for zid, seed in VALIDITY_NETWORKS:
        out += [write_planted(zid, directory, seed=seed),
                write_untrained(zid, directory, seed=seed)]
    return out


__all__ = ["VALIDITY_NETWORKS", "Reparametrized", "reparametrize", "write_planted",
           "write_untrained", "write_validity_networks"]
