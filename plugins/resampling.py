"""Deprecated: moved to :mod:`simbench.estimators.resampling`; this path works until the next release."""

from __future__ import annotations

import warnings
from typing import Any

warnings.warn("simbench_plugins.resampling is deprecated: import simbench.estimators.resampling instead",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    from simbench.estimators import resampling

    return getattr(resampling, name)
