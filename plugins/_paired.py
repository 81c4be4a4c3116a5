"""What the correlative measures over paired rows share: pairing, bootstrap, null, Score.

A :class:`PairedRowMeasure` computes one number from the two systems' row-aligned activity
(``statistic(x, y)``). This base pairs the activity (padding dropped, stimuli matched), loads
it (refused with the size when it does not fit in memory), optionally subsamples rows
(``max_samples``), computes the value, a 95% bootstrap interval over stimuli (whole stimuli
resampled, recentred on the estimate like CKA's since duplicated samples bias these
estimators) and, with ``null`` > 0, a permutation null re-pairing whole stimuli. Subclasses
set the metadata and :meth:`statistic`; they may override :meth:`replicates`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simbench.calibration.scoring import null_param, with_null
from simbench.errors import ParameterError
from simbench.estimators.correlative import (
    PAIRING_PARAMS,
    CorrelativeMeasure,
    estimator_errors,
    interval_attrs,
    make_score,
    memory_budget,
    paired_activity,
    undefined_activity,
)
from simbench.estimators.moments import STIMULUS_MOMENTS_BYTES, Moments, StimulusMoments, moments
from simbench.estimators.resampling import BOOTSTRAP, recentred_interval, rng, subsample_rows
from simbench.measure import Param

if TYPE_CHECKING:
    from simbench.result import Score
    from simbench.systems import System

Statistic = Callable[[np.ndarray, np.ndarray], float]


def boot_param(default: int = 200, over: str = "stimuli") -> Param:
    """The ``n_boot`` parameter (replicates resample ``over``)."""
    return Param("n_boot", default, f"bootstrap replicates over {over} for the 95% interval "
                 "(0 = none)", low=0)


def max_samples_param(default: int) -> Param:
    """The ``max_samples`` parameter of measures whose cost grows faster than the rows."""
    return Param("max_samples", default, "at most this many samples (rows), a seeded subsample "
                 "(0 = all); time and memory grow as its square", low=0)


def common_params(n_boot: int = 200) -> tuple[Param, ...]:
    """``n_boot``, the pairing parameters and ``null``."""
    return (boot_param(n_boot), *PAIRING_PARAMS,
            null_param("permutations of whole stimuli between the two systems (each recomputes "
                       "the measure)"))


def bootstrap_draws(stimulus: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """The stimuli (numbered 0..s-1 in sorted order of ``stimulus``) drawn with replacement
    in each of ``n_boot`` bootstrap replicates."""
    n = len(np.unique(stimulus))
    gen = rng(seed, BOOTSTRAP)
    return [gen.integers(0, n, n) for _ in range(n_boot)]


def bootstrap_rows(stimulus: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_boot`` bootstrap replicates, whole stimuli drawn with replacement."""
    stim = np.unique(stimulus, return_inverse=True)[1].ravel()
    order = np.argsort(stim, kind="stable")  # the rows of each stimulus, in order
    rows = np.split(order, np.searchsorted(stim[order], np.arange(1, int(stim.max()) + 1)))
    return [np.concatenate([rows[i] for i in drawn])
            for drawn in bootstrap_draws(stimulus, n_boot, seed)]


def estimated(site: str, compute: Callable[[], float]) -> float:
    """``compute()``; its EstimatorErrors become SimbenchErrors naming the site."""
    with estimator_errors(site):
        return float(compute())


class PairedRowMeasure(CorrelativeMeasure):
    """Base of the correlative measures computed from two systems' paired rows."""

    #: extra bytes per pair of rows (n^2 work arrays) the statistic holds, for the memory check
    square_bytes: int = 0

    def statistic(self, params: dict[str, Any], seed: int, stimulus: np.ndarray) -> Statistic:
        """The function (x, y) -> value this measure computes with ``params`` on rows whose
        stimuli are ``stimulus`` (the rows of the estimate; a null re-pairs y only); by
        default :meth:`moment_statistic` of the rows' second moments."""
        of = self.moment_statistic(params)
        if of is None:  # pragma: no cover
            raise NotImplementedError
        return lambda x, y: of(moments(x, y))

    def attrs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Measure-specific ``attrs`` of the Score (its settings)."""
        return {}

    def moment_statistic(self, params: dict[str, Any]) -> Callable[[Moments], float] | None:
        """The statistic as a function of the paired activity's second moments, when it is one
        (shape metrics, CCA, soft matching): replicates are then weighted sums of per-stimulus
        moments instead of passes over every row."""
        return None

    def replicates(self, x: np.ndarray, y: np.ndarray, stimulus: np.ndarray,
                   params: dict[str, Any], seed: int, stat: Statistic) -> tuple[np.ndarray, str]:
        """(bootstrap replicate values, how they were drawn): from per-stimulus moments when
        the statistic is a function of them (and they fit), else the statistic recomputed on
        every replicate's rows."""
        of = self.moment_statistic(params)
        n_stim = len(np.unique(stimulus))
        # per-stimulus moments pay when stimuli have several rows (time steps); with one row
        # per stimulus they are the rows' own products, no cheaper than the rows
        if of is not None and 2 * n_stim <= len(x) and StimulusMoments.nbytes(
                n_stim, x.shape[1], y.shape[1]) <= STIMULUS_MOMENTS_BYTES:
            per = StimulusMoments(x, y, stimulus)
            reps = np.array([of(per.resampled(np.bincount(d, minlength=n_stim)))
                             for d in bootstrap_draws(stimulus, params["n_boot"], seed)])
            return reps, "whole stimuli resampled, the measure recomputed from their moments"
        reps = np.array([stat(x[i], y[i]) for i in bootstrap_rows(stimulus, params["n_boot"],
                                                                    seed)])
        return reps, "whole stimuli resampled, the measure recomputed on each replicate"

    def null_statistic(self, x: np.ndarray, y: np.ndarray, params: dict[str, Any]
                       ) -> Callable[[np.ndarray], float] | None:
        """A faster statistic of a row map m (row i of x paired with row m[i] of y) for the
        permutation null, or None to recompute :meth:`statistic` on (x, y[m])."""
        return None

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """The value, its bootstrap interval over stimuli and (``null`` > 0) its permutation
        null; the work runs on the CPU in float64."""
        pair = paired_activity(systems, site, n_stimuli=params["n_stimuli"], seed=seed,
                               intersect=params["intersect"], lazy=False)
        x = np.asarray(pair.x, dtype=np.float64)
        y = np.asarray(pair.y, dtype=np.float64)
        stim, time = pair.stimulus, pair.time
        keep = subsample_rows(len(x), params.get("max_samples", 0), seed)
        if keep is not None:
            x, y, stim = x[keep], y[keep], stim[keep]
            time = None if time is None else time[keep]
        if self.square_bytes:
            budget = memory_budget(self.square_bytes * len(x) ** 2, 0)
            if budget.over:
                raise ParameterError(
                    f"{self.name}: {len(x):,} samples need {budget.reason('its [n, n] arrays')}",
                    field="max_samples", site=site,
                    fix="pass a smaller --max_samples (e.g. 2000)")
        stat = self.statistic(params, seed, stim)
        value = estimated(site, lambda: stat(x, y))
        if not math.isfinite(value):
            raise undefined_activity(self.name, systems, site, "too few samples")
        attrs: dict[str, Any] = {**self.attrs(params), "n_rows": len(x),
                                 "n_stimuli": len(np.unique(stim)), "device": "cpu",
                                 **getattr(stat, "info", {})}
        if keep is not None:
            attrs["subsampled"] = f"{len(x):,} of {len(pair.x):,} rows (max_samples, seeded)"
        ci = None
        if params["n_boot"] > 0 and attrs["n_stimuli"] >= 2:
            reps, how = self.replicates(x, y, stim, params, seed, stat)
            ci = recentred_interval(value, reps)
            finite = int(np.isfinite(reps).sum())
        else:
            finite, how = 0, ""
        attrs.update(interval_attrs(
            ci, f"95% percentile bootstrap over stimuli ({finite} replicates; {how}), "
            "recentred on the estimate",
            n_boot=params["n_boot"], n_units=attrs["n_stimuli"], n_finite=finite))
        score = make_score(self.name, systems, site, value=value, ci=ci, n_samples=len(x),
                           attrs=attrs)
        if params["null"] > 0:
            from simbench.calibration import permutation_null

            fast = self.null_statistic(x, y, params)
            if fast is not None:  # the permuted "activity" is the row map itself
                x = y = np.arange(len(x))[:, None]

            def safe(a: np.ndarray, b: np.ndarray) -> float:
                return estimated(site, lambda: stat(a, b) if fast is None else fast(b[:, 0]))

            null = permutation_null(safe, x, y, stimulus=stim, time=time,
                                    n_perm=params["null"], seed=seed, observed=value,
                                    alternative="greater" if self.higher_is_better else "less")
            score = with_null(score, null)
        return score


__all__ = ["PairedRowMeasure", "Statistic", "boot_param", "bootstrap_draws", "bootstrap_rows",
           "common_params", "estimated", "max_samples_param"]
