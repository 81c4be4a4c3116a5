"""Deprecated: :class:`Rounding` lives in :mod:`simbench.tasks.counting`;
this path works until the next release.
"""

import warnings

from simbench.tasks.counting import Rounding

warnings.warn("simbench.tasks.rounding is deprecated: "
              "use 'from simbench.tasks import Rounding'",
              DeprecationWarning, stacklevel=2)

__all__ = ["Rounding"]
