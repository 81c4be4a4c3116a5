"""Deprecated: :class:`SameObject` lives in :mod:`simbench.tasks.counting`;
this path works until the next release.
"""

import warnings

from simbench.tasks.counting import SameObject

warnings.warn("simbench.tasks.same_object is deprecated: "
              "use 'from simbench.tasks import SameObject'",
              DeprecationWarning, stacklevel=2)

__all__ = ["SameObject"]
