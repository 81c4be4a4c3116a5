"""The ``ridge`` measure: cross-validated ridge neural predictivity (Brain-Score style).

Numbers from :mod:`simbench.estimators.predictivity`. The first system predicts the second
(asymmetric: score both orders for both directions). The interval resamples whole stimuli over
the held-out predictions (the fitted maps are kept), so it is the spread due to which stimuli
were tested; a permutation null re-pairs whole stimuli and refits every fold (each fold's
decomposition of the source is reused).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from simbench_plugins._paired import PairedRowMeasure, Statistic, bootstrap_draws, common_params

from simbench import hookimpl
from simbench.estimators.predictivity import RidgeCV, stimulus_folds
from simbench.measure import Param

CITATION = ("Yamins, Hong, Cadieu, Solomon, Seibert & DiCarlo (2014). Performance-optimized "
            "hierarchical models predict neural responses in higher visual cortex. PNAS; "
            "Schrimpf et al. (2018). Brain-Score. bioRxiv 407007.")


class Ridge(PairedRowMeasure):
    """Ridge neural predictivity: how well the first system's units linearly predict each unit
    of the second on held-out stimuli."""

    name = "ridge"
    symmetric = False
    higher_is_better = True
    range = (-1.0, 1.0)
    citation = CITATION
    description = ("Ridge neural predictivity: ridge regression from system 1's units to each "
                   "unit of system 2, cross-validated over folds of stimuli; per fold the "
                   "median over units of the held-out Pearson r, averaged over folds.")
    params = (Param("alpha", 1.0, "ridge penalty (sklearn's alpha, lambda in the community ids); "
                    "0 = choose per training fold by leave-one-out over 1e-3..1e5 (RidgeCV)",
                    low=0.0),
              Param("n_folds", 5, "cross-validation folds, split by stimulus", low=2),
              *common_params())

    def statistic(self, params: dict[str, Any], seed: int, stimulus: Any) -> Statistic:
        folds = stimulus_folds(stimulus, params["n_folds"], seed)
        cache: dict[int, RidgeCV] = {}

        def stat(x: np.ndarray, y: np.ndarray) -> float:
            # the null re-pairs y only: the source's fold decompositions are built once
            model = cache.get(id(x))
            if model is None:
                cache.clear()
                model = cache[id(x)] = RidgeCV(x, folds, params["alpha"])
            value = model.score(y)
            stat.model = model  # type: ignore[attr-defined]  # reused by the bootstrap
            if params["alpha"] == 0 and not hasattr(stat, "info"):  # the unpermuted fit
                stat.info = {"alphas_chosen": list(model.chosen)}  # type: ignore[attr-defined]
            return value

        return stat

    def attrs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"alpha": params["alpha"], "n_folds": params["n_folds"],
                "direction": "system 1 predicts system 2"}

    def replicates(self, x: np.ndarray, y: np.ndarray, stimulus: np.ndarray,
                   params: dict[str, Any], seed: int, stat: Statistic) -> tuple[np.ndarray, str]:
        stim = np.unique(stimulus, return_inverse=True)[1].ravel()
        n_stim = int(stim.max()) + 1
        model = getattr(stat, "model", None)
        if model is None:
            model = RidgeCV(x, stimulus_folds(stimulus, params["n_folds"], seed), params["alpha"])
        # per fold and stimulus: the sums a Pearson r needs (rows, p, t, p^2, t^2, p t per unit)
        sums = []
        for p, t, rows in model.unit_scores(y):
            s = stim[rows]
            parts = [np.ones_like(p), p, t, p * p, t * t, p * t]
            sums.append(np.stack([np.stack([np.bincount(s, weights=col, minlength=n_stim)
                                            for col in part.T], axis=1) for part in parts]))
        reps = []
        for drawn in bootstrap_draws(stimulus, params["n_boot"], seed):
            c = np.bincount(drawn, minlength=n_stim).astype(np.float64)
            per_fold = []
            for fold in sums:
                n, sp, st, spp, stt, spt = np.tensordot(c, fold, axes=(0, 1))
                n = n[0]
                if n < 2:
                    continue
                cov, vp, vt = spt - sp * st / n, spp - sp * sp / n, stt - st * st / n
                ok = (vp > 1e-12 * np.maximum(spp, 1e-300)) & (vt > 1e-12 * np.maximum(stt, 1e-300))
                r = cov[ok] / np.sqrt(vp[ok] * vt[ok])
                if r.size:
                    per_fold.append(float(np.median(r)))
            reps.append(float(np.mean(per_fold)) if per_fold else np.nan)
        return np.array(reps), ("whole stimuli resampled over the held-out predictions, the "
                                "fitted maps kept")


@hookimpl
def simbench_measures() -> list[Any]:
    """Register ``ridge``."""
    return [Ridge()]
