"""Multi-Object: see n demo tokens drawn from {D0, D1, D2}, then emit n responses R."""

from __future__ import annotations

import numpy as np

from simbench.tasks.base import DEMO, RESP
from simbench.tasks.counting import CountingTask


class MultiObject(CountingTask):
    """``BOS, D x n, T, R x n, EOS``; demo tokens uniform on {D0, D1, D2}; f(n) = n."""

    name = "multi_object"
    short_name = "multi"
    title = "Multi-Object"
    description = "n demo tokens from {D0, D1, D2}, then n responses R"
    demo_tokens = DEMO
    response_token = RESP
    max_len = 43

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        return np.asarray(n, dtype=np.int64)
