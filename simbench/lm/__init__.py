"""Hugging Face causal language models as accessible systems.

A causal LM saved in a local directory (``save_pretrained`` format: ``config.json``,
safetensors weights, tokenizer files) or a (model, tokenizer) pair from Python becomes an
:class:`~simbench.lm.system.LMSystem`: sites are module paths (``transformer.h.2``,
``model.layers.1``) plus ``embedding``; its task is the behavioural
:class:`~simbench.tasks.continuation.Continuation` (greedy continuations of prompts).

- :mod:`~simbench.lm.deps`: importing ``transformers`` lazily, with the fix when it is missing.
- :mod:`~simbench.lm.load`: a model directory checked file by file, then loaded from disk only.
- :mod:`~simbench.lm.sites`: module paths, ``embedding``, the decoder layers, site widths.
- :mod:`~simbench.lm.text`: prompts to token ids (context checked), greedy continuation.
- :mod:`~simbench.lm.system`: the system (run, patch, record).
- :mod:`~simbench.lm.data`: each model's own continuations and stepwise intervention sets.
- :mod:`~simbench.lm.runner`: patched passes, with the frozen prefix cached (layers below the
  site never rerun) or by hooks on the full model (the baseline).
- :mod:`~simbench.lm.engine`: stepwise MAS training and IIA between language models.
- :mod:`~simbench.lm.measure`: the measure parameters and the scoring entry point.

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
