"""Mutual k-NN alignment and CKNNA (Huh et al. 2024) against references from the formulas."""

from __future__ import annotations

import numpy as np
import pytest
from recording_helpers import save

import simbench
from simbench.estimators.cka import cka
from simbench.estimators.knn import (
    Graph,
    cknna,
    cknna_parts,
    cknna_resampled,
    cknna_sparse,
    mutual_knn,
    mutual_overlaps,
)


def _pair(n: int = 150, seed: int = 0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 8))
    return x, x @ r.normal(size=(8, 8)) + 0.7 * r.normal(size=(n, 8))


def _neighbours(t: np.ndarray, k: int) -> list[set[int]]:
    u = t / np.linalg.norm(t, axis=1, keepdims=True)
    out = []
    for i in range(len(u)):
        sims = [(float(u[i] @ u[j]), j) for j in range(len(u)) if j != i]
        out.append({j for _, j in sorted(sims, reverse=True)[:k]})
    return out


def _ref_mutual(x, y, k):
    nx, ny = _neighbours(x, k), _neighbours(y, k)
    return float(np.mean([len(a & b) / k for a, b in zip(nx, ny)]))


def _ref_hsic(a, b):
    """Song et al. (2012), eq. 5, with the diagonals set to zero."""
    n = len(a)
    a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
    one = np.ones(n)
    return (np.trace(a @ b) + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ a @ b @ one)) / (n * (n - 3))


def _ref_cknna(x, y, k):
    ux = x / np.linalg.norm(x, axis=1, keepdims=True)
    uy = y / np.linalg.norm(y, axis=1, keepdims=True)
    kx, ky = ux @ ux.T, uy @ uy.T
    n = len(x)
    mx, my = np.zeros((n, n)), np.zeros((n, n))
    for i, (a, b) in enumerate(zip(_neighbours(x, k), _neighbours(y, k))):
        mx[i, list(a)] = 1
        my[i, list(b)] = 1
    m = mx * my
    return _ref_hsic(m * kx, m * ky) / np.sqrt(_ref_hsic(mx * kx, mx * kx)
                                               * _ref_hsic(my * ky, my * ky))


@pytest.mark.parametrize("k", [5, 10])
def test_mutual_knn_and_cknna_match_reference(k):
    x, y = _pair()
    assert mutual_knn(x, y, k) == pytest.approx(_ref_mutual(x, y, k), abs=1e-12)
    assert cknna(x, y, k) == pytest.approx(_ref_cknna(x, y, k), abs=1e-6)


def test_cknna_with_all_neighbours_is_debiased_cka():
    x, y = _pair(n=60, seed=1)
    ref = cka(x, y, kernel="cosine", debiased=True, n_boot=0).value
    assert cknna(x, y, 59) == pytest.approx(ref, abs=1e-6)


def test_invariant_to_neighbour_preserving_transforms():
    x, y = _pair(seed=2)
    r = np.random.default_rng(3)
    q = np.linalg.qr(r.normal(size=(8, 8)))[0]
    scale = r.uniform(0.5, 4.0, size=(len(x), 1))  # per-sample scale: cosine neighbours kept
    for fn in (mutual_knn, cknna):
        assert fn(x @ q * scale, y, 10) == pytest.approx(fn(x, y, 10), abs=1e-9)
    # a general linear map changes the neighbours
    assert mutual_knn(x @ r.normal(size=(8, 8)), y, 10) != pytest.approx(mutual_knn(x, y, 10))


def test_fast_null_and_bootstrap_paths_match_the_definition():
    x, y = _pair(n=100, seed=4)
    gx, gy = Graph(x, 7), Graph(y, 7)
    m = np.random.default_rng(5).permutation(100)
    assert mutual_overlaps(gx, gy, m).mean() / 7 == pytest.approx(mutual_knn(x, y[m], 7))
    assert cknna_sparse(cknna_parts(gx, gy, m)) == pytest.approx(cknna(x, y[m], 7), abs=1e-9)
    rows = np.random.default_rng(6).integers(0, 100, 100)
    parts = cknna_parts(gx, gy)
    fast = cknna_resampled(parts, np.bincount(rows, minlength=100)[None, :])[0]
    assert fast == pytest.approx(cknna_sparse(parts, rows), abs=1e-9)


def test_scores_from_netcdf_with_interval_and_null(tmp_path):
    r = np.random.default_rng(7)
    a = r.normal(size=(50, 4, 8))
    b = a @ r.normal(size=(8, 8)) + 0.5 * r.normal(size=a.shape)
    pa, pb = save(tmp_path / "a.nc", "A", a), save(tmp_path / "b.nc", "B", b)
    fa, fb = a.reshape(-1, 8), b.reshape(-1, 8)
    for name, fn in (("mutual_knn", mutual_knn), ("cknna", cknna)):
        s = simbench.score(name, str(pa), str(pb), site="hidden", null=30, n_boot=50, k=5)
        assert s.value == pytest.approx(fn(fa, fb, 5), abs=1e-9)
        assert s.ci is not None and s.ci[0] <= s.value <= s.ci[1]
        assert s.p_value < 0.05 and s.null_mean < s.value
    sub = simbench.score("mutual_knn", str(pa), str(pb), site="hidden", max_samples=50,
                         n_boot=0)
    assert sub.n_samples == 50 and "subsampled" in sub.attrs
    with pytest.raises(simbench.SimbenchError, match="k = 60"):
        simbench.score("mutual_knn", str(pa), str(pb), site="hidden", max_samples=50, k=60)
