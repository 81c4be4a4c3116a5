"""The zoo's architectures: one file each, registered by name with the facts the rest of
simbench needs about them.

An architecture is an :class:`Arch`: its model class (a :class:`~simbench.zoo.models.ZooModel`
subclass), id prefix and aliases, training defaults, sites from input to output (the validity
check's layer order), cost weight (how much longer a causal job on it runs than on a GRU: the
harness starts long jobs first) and exact re-parametrization (the planted-identity check).
Adding one is a file that builds an ``Arch`` and calls :func:`register`; the built-in ones
(:data:`BUILTIN`: ``gru``, ``lstm``, ``transformer``) are imported on the first lookup, so
importing this package does not import torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from simbench.errors import SimbenchError

if TYPE_CHECKING:  # (not simbench.zoo.models: it imports this registry, and no cycles)
    from torch import nn

    #: ``reparametrize(model, generator, permute_inputs)``: permute ``model``'s units in place
    #: through every weight (same function) and say how (see :mod:`simbench.calibration.planted`)
    Reparametrizer = Callable[[nn.Module, np.random.Generator, bool], "Reparametrized"]

#: modules of the built-in architectures, each registering one :class:`Arch` on import
BUILTIN: tuple[str, ...] = ("gru", "lstm", "transformer")


@dataclasses.dataclass(frozen=True)
class Reparametrized:
    """The re-parametrized copy and how its units relate to the original's.

    ``site_perms[site]`` is an index array ``perm`` with ``copy_activity == original[..., perm]``
    at that site; ``unit_perms`` holds the internal permutations (hidden units, heads, MLP units)
    in the same convention.
    """

    model: nn.Module  # the zoo model (a simbench.zoo.models.ZooModel)
    site_perms: dict[str, np.ndarray]
    unit_perms: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Arch:
    """What simbench knows about one zoo architecture.

    ``train`` overrides fields of :class:`~simbench.zoo.training.TrainConfig` (settings measured
    to reach the zoo's accuracy bar); ``widths(d_model)`` gives the config fields that scale
    with a requested width (``simbench zoo train --d-model``); ``reparametrize`` is None where
    no exact re-parametrization is known (the planted-identity check then refuses it).
    """

    name: str
    model: type[nn.Module]  # a simbench.zoo.models.ZooModel subclass
    site_order: tuple[str, ...]
    short: str = ""
    aliases: tuple[str, ...] = ()
    train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    cost_weight: float = 1.0
    reparametrize: Reparametrizer | None = None
    widths: Callable[[int], dict[str, int]] = lambda d: {"d_model": d}

    @property
    def id_prefix(self) -> str:
        """The architecture's part of a zoo id (``tf`` in ``tf_multi_s1``)."""
        return self.short or self.name


_ARCHS: dict[str, Arch] = {}


def register(arch: Arch) -> Arch:
    """Add ``arch`` to the registry (a later registration of the same name replaces it)."""
    _ARCHS[arch.name] = arch
    return arch


def unregister(name: str) -> None:
    """Remove the architecture called ``name`` (a test's toy, a plugin being unloaded)."""
    _ARCHS.pop(name, None)


def archs() -> dict[str, Arch]:
    """Every registered architecture by name (the built-in ones loaded first: an import that
    already happened is a lookup)."""
    for name in BUILTIN:
        importlib.import_module(f"{__name__}.{name}")
    return dict(_ARCHS)


def find_arch(name: str | None) -> Arch | None:
    """The architecture called ``name`` (or one of its aliases), None when there is none."""
    if not name:
        return None
    known = archs()
    return known.get(name) or next((a for a in known.values() if name in a.aliases), None)


def get_arch(name: str) -> Arch:
    """The architecture called ``name`` or an alias; an unknown name raises SimbenchError."""
    arch = find_arch(name)
    if arch is None:
        listing = ", ".join(f"{a.name} ({', '.join(a.aliases)})" if a.aliases else a.name
                            for a in archs().values())
        raise SimbenchError(f"unknown architecture {name!r}", field="arch",
                            fix=f"valid architectures: {listing}")
    return arch


# ---- building blocks of an exact re-parametrization -------------------------------------
def permutation(gen: np.random.Generator, n: int, on: bool = True) -> np.ndarray:
    """A seeded permutation of ``n`` units, or the identity when ``on`` is False."""
    return gen.permutation(n) if on else np.arange(n)


def in_blocks(perm: np.ndarray, n_blocks: int) -> np.ndarray:
    """``perm`` applied inside each of ``n_blocks`` consecutive blocks of len(perm) rows."""
    size = len(perm)
    return np.concatenate([b * size + perm for b in range(n_blocks)])


def take(param: Any, index: np.ndarray, dim: int) -> None:
    """Reorder ``param`` in place along ``dim`` so that new[..., j, ...] = old[..., index[j], ...]."""
    import torch

    idx = torch.as_tensor(index, device=param.device)
    param.copy_(param.index_select(dim, idx))


__all__ = ["BUILTIN", "Arch", "Reparametrized", "Reparametrizer", "archs", "find_arch",
           "get_arch", "in_blocks", "permutation", "register", "take", "unregister"]
