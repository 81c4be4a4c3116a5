"""Confidence intervals shared by measures: a seeded stimulus bootstrap and a Wilson interval.

Both return ``(nan, nan)`` when there is no interval to give (too few units, no resamples, no
finite replicate); :class:`simbench.Score` prints that as no interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from simbench.seeds import rng as seeded_rng


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n_units`` resampled units.

    ``statistic`` receives an index array (units drawn with replacement) and returns a float.
    Units are stimuli: time steps of one stimulus are not independent, so they move together.
    The same ``seed`` gives the same interval.
    """
    if n_boot <= 0 or n_units < 2:
        return (math.nan, math.nan)
    rng = seeded_rng(seed, 0xB007)  # the bootstrap's stream
    stats = np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)])
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (math.nan, math.nan)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return (float(lo), float(hi))


#: ``scipy.stats.norm.ppf(0.975)`` to the last bit: the default 95% interval needs no scipy
#: import (about 1 s of a causal score's command)
Z95 = 1.959963984540054


def binomial_ci(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval for an accuracy (e.g. IIA over n held-out interventions)."""
    if n <= 0:
        return (math.nan, math.nan)
    if level == 0.95:
        z = Z95
    else:
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pooled_iia(results: dict, keys: Sequence[tuple[int, int]]
               ) -> tuple[float, tuple[float, float], int]:
    """Mean trial IIA over the directions ``keys`` of an engine's ``evaluate`` results, with a
    Wilson interval on the pooled trials, and the number of trials."""
    hits = sum(results[k]["hits"] for k in keys)
    n = sum(results[k]["n"] for k in keys)
    value = sum(results[k]["trial"] for k in keys) / len(keys)
    return value, binomial_ci(hits, n), n


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of replicate values (non-finite ones dropped); None below two."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return (float(lo), float(hi))


__all__ = ["binomial_ci", "bootstrap_ci", "percentile_interval", "pooled_iia"]
