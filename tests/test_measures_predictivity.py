"""Ridge predictivity against scikit-learn (Ridge, RidgeCV, KFold) and Brain-Score's protocol."""

from __future__ import annotations

import numpy as np
import pytest
from recording_helpers import save
from scipy.stats import pearsonr

import simbench
from simbench.estimators.predictivity import ALPHAS, RidgeCV, stimulus_folds

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import Ridge as SkRidge  # noqa: E402
from sklearn.linear_model import RidgeCV as SkRidgeCV  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402


def _pair(n: int = 200, seed: int = 0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 10))
    y = x @ r.normal(size=(10, 6)) + 2.0 * r.normal(size=(n, 6)) + 1.0
    return x, y


def _ref(x, y, splits, make):
    """Brain-Score's CrossRegressedCorrelation: per split, per-unit Pearson r of the held-out
    predictions, median over units; mean over splits."""
    scores = []
    for train, test in splits:
        pred = make().fit(x[train], y[train]).predict(x[test])
        scores.append(np.median([pearsonr(pred[:, j], y[test, j])[0]
                                 for j in range(y.shape[1])]))
    return float(np.mean(scores))


def _folds_of(splits, n):
    folds = np.empty(n, dtype=int)
    for f, (_, test) in enumerate(splits):
        folds[test] = f
    return folds


@pytest.mark.parametrize("alpha", [1.0, 100.0])
def test_fixed_alpha_matches_sklearn_ridge_over_kfold(alpha):
    x, y = _pair()
    splits = list(KFold(5, shuffle=True, random_state=0).split(x))
    got = RidgeCV(x, _folds_of(splits, len(x)), alpha).score(y)
    assert got == pytest.approx(_ref(x, y, splits, lambda: SkRidge(alpha=alpha)), abs=1e-6)


def test_alpha_zero_matches_sklearn_ridgecv():
    x, y = _pair(n=120, seed=1)
    splits = list(KFold(4, shuffle=True, random_state=1).split(x))
    model = RidgeCV(x, _folds_of(splits, len(x)), 0.0)
    got = model.score(y)
    ref = _ref(x, y, splits, lambda: SkRidgeCV(alphas=ALPHAS))
    assert got == pytest.approx(ref, abs=1e-6)
    chosen = [SkRidgeCV(alphas=ALPHAS).fit(x[tr], y[tr]).alpha_ for tr, _ in splits]
    assert model.chosen == pytest.approx(chosen)


def test_folds_split_by_stimulus():
    stim = np.repeat(np.arange(23), 4)
    folds = stimulus_folds(stim, 5, seed=3)
    for s in range(23):
        assert len(set(folds[stim == s])) == 1  # a stimulus never straddles folds
    assert sorted(np.bincount(folds[::4])) == [4, 4, 5, 5, 5]
    with pytest.raises(Exception, match="needs at least 30 stimuli"):
        stimulus_folds(stim, 30, seed=0)


def test_scores_from_netcdf_with_interval_and_null(tmp_path):
    r = np.random.default_rng(2)
    a = r.normal(size=(60, 3, 8))
    b = a @ r.normal(size=(8, 5)) + r.normal(size=(60, 3, 5))
    pa, pb = save(tmp_path / "a.nc", "A", a), save(tmp_path / "b.nc", "B", b)
    s = simbench.score("ridge", str(pa), str(pb), site="hidden", null=20, n_boot=50)
    stim = np.repeat(np.arange(60), 3)
    folds = stimulus_folds(stim, 5, seed=0)
    splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(5)]
    ref = _ref(a.reshape(-1, 8), b.reshape(-1, 5), splits, lambda: SkRidge(alpha=1.0))
    assert s.value == pytest.approx(ref, abs=1e-6)
    assert s.ci is not None and s.ci[0] <= s.value <= s.ci[1]
    assert s.p_value < 0.06 and s.null_mean < 0.3 < s.value
    back = simbench.score("ridge", str(pb), str(pa), site="hidden", n_boot=0)
    assert back.value != pytest.approx(s.value, abs=1e-3)  # asymmetric: 5 units predict 8


def test_bootstrap_from_per_stimulus_sums_equals_weighted_pearson():
    from simbench_plugins._paired import bootstrap_rows
    from simbench_plugins.predictivity import Ridge

    from simbench.estimators.predictivity import median_r

    x, y = _pair(n=300, seed=5)
    stim = np.repeat(np.arange(60), 5)
    params = {"n_boot": 6, "n_folds": 5, "alpha": 1.0}
    fast, _ = Ridge().replicates(x, y, stim, params, 0, None)
    folds = RidgeCV(x, stimulus_folds(stim, 5, 0), 1.0).unit_scores(y)
    slow = []
    for idx in bootstrap_rows(stim, 6, 0):
        w = np.bincount(idx, minlength=300).astype(float)
        slow.append(np.mean([median_r(p, t, w[rows]) for p, t, rows in folds]))
    np.testing.assert_allclose(fast, slow, atol=1e-9)
