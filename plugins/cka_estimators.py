"""Deprecated: moved to :mod:`simbench.estimators.cka`; this path works until the next release."""

from __future__ import annotations

import warnings
from typing import Any

warnings.warn("simbench_plugins.cka_estimators is deprecated: import simbench.estimators.cka instead",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    from simbench.estimators import cka

    return getattr(cka, name)
