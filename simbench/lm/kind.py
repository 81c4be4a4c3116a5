"""Telling a language-model system apart without importing torch (no simbench imports here)."""

from __future__ import annotations


def is_language_model(system: object) -> bool:
    """Whether ``system`` is an :class:`~simbench.lm.system.LMSystem` (its class says so)."""
    return bool(getattr(type(system), "is_language_model", False))


#: the site language models are compared at when none is given (the paper's protocol: only
#: the embedding carries a transformer's behaviour across; see simbench.lm.measure)
LM_SITE = "embedding"


def default_site(systems: object) -> str | None:
    """``embedding`` when every system is a language model, else None (a site is needed)."""
    items = list(systems)  # type: ignore[call-overload]
    return LM_SITE if items and all(is_language_model(s) for s in items) else None


__all__ = ["LM_SITE", "default_site", "is_language_model"]
