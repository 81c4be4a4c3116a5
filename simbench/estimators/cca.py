"""SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018). Pure numpy.

Canonical correlations of centred X [n, dx] and Y [n, dy] are the singular values of
``Qx' Qy``, where Qx and Qy are orthonormal bases of the two column spaces (from an SVD, with
directions at rounding level dropped). That is the stable form of CCA: no covariance is
inverted. The canonical variates of X (in sample space) are ``Qx U``, with U the left singular
vectors of ``Qx' Qy``.

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
from simbench.estimators.shape import centred


def basis(t: np.ndarray, var: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(orthonormal basis of the centred columns of ``t``, its singular values).

    ``var`` in (0, 1]: keep the fewest leading components whose squared singular values reach
    that fraction of the total (SVCCA's reduction); None keeps every direction above rounding.
    """
    u, s, _ = np.linalg.svd(centred(t), full_matrices=False)
    if s.size == 0 or s[0] <= 0:
        raise EstimatorError("CCA is undefined: the activity does not vary over the samples",
                             field="activity", fix="check the recording, or compare another site")
    keep = int((s > s[0] * max(t.shape) * np.finfo(np.float64).eps).sum())
    if var is not None:
        if not 0.0 < var <= 1.0:
            raise EstimatorError(f"var must lie in (0, 1], got {var}", field="var")
        share = np.cumsum(s[:keep] ** 2) / float((s[:keep] ** 2).sum())
        keep = min(keep, int(np.searchsorted(share, var - 1e-12)) + 1)
    return u[:, :keep], s[:keep]


def canonical_correlations(x: np.ndarray, y: np.ndarray, var: float | None = None
                           ) -> np.ndarray:
    """The canonical correlations (descending) of ``x`` and ``y``, after the SVD reduction
    to ``var`` of the variance when given."""
    qx, _ = basis(x, var)
    qy, _ = basis(y, var)
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)


def svcca(x: np.ndarray, y: np.ndarray, var: float = 0.99) -> float:
    """SVCCA: the mean canonical correlation of the ``var`` principal subspaces."""
    return float(canonical_correlations(x, y, var).mean())


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """PWCCA: canonical correlations weighted by how much of X each canonical variate carries."""
    xc = centred(x)
    qx, _ = basis(x)
    qy, _ = basis(y)
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ u  # [n, k] unit-norm canonical variates of X
    weights = np.abs(h.T @ xc).sum(axis=1)
    total = float(weights.sum())
    if not total > 0:
        raise EstimatorError("PWCCA is undefined: no canonical variate carries activity",
                             field="activity")
    return float(np.clip(rho, 0.0, 1.0) @ weights / total)


__all__ = ["basis", "canonical_correlations", "pwcca", "svcca"]
