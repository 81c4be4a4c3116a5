"""Deprecated: :class:`MultiObject` lives in :mod:`simbench.tasks.counting`;
this path works until the next release.
"""

import warnings

from simbench.tasks.counting import MultiObject

warnings.warn("simbench.tasks.multi_object is deprecated: "
              "use 'from simbench.tasks import MultiObject'",
              DeprecationWarning, stacklevel=2)

__all__ = ["MultiObject"]
