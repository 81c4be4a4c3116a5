"""Telling a language-model system apart without importing torch (no simbench imports here)."""

from __future__ import annotations


def is_language_model(system: object) -> bool:
    """Whether ``system`` is an :class:`~simbench.lm.system.LMSystem` (its class says so)."""
    return bool(getattr(type(system), "is_language_model", False))


__all__ = ["is_language_model"]
