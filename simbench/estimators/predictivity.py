"""Ridge neural predictivity (Yamins et al. 2014; Brain-Score's regression metric). Pure numpy.

One system's units (X, the source) predict each unit of the other (Y, the target) by ridge
regression with an unpenalised intercept, cross-validated with the folds split by stimulus
(every row of a stimulus falls in one fold, so no stimulus is both trained on and tested on).
On each fold the Pearson r of every target unit's held-out prediction with its activity is
computed; the fold's score is the median over units, and the value is the mean over folds, as
in Brain-Score's CrossRegressedCorrelation. Target units with no variance on a test fold have
no r and are left out of that fold's median.

The ridge penalty is ``alpha`` (sklearn's name; the community ids call it lambda) on
||W||_F^2 for the summed squared error. ``alpha = 0`` chooses it per training fold from
:data:`ALPHAS` by efficient leave-one-out (the generalised cross-validation of sklearn's
``RidgeCV``: one alpha for every target, the one with the least mean squared leave-one-out
error; the rows left out one at a time are samples, so the time steps of one stimulus are
not held out together there, as in RidgeCV). Each training fold is decomposed once (SVD of its centred X), so every alpha and every
re-pairing of Y (a permutation null) costs only matrix products.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simbench.estimators.cka import EstimatorError
from simbench.estimators.resampling import rng

#: Alphas searched when ``alpha = 0`` (log-spaced, as in Brain-Score's RidgeCV settings).
ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 9))
#: Stream tag of the fold assignment (see :func:`simbench.estimators.resampling.rng`).
FOLDS = 0xF01D


def stimulus_folds(stimulus: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index of every row: stimuli dealt at random (seeded) into ``n_folds`` folds of
    sizes differing by at most one, every row of a stimulus in its stimulus's fold."""
    stim = np.unique(np.asarray(stimulus), return_inverse=True)[1].ravel()
    n_stim = int(stim.max()) + 1 if stim.size else 0
    if not 2 <= n_folds <= n_stim:
        raise EstimatorError(f"{n_folds}-fold cross-validation needs at least {n_folds} "
                             f"stimuli, got {n_stim}", field="n_folds",
                             fix="record more stimuli, or pass a smaller --n_folds (2 or more)")
    deal = np.empty(n_stim, dtype=np.int64)
    deal[rng(seed, FOLDS).permutation(n_stim)] = np.arange(n_stim) % n_folds
    return deal[stim]


@dataclasses.dataclass
class _Fold:
    """One training fold's decomposition and its test rows."""

    train: np.ndarray
    test: np.ndarray
    u: np.ndarray  # [n_train, r] left singular vectors of the centred training X
    s: np.ndarray  # [r]
    vt: np.ndarray  # [r, dx]
    x_test: np.ndarray  # centred with the training mean


class RidgeCV:
    """Cross-validated ridge from ``x`` to any target ``y`` with the same rows.

    Build once per source (and folds); :meth:`fold_scores` then scores a target, so a
    permutation null re-pairs ``y`` without decomposing ``x`` again.
    """

    def __init__(self, x: np.ndarray, folds: np.ndarray, alpha: float = 1.0,
                 alphas: tuple[float, ...] = ALPHAS) -> None:
        x = np.asarray(x, dtype=np.float64)
        folds = np.asarray(folds)
        self.alpha, self.alphas = float(alpha), tuple(alphas)
        if self.alpha < 0:
            raise EstimatorError(f"alpha must be >= 0, got {alpha}", field="alpha",
                                 fix="a penalty such as 1, or 0 to choose by leave-one-out")
        self.folds: list[_Fold] = []
        for f in np.unique(folds):
            test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
            if len(train) < 2 or len(test) < 2:
                raise EstimatorError(f"fold {f} has {len(train)} training and {len(test)} test "
                                     "rows; each needs at least 2", field="n_folds",
                                     fix="use fewer folds or record more stimuli")
            mean = x[train].mean(axis=0)
            u, s, vt = np.linalg.svd(x[train] - mean, full_matrices=False)
            live = s > (s[0] if s.size else 0) * max(x.shape) * np.finfo(np.float64).eps
            self.folds.append(_Fold(train, test, u[:, live], s[live], vt[live], x[test] - mean))
        self.chosen: list[float] = []

    def _alpha_for(self, fold: _Fold, yc: np.ndarray) -> float:
        """The penalty of ``fold``: fixed, or RidgeCV's leave-one-out choice on its rows."""
        if self.alpha > 0:
            return self.alpha
        n = len(fold.train)
        uy = fold.u.T @ yc  # [r, dy]
        best, best_err = self.alphas[0], np.inf
        for a in self.alphas:
            shrink = fold.s ** 2 / (fold.s ** 2 + a)
            resid = yc - fold.u @ (shrink[:, None] * uy)
            hat = np.einsum("ij,ij,j->i", fold.u, fold.u, shrink) + 1.0 / n
            err = float(np.mean((resid / (1.0 - hat)[:, None]) ** 2))
            if err < best_err:
                best, best_err = a, err
        return best

    def predictions(self, fold: _Fold, y: np.ndarray) -> np.ndarray:
        """Held-out predictions of ``y`` on ``fold``'s test rows."""
        ytr = y[fold.train]
        y_mean = ytr.mean(axis=0)
        yc = ytr - y_mean
        a = self._alpha_for(fold, yc)
        self.chosen.append(a)
        coef = fold.vt.T @ ((fold.s / (fold.s ** 2 + a))[:, None] * (fold.u.T @ yc))
        return fold.x_test @ coef + y_mean

    def unit_scores(self, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per fold: (held-out predictions, held-out activity, test rows) of every unit."""
        y = np.asarray(y, dtype=np.float64)
        self.chosen = []
        return [(self.predictions(f, y), y[f.test], f.test) for f in self.folds]

    def fold_scores(self, y: np.ndarray) -> np.ndarray:
        """The median-over-units Pearson r of each fold."""
        return np.array([median_r(p, t) for p, t, _ in self.unit_scores(y)])

    def score(self, y: np.ndarray) -> float:
        """Mean over folds of the median over units of the held-out Pearson r."""
        return float(np.mean(self.fold_scores(y)))


def pearson_columns(p: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Pearson r of each column of ``p`` with the same column of ``t`` (row weights ``w``);
    nan where either column does not vary."""
    if w is None:
        w = np.ones(p.shape[0])
    total = w.sum()
    pc = p - (w @ p) / total
    tc = t - (w @ t) / total
    cov = w @ (pc * tc)
    var = (w @ (pc * pc)) * (w @ (tc * tc))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.nan)


def median_r(p: np.ndarray, t: np.ndarray, w: np.ndarray | None = None) -> float:
    """Median over units of :func:`pearson_columns` (units without an r left out)."""
    r = pearson_columns(p, t, w)
    r = r[np.isfinite(r)]
    return float(np.median(r)) if r.size else float("nan")


__all__ = ["ALPHAS", "RidgeCV", "median_r", "pearson_columns", "stimulus_folds"]
