"""Hugging Face causal language models as accessible systems.

A causal LM saved in a local directory (``save_pretrained`` format: ``config.json``,
safetensors weights, tokenizer files) or a (model, tokenizer) pair from Python becomes an
:class:`~simbench.lm.system.LMSystem`: sites are module paths (``transformer.h.2``,
``model.layers.1``) plus ``embedding``; its task is the behavioural
:class:`~simbench.tasks.continuation.Continuation` (greedy continuations of prompts).

Modules: ``deps`` (``transformers``, imported lazily), ``load`` (a model directory
checked file by file, loaded from disk only), ``sites``, ``text`` (prompts to ids,
greedy continuation), ``system`` (run, patch, record), ``data`` (own continuations,
stepwise interventions), ``runner`` (patched passes with the frozen prefix cached),
``engine`` (stepwise MAS training) and ``measure`` (the scoring entry point).

Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LMSystem", "load_lm"]


def __getattr__(name: str) -> Any:
    if name in ("LMSystem", "load_lm"):
        from simbench.lm import system

        return getattr(system, name)
    raise AttributeError(f"module 'simbench.lm' has no attribute {name!r}")
