"""SVCCA and PWCCA against references from the papers' formulas (covariance eigenproblems)."""

from __future__ import annotations

import numpy as np
import pytest
from recording_helpers import save

import simbench
from simbench.estimators.cca import canonical_correlations, pwcca, svcca


def _pair(n: int = 300, d: int = 8, seed: int = 0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, d)) @ np.diag(np.linspace(3, 0.2, d))
    y = x @ r.normal(size=(d, d)) + r.normal(size=(n, d))
    return x, y


def _ref_cca(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hotelling: rho^2 are the eigenvalues of Cxx^-1 Cxy Cyy^-1 Cyx; its eigenvectors are
    the canonical weights of X (descending)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    cxx, cyy, cxy = xc.T @ xc, yc.T @ yc, xc.T @ yc
    m = np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)
    val, vec = np.linalg.eig(m)
    order = np.argsort(-val.real)
    return np.sqrt(np.clip(val.real[order], 0, 1)), vec.real[:, order]


def _ref_svd_reduce(t: np.ndarray, var: float) -> np.ndarray:
    """Raghu et al.: the top principal components explaining ``var`` of the variance."""
    tc = t - t.mean(0)
    u, s, _ = np.linalg.svd(tc, full_matrices=False)
    k = int(np.argmax(np.cumsum(s**2) / np.sum(s**2) >= var - 1e-12)) + 1
    return u[:, :k] * s[:k]


@pytest.mark.parametrize("var", [1.0, 0.99, 0.9])
def test_svcca_matches_reference(var):
    x, y = _pair()
    rx, ry = _ref_svd_reduce(x, var), _ref_svd_reduce(y, var)
    rho, _ = _ref_cca(rx, ry) if rx.shape[1] <= ry.shape[1] else _ref_cca(ry, rx)
    assert svcca(x, y, var) == pytest.approx(rho.mean(), abs=1e-6)


def test_pwcca_matches_reference():
    x, y = _pair(seed=1)
    rho, a = _ref_cca(x, y)
    xc = x - x.mean(0)
    h = xc @ a
    h /= np.linalg.norm(h, axis=0)
    alpha = np.abs(h.T @ xc).sum(axis=1)
    assert pwcca(x, y) == pytest.approx(float(alpha @ rho / alpha.sum()), abs=1e-6)
    assert pwcca(x, y) != pytest.approx(pwcca(y, x), abs=1e-6)  # asymmetric


def test_invariant_to_invertible_maps():
    x, y = _pair(seed=2)
    a = np.random.default_rng(3).normal(size=(8, 8))
    rho = canonical_correlations(x, y)
    assert canonical_correlations(x @ a + 5, y) == pytest.approx(rho, abs=1e-8)
    assert svcca(x, x @ a, 1.0) == pytest.approx(1.0, abs=1e-9)


def test_scores_from_netcdf_with_interval_and_null(tmp_path):
    r = np.random.default_rng(4)
    a = r.normal(size=(80, 3, 6))
    b = a @ r.normal(size=(6, 6)) + 0.5 * r.normal(size=a.shape)
    pa, pb = save(tmp_path / "a.nc", "A", a), save(tmp_path / "b.nc", "B", b)
    fa, fb = a.reshape(-1, 6), b.reshape(-1, 6)
    for name, ref in (("svcca", svcca(fa, fb, 0.99)), ("pwcca", pwcca(fa, fb))):
        s = simbench.score(name, str(pa), str(pb), site="hidden", null=20, n_boot=50)
        assert s.value == pytest.approx(ref, abs=1e-9)
        assert s.ci is not None and s.ci[0] <= s.value <= s.ci[1]
        assert s.p_value < 0.06 and s.null_mean < s.value
