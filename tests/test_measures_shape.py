"""Procrustes, generalized shape metrics and soft matching against independent references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from recording_helpers import save
from scipy.linalg import orthogonal_procrustes, sqrtm, subspace_angles

import simbench
from simbench.estimators.shape import shape_distance, soft_matching_distance


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _pair(n: int = 120, dx: int = 6, dy: int = 6, noise: float = 0.5, seed: int = 0):
    r = _rng(seed)
    x = r.normal(size=(n, dx)) @ r.normal(size=(dx, dx))
    y = x[:, :dy] @ r.normal(size=(dy, dy)) + noise * r.normal(size=(n, dy)) + 3.0
    return x, y


def _ref_procrustes(x: np.ndarray, y: np.ndarray) -> float:
    """Williams et al. (2021), alpha = 1: centre, zero-pad, unit norm, best rotation (scipy)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    d = max(xc.shape[1], yc.shape[1])
    xc = np.pad(xc, ((0, 0), (0, d - xc.shape[1])))
    yc = np.pad(yc, ((0, 0), (0, d - yc.shape[1])))
    xc, yc = xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)
    rot, _ = orthogonal_procrustes(yc, xc)
    return math.acos(min(1.0, float(np.sum(xc * (yc @ rot)))))


def _ref_shape(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """The partial whitening X (alpha I + (1 - alpha) C^-1/2) with scipy's sqrtm, then the
    Procrustes angle."""
    def whiten(t: np.ndarray) -> np.ndarray:
        tc = t - t.mean(0)
        c = tc.T @ tc / len(tc)
        z = alpha * np.eye(len(c)) + (1 - alpha) * np.linalg.inv(np.real(sqrtm(c)))
        return tc @ z
    return _ref_procrustes(whiten(x), whiten(y))


@pytest.mark.parametrize("dy", [6, 4])
def test_procrustes_matches_scipy_orthogonal_procrustes(dy):
    x, y = _pair(dy=dy)
    assert shape_distance(x, y, 1.0) == pytest.approx(_ref_procrustes(x, y), abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.9])
def test_shape_metric_matches_partial_whitening(alpha):
    x, y = _pair(seed=1)
    assert shape_distance(x, y, alpha) == pytest.approx(_ref_shape(x, y, alpha), abs=1e-6)


def test_alpha_zero_is_mean_canonical_correlation():
    x, y = _pair(seed=2)
    cos = np.cos(subspace_angles(x - x.mean(0), y - y.mean(0)))  # canonical correlations
    assert math.cos(shape_distance(x, y, 0.0)) == pytest.approx(cos.mean(), abs=1e-6)


def test_invariances_rotation_and_isotropic_scale():
    x, y = _pair(seed=3)
    q = np.linalg.qr(_rng(9).normal(size=(6, 6)))[0]
    base = shape_distance(x, y, 1.0)
    assert shape_distance(x @ q * 7.5 + 2.0, y, 1.0) == pytest.approx(base, abs=1e-9)
    # not invariant to a general linear map (that is CCA's, alpha = 0)
    a = _rng(4).normal(size=(6, 6))
    assert abs(shape_distance(x @ a, y, 1.0) - base) > 1e-3
    assert shape_distance(x @ a, y, 0.0) == pytest.approx(shape_distance(x, y, 0.0), abs=1e-9)
    assert shape_distance(x, x @ q * 3, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert shape_distance(x, y, 0.4) == pytest.approx(shape_distance(y, x, 0.4), abs=1e-12)


def _ref_soft(x: np.ndarray, y: np.ndarray) -> float:
    """Brute force over matchings: units replicated to a common count L = lcm(N, M), every
    permutation tried (the transport plan between uniform weights is then a matching)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    n, m = xc.shape[1], yc.shape[1]
    lcm = n * m // math.gcd(n, m)
    xs, ys = np.repeat(xc, lcm // n, axis=1), np.repeat(yc, lcm // m, axis=1)
    best = min(sum(float(np.sum((xs[:, i] - ys[:, p]) ** 2)) for i, p in enumerate(perm))
               for perm in itertools.permutations(range(lcm)))
    return math.sqrt(best / lcm)


@pytest.mark.parametrize("dx,dy", [(5, 5), (2, 3)])
def test_soft_matching_matches_brute_force(dx, dy):
    r = _rng(5)
    x, y = r.normal(size=(30, dx)), r.normal(size=(30, dy))
    got = soft_matching_distance(x, y, normalize="none")
    assert got == pytest.approx(_ref_soft(x, y), abs=1e-6)


def test_soft_matching_permutation_invariant_not_rotation():
    x, y = _pair(n=80, seed=6)
    base = soft_matching_distance(x, y)
    perm = _rng(1).permutation(6)
    assert soft_matching_distance(x[:, perm], y) == pytest.approx(base, abs=1e-9)
    assert soft_matching_distance(x * 4.0, y) == pytest.approx(base, abs=1e-9)  # scale
    assert soft_matching_distance(x, x[:, perm]) == pytest.approx(0.0, abs=1e-7)
    q = np.linalg.qr(_rng(2).normal(size=(6, 6)))[0]
    assert soft_matching_distance(x, x @ q) > 0.1  # a rotation is seen


def test_scores_from_netcdf_with_interval_and_null(tmp_path):
    r = _rng(7)
    a = r.normal(size=(60, 4, 8))
    q = np.linalg.qr(r.normal(size=(8, 8)))[0]
    b = a @ q + 0.3 * r.normal(size=a.shape)
    pa, pb = save(tmp_path / "a.nc", "A", a), save(tmp_path / "b.nc", "B", b)
    flat_a, flat_b = a.reshape(-1, 8), b.reshape(-1, 8)
    for name, ref in (("procrustes_angular", shape_distance(flat_a, flat_b, 1.0)),
                      ("soft_matching", soft_matching_distance(flat_a, flat_b))):
        s = simbench.score(name, str(pa), str(pb), site="hidden", null=30, n_boot=50)
        assert s.value == pytest.approx(ref, abs=1e-9)
        assert s.ci is not None and s.ci[0] <= s.value <= s.ci[1]
        assert s.p_value is not None and s.p_value < 0.05  # distance: small is similar
        assert s.null_mean > s.value
    m = simbench.score("shape_metric", str(pa), str(pb), site="hidden", alpha=0.0, n_boot=0)
    assert m.value == pytest.approx(shape_distance(flat_a, flat_b, 0.0), abs=1e-9)
    assert "ci_note" in m.attrs


def test_constant_activity_is_refused(tmp_path):
    a = np.zeros((10, 3, 4))
    b = _rng(0).normal(size=(10, 3, 4))
    pa, pb = save(tmp_path / "a.nc", "A", a), save(tmp_path / "b.nc", "B", b)
    with pytest.raises(simbench.SimbenchError, match="undefined"):
        simbench.score("procrustes_angular", str(pa), str(pb), site="hidden")


def test_soft_matching_transport_programme_agrees_with_the_assignment(monkeypatch):
    """Unequal unit counts: the assignment of lcm copies and the HiGHS transport LP agree."""
    from simbench.estimators import shape

    r = _rng(8)
    x, y = r.normal(size=(40, 4)), r.normal(size=(40, 6))
    via_copies = soft_matching_distance(x, y)
    monkeypatch.setattr(shape, "MAX_REPLICATED", 0)
    assert soft_matching_distance(x, y) == pytest.approx(via_copies, abs=1e-7)
    monkeypatch.setattr(shape, "MAX_TRANSPORT", 10)
    with pytest.raises(Exception, match="transport problem of 24 variables"):
        soft_matching_distance(x, y)


def test_bootstrap_replicates_from_moments_equal_recomputing_on_the_drawn_rows():
    """A replicate from per-stimulus moments is the measure on the drawn rows (copies kept)."""
    from simbench.estimators.cca import pwcca, pwcca_of, svcca, svcca_of
    from simbench.estimators.moments import StimulusMoments
    from simbench.estimators.shape import shape_distance_of, soft_matching_of

    r = _rng(11)
    x = r.normal(size=(300, 6)) + 4.0
    y = x @ r.normal(size=(6, 5)) + r.normal(size=(300, 5))
    stim = np.repeat(np.arange(60), 5)
    drawn = r.integers(0, 60, 60)
    rows = np.concatenate([np.flatnonzero(stim == i) for i in drawn])
    m = StimulusMoments(x, y, stim).resampled(np.bincount(drawn, minlength=60))
    xr, yr = x[rows], y[rows]
    assert shape_distance_of(m, 1.0) == pytest.approx(shape_distance(xr, yr, 1.0), abs=1e-9)
    assert shape_distance_of(m, 0.3) == pytest.approx(shape_distance(xr, yr, 0.3), abs=1e-9)
    for norm in ("scale", "unit", "none"):
        assert soft_matching_of(m, norm) == pytest.approx(
            soft_matching_distance(xr, yr, norm), abs=1e-9)
    assert svcca_of(m, 0.9) == pytest.approx(svcca(xr, yr, 0.9), abs=1e-9)
    assert pwcca_of(m) == pytest.approx(pwcca(xr, yr), abs=1e-9)
