"""Sites of a causal LM: module paths plus ``embedding``.

A site is a module path as ``model.named_modules()`` spells it (``transformer.h.2``,
``model.layers.1``), whose output ``[B, T, d]`` is read and patched, or ``embedding`` (the
input-embedding module). The decoder layers are the ``nn.ModuleList`` with one entry per
hidden layer (below a layer site, :mod:`simbench.lm.runner` skips them).
"""

from __future__ import annotations

from torch import nn

from simbench.errors import SiteError, did_you_mean

EMBEDDING = "embedding"


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """(path, list) of the decoder layers: the ModuleList with one entry per hidden layer."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    best = None
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if n is not None and len(module) == n:
                return path, module
            best = best or (path, module)
    return best


def layer_paths(model: nn.Module) -> list[str]:
    """Module paths of the decoder layers, in order (``transformer.h.0``, ...)."""
    found = decoder_layers(model)
    return [] if found is None else [f"{found[0]}.{i}" for i in range(len(found[1]))]


def known_sites(model: nn.Module) -> list[str]:
    """The sites an error lists: ``embedding`` and every decoder layer."""
    return [EMBEDDING, *layer_paths(model)]


def embedding_path(model: nn.Module) -> str:
    """Module path of the input-embedding module."""
    emb = model.get_input_embeddings()
    for path, module in model.named_modules():
        if module is emb:
            return path
    raise SiteError("the model's input embedding is not one of its modules", site=EMBEDDING,
                    fix="name a module path instead")


def module_path(model: nn.Module, site: str, *, system_id: str = "model") -> str:
    """The module path ``site`` names; an unknown site lists the decoder layers."""
    if site == EMBEDDING:
        return embedding_path(model)
    modules = dict(model.named_modules())
    if site in modules and site:
        return site
    raise SiteError(f"'{system_id}' has no module '{site}'", site=site,
                    fix=did_you_mean(site, known_sites(model), sort=False)
                    + " (any module path of print(model) works too)")


def layer_index(model: nn.Module, path: str) -> int | None:
    """Index of ``path`` among the decoder layers, or None when it is not a whole layer."""
    paths = layer_paths(model)
    return paths.index(path) if path in paths else None


__all__ = ["EMBEDDING", "decoder_layers", "embedding_path", "known_sites", "layer_index",
           "layer_paths", "module_path"]
