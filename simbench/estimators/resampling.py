"""Seeded resampling for the correlative measures: row subsamples, bootstrap counts, intervals.

Pure numpy. :func:`rng` (re-exported from :mod:`simbench.seeds`) gives an independent stream
per purpose (the tags below), so changing one parameter never reshuffles an unrelated draw. The
bootstrap is over stimuli: time steps of one stimulus are not independent, so they are
resampled together.
"""

from __future__ import annotations

import math

import numpy as np

from simbench.seeds import rng

# Stream tags for :func:`rng`: one independent random stream per purpose.
SUBSAMPLE, BOOTSTRAP, GROUPS, DRAWS = 0x5B5A, 0xB007, 0x6E0B, 0x25A


def subsample_rows(n: int, max_samples: int, seed: int) -> np.ndarray | None:
    """Sorted indices of ``max_samples`` rows drawn without replacement, or None to keep all."""
    if max_samples <= 0 or n <= max_samples:
        return None
    return np.sort(rng(seed, SUBSAMPLE).choice(n, size=max_samples, replace=False))


def stimulus_groups(
    stimulus: np.ndarray, n_stimuli: int, max_groups: int, seed: int
) -> tuple[np.ndarray, int]:
    """Bootstrap units: each stimulus, or (past ``max_groups``) random equal-sized groups of them.

    Returns ``(group_of_row, n_groups)``. With at most ``max_groups`` stimuli every stimulus is its
    own unit (the exact stimulus bootstrap). Beyond that, stimuli are dealt at random (seeded) into
    ``max_groups`` groups and whole groups are resampled: a bootstrap of i.i.d. group sums, which
    keeps the resampling cost independent of the number of stimuli.
    """
    if n_stimuli <= max_groups:
        return np.asarray(stimulus, dtype=np.int64), n_stimuli
    deal = rng(seed, GROUPS).permutation(n_stimuli) % max_groups
    return deal[np.asarray(stimulus, dtype=np.int64)], max_groups


def bootstrap_counts(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n_units]`` how often each unit is drawn in each bootstrap replicate."""
    gen = rng(seed, BOOTSTRAP)
    out = np.empty((n_boot, n_units), dtype=np.float64)
    for b in range(n_boot):
        out[b] = np.bincount(gen.integers(0, n_units, n_units), minlength=n_units)
    return out


def recentred_interval(
    estimate: float, replicates: np.ndarray, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval shifted so the replicates' median sits on ``estimate``.

    Resampling with replacement duplicates samples, and duplicates inflate estimators such as
    CKA (a duplicated sample aligns perfectly with itself), so the raw percentile interval can
    miss the estimate altogether. The bootstrap is used for the spread only. None when fewer
    than two replicates are finite or the estimate is not.
    """
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or not math.isfinite(estimate):
        return None
    alpha = (1 - level) / 2
    lo, mid, hi = np.quantile(values, [alpha, 0.5, 1 - alpha])
    return (float(estimate + lo - mid), float(estimate + hi - mid))
