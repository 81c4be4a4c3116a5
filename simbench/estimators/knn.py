"""Mutual k-nearest-neighbour alignment and CKNNA (Huh et al. 2024). Pure numpy.

Both compare which samples are near which in each system. Rows are unit-normalised first (as
in the paper: similarity is the cosine) unless ``normalize`` is False, then the similarity of
samples i and j is the inner product K_ij = <x_i, x_j>; a sample is never its own neighbour.

- Mutual k-NN: for each sample, the share of its k nearest neighbours in X that are also
  among its k nearest in Y; the value is the mean over samples, in [0, 1]. Only the
  neighbour sets matter, so any transform that keeps every sample's k nearest neighbours
  (rotations, isotropic scaling, a monotone change of the similarities) leaves it unchanged.
- CKNNA: centred kernel alignment restricted to mutual neighbours. With M_ij = 1 when j is
  among i's k nearest in both systems, it is HSIC(M o K, M o L) / sqrt(HSIC(M_K o K, M_K o K)
  HSIC(M_L o L, M_L o L)), HSIC the unbiased estimator of Song et al. (2012) and M_K the
  k-NN mask of K alone. With k = n - 1 it is debiased CKA.

The [n, n] similarity matrices cost O(n^2 d) time and a few n^2 floats of memory: the measures
subsample rows (``max_samples``) for large recordings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simbench.estimators.cka import EstimatorError


def similarities(t: np.ndarray, normalize: bool = True) -> np.ndarray:
    """[n, n] inner products of the (unit-normalised) rows of ``t``; rows of norm 0 stay 0."""
    a = np.asarray(t, dtype=np.float64)
    if normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", a, a))
        a = a / np.where(norms > 0, norms, 1.0)[:, None]
    return a @ a.T


def knn_indices(sim: np.ndarray, k: int) -> np.ndarray:
    """[n, k] the k most similar samples to each sample i (i itself excluded)."""
    n = sim.shape[0]
    if not 1 <= k < n:
        raise EstimatorError(f"k = {k} neighbours needs at least {k + 1} samples, got {n}",
                             field="k", fix=f"pass a k below {n}, or record more samples")
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    return np.argpartition(-s, k - 1, axis=1)[:, :k]


def knn_mask(sim: np.ndarray, k: int) -> np.ndarray:
    """[n, n] bool: j is among the k most similar samples to i (see :func:`knn_indices`)."""
    n = sim.shape[0]
    top = knn_indices(sim, k)
    mask = np.zeros((n, n), dtype=bool)
    mask[np.arange(n)[:, None], top] = True
    return mask


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10, normalize: bool = True) -> float:
    """Mean share of each sample's k nearest neighbours shared by the two systems."""
    mx = knn_mask(similarities(x, normalize), k)
    my = knn_mask(similarities(y, normalize), k)
    return float((mx & my).sum(axis=1).mean() / k)


def hsic_unbiased(a: Any, b: Any) -> float:
    """Song et al.'s unbiased HSIC of two [n, n] matrices (numpy, or scipy sparse) with zero
    diagonals (n > 3): [tr(AB) + 1'A1 1'B1 / ((n-1)(n-2)) - 2/(n-2) 1'AB1] / (n(n-3))."""
    n = a.shape[0]
    if n < 4:
        raise EstimatorError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    sparse = hasattr(a, "tocoo")  # scipy sparse
    tr = float(a.multiply(b.T).sum()) if sparse else float(np.einsum("ij,ji->", a, b))
    ones = float(a.sum()) * float(b.sum()) / ((n - 1) * (n - 2))
    cross = float(np.asarray(a.sum(axis=0)).ravel() @ np.asarray(b.sum(axis=1)).ravel())
    return (tr + ones - 2.0 * cross / (n - 2)) / (n * (n - 3))


def cknna(x: np.ndarray, y: np.ndarray, k: int = 10, normalize: bool = True) -> float:
    """CKNNA (see the module); nan when a system's restricted kernel has no variance."""
    kx, ky = similarities(x, normalize), similarities(y, normalize)
    mx, my = knn_mask(kx, k), knn_mask(ky, k)
    both = (mx & my).astype(np.float64)
    fx, fy = mx.astype(np.float64), my.astype(np.float64)
    num = hsic_unbiased(both * kx, both * ky)
    den = hsic_unbiased(fx * kx, fx * kx) * hsic_unbiased(fy * ky, fy * ky)
    return float(num / np.sqrt(den)) if den > 0 else float("nan")


class Graph:
    """One system's k-nearest-neighbour graph, for fast re-pairings and resamplings.

    Holds each sample's k neighbours and their similarities ([n, k]): a re-pairing of the rows
    (row i of X with row m[i] of Y) or a resampling of them then costs O(n k), not O(n^2 d).
    """

    def __init__(self, t: np.ndarray, k: int, normalize: bool = True) -> None:
        sim = similarities(t, normalize)
        self.n, self.k = sim.shape[0], k
        self.nbr = knn_indices(sim, k)
        self.val = np.take_along_axis(sim, self.nbr, axis=1)

    def _csr(self, values: np.ndarray | None, m: np.ndarray | None) -> Any:
        from scipy.sparse import csr_matrix

        rows = np.repeat(np.arange(self.n), self.k)
        if m is None:
            cols, data = self.nbr.ravel(), values
        else:  # this graph read through the row map m: sample i is this graph's m[i]
            inv = np.empty_like(m)
            inv[m] = np.arange(len(m))
            cols = inv[self.nbr[m]].ravel()
            data = None if values is None else values[m]
        data = np.ones(self.n * self.k) if data is None else np.asarray(data).ravel()
        return csr_matrix((data, (rows, cols)), shape=(self.n, self.n))

    def mask(self, m: np.ndarray | None = None) -> Any:
        """Sparse [n, n] 0/1 neighbour mask (through the row map ``m``)."""
        return self._csr(None, m)

    def kernel(self, m: np.ndarray | None = None) -> Any:
        """Sparse [n, n] similarities at the neighbour pairs (through ``m``)."""
        return self._csr(self.val, m)


def mutual_overlaps(gx: Graph, gy: Graph, m: np.ndarray | None = None) -> np.ndarray:
    """[n] each sample's number of shared neighbours (Y read through the row map ``m``)."""
    return np.asarray(gx.mask().multiply(gy.mask(m)).sum(axis=1)).ravel()


def cknna_parts(gx: Graph, gy: Graph, m: np.ndarray | None = None) -> tuple[Any, Any, Any, Any]:
    """Sparse (M o K, M o L, M_K o K, M_L o L) of :func:`cknna` (Y through the row map m)."""
    kx, ky = gx.kernel(), gy.kernel(m)
    return kx.multiply(gy.mask(m)).tocsr(), ky.multiply(gx.mask()).tocsr(), kx, ky


def cknna_sparse(parts: tuple[Any, Any, Any, Any], rows: np.ndarray | None = None) -> float:
    """CKNNA from :func:`cknna_parts`; ``rows`` (with repeats) resamples the samples, the
    neighbour graph held fixed (copies of one sample are never neighbours: zero diagonals)."""
    if rows is not None:
        from scipy.sparse import csr_matrix

        n = parts[0].shape[0]
        sel = csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)),
                         shape=(len(rows), n))
        parts = tuple(sel @ p @ sel.T for p in parts)  # type: ignore[assignment]
    a, b, fx, fy = parts
    den = hsic_unbiased(fx, fx) * hsic_unbiased(fy, fy)
    return float(hsic_unbiased(a, b) / np.sqrt(den)) if den > 0 else float("nan")


def cknna_resampled(parts: tuple[Any, Any, Any, Any], counts: np.ndarray) -> np.ndarray:
    """CKNNA of many resamplings at once: ``counts`` [B, n] how often each sample is drawn.

    The same value as :func:`cknna_sparse` with the drawn rows, from sums over the graph's
    entries weighted by c_i c_j (a copy pair (i, i) carries nothing: zero diagonals), so B
    replicates cost O(B n k).
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)

    def hsic(a: Any, b: Any) -> np.ndarray:
        ca, cb = a.tocoo(), b.tocoo()
        both = a.multiply(b.T).tocoo()
        tr = (counts[:, both.row] * counts[:, both.col]) @ both.data
        sa = (counts[:, ca.row] * counts[:, ca.col]) @ ca.data
        sb = (counts[:, cb.row] * counts[:, cb.col]) @ cb.data
        # column sums of A' and row sums of B', summed over the drawn samples j with weight c_j
        col_a = np.zeros_like(counts)
        row_b = np.zeros_like(counts)
        np.add.at(col_a.T, ca.col, (counts[:, ca.row] * ca.data).T)
        np.add.at(row_b.T, cb.row, (counts[:, cb.col] * cb.data).T)
        cross = np.einsum("bj,bj,bj->b", counts, col_a, row_b)
        return (tr + sa * sb / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))

    a, b, fx, fy = parts
    den = hsic(fx, fx) * hsic(fy, fy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, hsic(a, b) / np.sqrt(np.where(den > 0, den, 1.0)), np.nan)


__all__ = [
    "Graph",
    "cknna",
    "cknna_parts",
    "cknna_resampled",
    "cknna_sparse",
    "hsic_unbiased",
    "knn_indices",
    "knn_mask",
    "mutual_knn",
    "mutual_overlaps",
    "similarities",
]
