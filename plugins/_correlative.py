"""Machinery shared by the correlative measures (CKA, RSA), written once.

- :func:`paired_activity`: fetch both systems' activity at a site and pair it sample by sample.
- Seeded randomness: :func:`rng` gives an independent stream per purpose (row subsampling,
  bootstrap, RSA draws), so changing one parameter never reshuffles an unrelated draw.
- :func:`stimulus_groups` and :func:`bootstrap_counts`: the bootstrap over stimuli (time steps of
  one stimulus are not independent, so they are resampled together).
- :func:`percentile_interval` and :func:`make_score`: turning replicate values into a ``Score``.

Only numpy and simbench's core are imported here (no torch, no rsatoolbox), so loading the
plugins stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simbench.errors import ParameterError, SimbenchError
from simbench.pairing import Paired, pair_sites
from simbench.result import Score

# Stream tags for :func:`rng`: one independent random stream per purpose.
SUBSAMPLE, BOOTSTRAP, GROUPS, DRAWS = 0x5B5A, 0xB007, 0x6E0B, 0x25A

DTYPES = ("float32", "float64")


def rng(seed: int, purpose: int) -> np.random.Generator:
    """A generator for one purpose, derived from the user's seed (same seed, same stream)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), purpose]))


def paired_activity(
    systems: Sequence[Any],
    site: str,
    *,
    n_stimuli: int | None,
    seed: int,
    intersect: bool,
    dtype: str = "float64",
) -> Paired:
    """Both systems' activity at ``site``, row-aligned on (stimulus id, time step).

    ``n_stimuli`` and ``seed`` tell a network (TorchSystem) how many stimuli to record and which;
    both systems get the same values, so their stimuli match. Recordings ignore them.
    """
    if dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {DTYPES}, got {dtype!r}", field="dtype")
    a, b = systems
    if _both_networks_on_different_tasks(a, b):
        # Networks trained on different tasks see the same inputs: the first system's stimuli
        # (a correlative measure compares responses to identical sequences).
        stim = a.task_def.sample(n_stimuli or 1000, seed, counts="all")
        data = [s.record(stim, sites=[site]).site(site) for s in (a, b)]
    else:
        data = [s.site_data(site, n_stimuli=n_stimuli, seed=seed) for s in (a, b)]
    names = (str(a.system_id), str(b.system_id))
    try:
        return pair_sites(data[0], data[1], intersect=intersect, names=names,
                          dtype=np.dtype(dtype).type)
    except SimbenchError as exc:
        if exc.site is None:  # say where: pair_sites knows the systems, not the site
            exc.site = site
            exc.args = (exc._render(),)
        raise


def _both_networks_on_different_tasks(a: Any, b: Any) -> bool:
    return all(hasattr(s, "record") and hasattr(s, "task_def") for s in (a, b)) and \
        a.task != b.task


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


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of replicate values (non-finite replicates dropped); None if empty."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def recentred_interval(
    estimate: float, replicates: np.ndarray, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval shifted so the replicates' median sits on ``estimate``.

    Resampling with replacement duplicates samples, and duplicates inflate estimators such as
    CKA (a duplicated sample aligns perfectly with itself), so the raw percentile interval can
    miss the estimate altogether. The bootstrap is used for the spread only.
    """
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2 or not math.isfinite(estimate):
        return None
    alpha = (1 - level) / 2
    lo, mid, hi = np.quantile(values, [alpha, 0.5, 1 - alpha])
    return (float(estimate + lo - mid), float(estimate + hi - mid))


def make_score(
    measure: str,
    systems: Sequence[Any],
    site: str,
    *,
    value: float,
    ci: tuple[float, float] | None,
    n_samples: int,
    breakdown: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> Score:
    """Assemble the ``Score`` of a correlative measure."""
    return Score(
        measure=measure,
        value=float(value),
        systems=tuple(str(s.system_id) for s in systems),
        site=site,
        ci=ci,
        n_samples=int(n_samples),
        breakdown=dict(breakdown or {}),
        attrs=dict(attrs or {}),
    )


def torch_device(device: str | None) -> str:
    """The torch device for ``device`` (``auto``: a GPU when torch sees one, else the CPU)."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
