"""Deprecated: :class:`Modulo` lives in :mod:`simbench.tasks.counting`;
this path works until the next release.
"""

import warnings

from simbench.tasks.counting import Modulo

warnings.warn("simbench.tasks.modulo is deprecated: "
              "use 'from simbench.tasks import Modulo'",
              DeprecationWarning, stacklevel=2)

__all__ = ["Modulo"]
