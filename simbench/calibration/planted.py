"""Planted identity: a zoo network and an exact re-parametrization of it.

Permuting a network's hidden units consistently through every weight that reads or writes them
gives a different set of weights computing exactly the same function; its activity at every site
is the original's with the units reordered. A similarity measure that is meant to be invariant to
the choice of basis must call the two identical (or as similar as the network is to itself).

:func:`reparametrize` builds that copy with the architecture's own re-parametrization, which
its registration carries (:class:`simbench.zoo.archs.Arch`): for the recurrent nets the hidden
units within each gate block and the embedding's dimensions
(:func:`simbench.zoo.models.reparametrize_recurrent`), for the transformer the residual basis,
the heads and the feed-forward units (:mod:`simbench.zoo.archs.transformer`).

Floating-point sums run in a different order in the copy, so outputs agree to rounding (about
1e-6 in float32), not bit for bit.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from simbench.errors import SimbenchError
from simbench.seeds import rng
from simbench.zoo.archs import Reparametrized, archs, find_arch

if TYPE_CHECKING:
    from simbench.zoo.models import ZooModel

#: random stream tag of the planted permutations
PLANTED_STREAM = 0x1D


def reparametrize(model: ZooModel, seed: int, *, permute_inputs: bool = True) -> Reparametrized:
    """An exact re-parametrization of a zoo ``model``: same function, units permuted (seeded).

    ``permute_inputs`` also permutes the embedding dimensions of the recurrent nets and the
    residual basis of the transformer (default); without it only hidden units, heads and MLP
    units move and the ``embedding`` (and, for the transformer, residual) sites are unchanged.
    The original model is not modified.
    """
    import torch

    arch = find_arch(getattr(model, "arch", ""))
    if arch is None or arch.reparametrize is None:
        name = getattr(model, "arch", "") or type(model).__name__
        raise SimbenchError(f"no exact re-parametrization is known for architecture {name!r}",
                            field="arch", fix="use a zoo architecture whose registration has "
                            "one: " + ", ".join(a.name for a in archs().values()
                                                if a.reparametrize is not None))
    new = copy.deepcopy(model)
    with torch.no_grad():
        return arch.reparametrize(new, rng(seed, PLANTED_STREAM), permute_inputs)


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
