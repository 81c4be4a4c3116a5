"""``transformers`` is an optional dependency: imported only when a language model is used."""

from __future__ import annotations

from types import ModuleType

from simbench.errors import SimbenchError

INSTALL_FIX = "pip install 'simbench[lm]' (transformers and tokenizers)"


def require_transformers() -> ModuleType:
    """The ``transformers`` module, or a :class:`SimbenchError` that says how to install it."""
    try:
        import transformers
    except ImportError as exc:
        raise SimbenchError(f"language models need the transformers library ({exc})",
                            field="transformers", fix=INSTALL_FIX) from None
    return transformers
