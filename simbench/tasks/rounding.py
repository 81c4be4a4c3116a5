"""Rounding: after n demo tokens emit n rounded to the nearest multiple of 3 responses."""

from __future__ import annotations

import numpy as np

from simbench.tasks.base import DEMO, RESP
from simbench.tasks.counting import CountingTask


class Rounding(CountingTask):
    """``BOS, D x n, T, R x round3(n), EOS``; round3(n) = 3 * round(n / 3) (no ties exist:
    n = 5 gives 6, n = 4 gives 3, n = 1 gives 0, n = 20 gives 21)."""

    name = "rounding"
    #: GRUs memorise n -> f(n) per count here and reached only 0.0-0.26 trial accuracy on held-out
    #: counts after 4000 steps, so the zoo trains on every count. (Arithmetic keeps its held-out
    #: starting values: 1 of 4 GRU seeds reached 0.99 on them, the others 0.86-0.96.)
    train_counts = "all"
    title = "Rounding"
    description = "n demo tokens from {D0, D1, D2}, then n rounded to a multiple of 3 responses R"
    demo_tokens = DEMO
    response_token = RESP
    max_len = 44

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        n = np.asarray(n, dtype=np.int64)
        return 3 * ((n + 1) // 3)
