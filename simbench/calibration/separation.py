"""Separability: how well a measure's scores tell pairs that should match from pairs that should not.

Given a measure's scores on "same" pairs (e.g. two seeds of one architecture on one task) and on
"different" pairs (networks trained on different tasks), two summaries of how far apart the two
score distributions lie:

- ROC-AUC: the probability that a random same pair scores as more similar than a random
  different pair (ties count one half); the Mann-Whitney U statistic divided by n_same
  n_different. 0.5 is chance, 1 perfect separation.
- d': the difference of the means in units of the two groups' pooled standard deviation,
  (mean_same - mean_different) / sqrt((var_same + var_different) / 2).

Both are oriented by the measure's ``higher_is_better``: for a distance (lower is more similar)
the scores are negated first, so a measure that separates well has AUC near 1 and positive d'
either way. Intervals are percentile bootstraps resampling each group with replacement (seeded).
Pairs that share a network are not independent samples, so these intervals are optimistic when
many pairs share networks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simbench.errors import ParameterError
from simbench.seeds import rng
from simbench.stats import percentile_interval

#: random stream tag of the separability bootstrap
SEPARABILITY_STREAM = 0x5E9
#: above this many (same, different) comparisons the bootstrap ranks each replicate instead of
#: reusing one comparison matrix
MAX_COMPARISONS = 4_000_000


@dataclasses.dataclass(frozen=True)
class Separability:
    """ROC-AUC and d' of same versus different pairs, with bootstrap intervals."""

    auc: float
    auc_ci: tuple[float, float] | None
    d_prime: float
    d_prime_ci: tuple[float, float] | None
    n_same: int
    n_different: int
    higher_is_better: bool
    method: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (intervals as two-element lists or None)."""
        out = dataclasses.asdict(self)
        for key in ("auc_ci", "d_prime_ci"):
            out[key] = None if out[key] is None else list(out[key])
        return out


def separability(
    same: Any,
    different: Any,
    *,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Separability:
    """ROC-AUC (Mann-Whitney) and d' of ``same``-pair scores against ``different``-pair scores.

    ``higher_is_better`` is the measure's orientation (False for distances). ``n_boot`` = 0 gives
    no intervals. Scores must be finite; each group needs at least one score (two for d').
    """
    s = _scores(same, "same")
    d = _scores(different, "different")
    if not 0 < level < 1:
        raise ParameterError(f"level must lie in (0, 1), got {level}", field="level")
    if n_boot < 0:
        raise ParameterError(f"n_boot must be >= 0, got {n_boot}", field="n_boot")
    sign = 1.0 if higher_is_better else -1.0
    s, d = sign * s, sign * d
    auc = _auc(s, d)
    dp = _d_prime(s[None, :], d[None, :], np.ones((1, len(s))), np.ones((1, len(d))))[0]
    auc_ci = dp_ci = None
    if n_boot > 0:
        gen = rng(seed, SEPARABILITY_STREAM)
        ws = _counts(gen, len(s), n_boot)
        wd = _counts(gen, len(d), n_boot)
        if len(s) * len(d) <= MAX_COMPARISONS:
            comp = (s[:, None] > d[None, :]) + 0.5 * (s[:, None] == d[None, :])
            reps = np.einsum("bi,ij,bj->b", ws, comp, wd) / (len(s) * len(d))
        else:
            reps = np.array([_auc(np.repeat(s, a.astype(int)), np.repeat(d, b.astype(int)))
                             for a, b in zip(ws, wd)])
        auc_ci = percentile_interval(reps, level)
        dp_ci = percentile_interval(_d_prime(s[None, :], d[None, :], ws, wd), level)
    orient = "higher" if higher_is_better else "lower"
    method = (f"ROC-AUC (Mann-Whitney U / n_same n_different, ties count 1/2) and d' (pooled "
              f"sd) of {len(s)} same against {len(d)} different pairs, {orient} scores = more "
              "similar; "
              + (f"{level:.0%} percentile bootstrap, {n_boot} resamples of each group (seed "
                 f"{seed})" if n_boot else "no interval"))
    return Separability(auc, auc_ci, float(dp), dp_ci, len(s), len(d), higher_is_better, method)


def _scores(values: Any, which: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ParameterError(f"no scores for {which} pairs", field=which,
                             fix=f"score at least one {which} pair")
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{which}-pair scores contain NaN or infinity", field=which,
                             fix="drop the pairs whose score is undefined")
    return arr


def _auc(s: np.ndarray, d: np.ndarray) -> float:
    """Mann-Whitney AUC through midranks: O((n_s + n_d) log(n_s + n_d))."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([s, d]))
    u = ranks[: len(s)].sum() - len(s) * (len(s) + 1) / 2
    return float(u / (len(s) * len(d)))


def _d_prime(s: np.ndarray, d: np.ndarray, ws: np.ndarray, wd: np.ndarray) -> np.ndarray:
    """d' per weighting (rows of ``ws``, ``wd``: how often each score is drawn)."""
    def moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = w.sum(1)
        mean = (w * x).sum(1) / n
        var = (w * (x - mean[:, None]) ** 2).sum(1) / np.maximum(n - 1, 1)
        return mean, var

    ms, vs = moments(s, ws)
    md, vd = moments(d, wd)
    sd = np.sqrt((vs + vd) / 2)
    diff = ms - md
    with np.errstate(divide="ignore", invalid="ignore"):
        out = diff / sd
    # no spread at all: infinitely separated if the means differ, undefined if not
    flat = sd == 0
    out[flat] = np.where(diff[flat] == 0, np.nan, np.sign(diff[flat]) * np.inf)
    if ws.shape[1] < 2 and wd.shape[1] < 2:
        out[:] = np.nan  # one score per group: no spread to measure
    return out


def _counts(gen: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """[n_boot, n] how often each score is drawn per resample."""
    draws = gen.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def format_separability(results: Mapping[str, Separability]) -> str:
    """A text table, one row per measure: AUC and d' with their intervals and group sizes."""
    def ci(v: tuple[float, float] | None) -> str:
        return "" if v is None else f"[{v[0]:.2f}, {v[1]:.2f}]"

    head = ["measure", "AUC", "95% CI", "d'", "95% CI", "same", "different"]
    body = [[name, f"{r.auc:.3f}", ci(r.auc_ci), f"{r.d_prime:.2f}", ci(r.d_prime_ci),
             str(r.n_same), str(r.n_different)] for name, r in results.items()]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [head, *body])


def plot_separability(results: Mapping[str, Separability], path: str | Path) -> Path:
    """AUC and d' per measure with their intervals, side by side, saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    pos = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(4 + 0.9 * len(names), 3.2), layout="constrained")
    for ax, value, interval, label, chance in (
            (axes[0], "auc", "auc_ci", "ROC-AUC (same vs different)", 0.5),
            (axes[1], "d_prime", "d_prime_ci", "d'", 0.0)):
        vals = np.array([getattr(results[n], value) for n in names], dtype=float)
        cis = [getattr(results[n], interval) for n in names]
        lo = np.array([v - c[0] if c else 0.0 for v, c in zip(vals, cis)])
        hi = np.array([c[1] - v if c else 0.0 for v, c in zip(vals, cis)])
        shown = np.where(np.isfinite(vals), vals, np.nan)
        ax.errorbar(pos, shown, yerr=np.vstack([lo, hi]), fmt="o", capsize=3)
        ax.axhline(chance, color="0.6", lw=0.8, ls="--")
        ax.set_xticks(pos, names, rotation=30, ha="right")
        ax.set_ylabel(label)
    axes[0].set_ylim(0, 1.02)
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def expected_auc_normal(shift: float, sd_same: float = 1.0, sd_different: float = 1.0) -> float:
    """AUC of two normal distributions whose means differ by ``shift``: Phi(shift / sqrt(sum of
    variances)). The reference for checking :func:`separability` on synthetic data."""
    z = shift / math.sqrt(sd_same**2 + sd_different**2)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


__all__ = ["Separability", "expected_auc_normal", "format_separability", "plot_separability",
           "separability"]
