"""SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018). Pure numpy.

Canonical correlations of centred X [n, dx] and Y [n, dy] are the singular values of
``Wx' X'Y Wy``, where ``X Wx`` is an orthonormal basis of X's column space:
``Wx = V diag(l)^-1/2`` from the eigendecomposition ``X'X = V diag(l) V'`` (directions with
l below 1e-12 of the largest are dropped as rounding). Working from the [d, d] second moments
costs O(n d^2) once, so the bootstrap's replicates stay cheap at thousands of samples. The
canonical variates of X (in sample space) are ``X Wx U``, U the left singular vectors.

- SVCCA: each system is first reduced to its leading principal components that explain a
  fraction ``var`` of its variance; the value is the mean canonical correlation of the two
  reductions.
- PWCCA: the canonical correlations rho_i of the two systems, averaged with weights
  alpha_i = sum_j |<h_i, x_j>| (h_i the i-th canonical variate of X, unit norm; x_j the j-th
  centred unit of X), normalised to sum to 1. The weights come from X, so PWCCA is asymmetric.

Both lie in [0, 1]; with n <= d every canonical correlation is 1 (any two sets of n points are
linearly related), so the measures need more samples than units.
"""

from __future__ import annotations

import numpy as np

from simbench.estimators.cka import EstimatorError
from simbench.estimators.moments import Moments, moments

#: eigenvalues of X'X below this share of the largest are rounding, not directions
RANK_TOL = 1e-12


def whitener(cov: np.ndarray, var: float | None = None) -> np.ndarray:
    """[d, k] ``Wx`` with ``X Wx`` orthonormal (up to one factor), from ``cov`` = X'X / n of
    centred X.

    ``var`` in (0, 1]: keep the fewest leading components whose eigenvalues (squared singular
    values) reach that fraction of the total (SVCCA's reduction); None keeps every direction
    above rounding.
    """
    lam, vec = np.linalg.eigh(cov)
    lam, vec = lam[::-1], vec[:, ::-1]
    if lam.size == 0 or lam[0] <= 0:
        raise EstimatorError("CCA is undefined: the activity does not vary over the samples",
                             field="activity", fix="check the recording, or compare another site")
    keep = int((lam > lam[0] * RANK_TOL).sum())
    if var is not None:
        if not 0.0 < var <= 1.0:
            raise EstimatorError(f"var must lie in (0, 1], got {var}", field="var")
        share = np.cumsum(lam[:keep]) / float(lam[:keep].sum())
        keep = min(keep, int(np.searchsorted(share, var - 1e-12)) + 1)
    return vec[:, :keep] / np.sqrt(lam[:keep])


def _cca(m: Moments, var: float | None
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rho, U, Wx, Cxx) from the second moments ``m``."""
    cxx, cyy, cxy = m.covariances()
    wx, wy = whitener(cxx, var), whitener(cyy, var)
    u, rho, _ = np.linalg.svd(wx.T @ cxy @ wy, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), u, wx, cxx


def canonical_correlations(x: np.ndarray, y: np.ndarray, var: float | None = None
                           ) -> np.ndarray:
    """The canonical correlations (descending) of ``x`` and ``y``, after the SVD reduction
    to ``var`` of the variance when given."""
    return _cca(moments(x, y), var)[0]


def svcca(x: np.ndarray, y: np.ndarray, var: float = 0.99) -> float:
    """SVCCA: the mean canonical correlation of the ``var`` principal subspaces."""
    return svcca_of(moments(x, y), var)


def svcca_of(m: Moments, var: float = 0.99) -> float:
    """:func:`svcca` from second moments (a bootstrap replicate's, say)."""
    return float(_cca(m, var)[0].mean())


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """PWCCA: canonical correlations weighted by how much of X each canonical variate carries."""
    return pwcca_of(moments(x, y))


def pwcca_of(m: Moments) -> float:
    """:func:`pwcca` from second moments."""
    rho, u, wx, cxx = _cca(m, None)
    # <h_i, x_j> = (X'X Wx U)_ji up to one factor for every i and j (the weights' scale cancels)
    weights = np.abs(cxx @ (wx @ u[:, :len(rho)])).sum(axis=0)
    total = float(weights.sum())
    if not total > 0:
        raise EstimatorError("PWCCA is undefined: no canonical variate carries activity",
                             field="activity")
    return float(rho @ weights / total)


__all__ = ["RANK_TOL", "canonical_correlations", "pwcca", "pwcca_of", "svcca", "svcca_of",
           "whitener"]
