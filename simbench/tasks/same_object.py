"""Same-Object: one token type C serves for both the demo and the response."""

from __future__ import annotations

import numpy as np

from simbench.tasks.base import SAME
from simbench.tasks.counting import CountingTask


class SameObject(CountingTask):
    """``BOS, C x n, T, C x n, EOS``; f(n) = n. The phase is visible only through T."""

    name = "same_object"
    short_name = "same"
    title = "Same-Object"
    description = "n demo tokens C, then n responses C"
    demo_tokens = (SAME,)
    response_token = SAME
    max_len = 43

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        return np.asarray(n, dtype=np.int64)
