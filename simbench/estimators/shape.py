"""Shape metrics (Williams et al. 2021) and the soft matching distance (Khosla & Williams 2024).

Pure numpy and scipy (no simbench, no torch). Rows are samples, columns units; every function
centres each unit over the samples first (the metrics compare shapes, not offsets).

Generalized shape metrics. With ``C = X'X / n`` the covariance of the centred activity and its
eigendecomposition ``V diag(l) V'``, the partial whitening of Williams et al. is
``phi_alpha(X) = X V diag(alpha + (1 - alpha) / sqrt(l)) V'``: ``alpha = 1`` leaves X as it is
(Procrustes), ``alpha = 0`` whitens it (CCA). The angular distance is

    theta(X, Y) = arccos( max_Q <phi(X), phi(Y) Q>_F / (||phi(X)||_F ||phi(Y)||_F) )

over orthogonal Q (different widths are zero-padded; padding does not change the value), and
``max_Q <A, B Q> = ||A'B||_*`` (the nuclear norm). It is a metric on [0, pi/2], invariant to
rotations of either system, and for alpha = 1 and alpha = 0 to isotropic scaling too (alpha = 0:
to any invertible linear map; between them the mix of raw and whitened activity depends on the
activity's scale, as in the paper).
Everything is computed from the [d, d] second moments, so n samples cost O(n d^2).

Soft matching distance. Each unit is a tuning curve (a column over the samples). With units
x_1..x_N of X and y_1..y_M of Y, the distance is

    d(X, Y) = sqrt( min_P sum_ij P_ij ||x_i - y_j||^2 )

over transport plans P with row sums 1/N and column sums 1/M. With N = M the optimum is a
permutation (Birkhoff), found by :func:`scipy.optimize.linear_sum_assignment`; unequal counts
are an assignment between lcm(N, M) copies of the units when that is small, else the transport
linear programme is solved by :func:`scipy.optimize.linprog` (HiGHS). The distance is
invariant to permutations of the units and, unlike the shape metrics, not to rotations.
"""

from __future__ import annotations

import math

import numpy as np

from simbench.estimators.cka import EstimatorError
from simbench.estimators.moments import Moments, moments

#: unequal unit counts with lcm(N, M) up to this are solved as an assignment of copies
MAX_REPLICATED = 1024
#: the most variables (N x M) of the transport programme solved for unequal unit counts
MAX_TRANSPORT = 250_000
#: ``normalize`` choices of :func:`soft_matching_distance`.
SOFT_NORMALIZE = ("scale", "unit", "none")


def _whitener(cov: np.ndarray, alpha: float) -> np.ndarray:
    """The symmetric matrix ``V diag(alpha + (1 - alpha) / sqrt(l)) V'`` of ``cov``.

    Directions with no variance (eigenvalue at rounding level) get ``alpha``: the activity has
    no component along them, so the value there changes nothing.
    """
    if alpha >= 1.0:
        return np.eye(cov.shape[0])
    lam, vec = np.linalg.eigh(cov)
    tol = max(float(lam.max(initial=0.0)), 0.0) * cov.shape[0] * np.finfo(np.float64).eps
    diag = np.full_like(lam, alpha)
    live = lam > tol
    diag[live] += (1.0 - alpha) / np.sqrt(lam[live])
    return (vec * diag) @ vec.T


def shape_cosine_of(m: Moments, alpha: float = 1.0) -> float:
    """cos theta from the second moments ``m`` (a bootstrap replicate's, say)."""
    if not 0.0 <= alpha <= 1.0:
        raise EstimatorError(f"alpha must lie in [0, 1], got {alpha}", field="alpha",
                             fix="0 = CCA, 1 = Procrustes")
    cxx, cyy, cxy = m.covariances()
    zx, zy = _whitener(cxx, alpha), _whitener(cyy, alpha)
    norm_x = float(np.trace(zx @ cxx @ zx))
    norm_y = float(np.trace(zy @ cyy @ zy))
    if not (norm_x > 0 and norm_y > 0):
        return math.nan
    nuclear = float(np.linalg.svd(zx @ cxy @ zy, compute_uv=False).sum())
    return min(1.0, nuclear / math.sqrt(norm_x * norm_y))


def shape_distance(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> float:
    """The angular shape distance theta in radians, [0, pi/2] (nan for constant activity)."""
    return shape_distance_of(moments(x, y), alpha)


def shape_distance_of(m: Moments, alpha: float = 1.0) -> float:
    """:func:`shape_distance` from second moments."""
    c = shape_cosine_of(m, alpha)
    return math.acos(c) if math.isfinite(c) else math.nan


def soft_matching_plan(cost: np.ndarray) -> np.ndarray:
    """The optimal [N, M] transport plan between uniform weights 1/N and 1/M over ``cost``."""
    n, m = cost.shape
    common = n * m // math.gcd(n, m)
    if common <= MAX_REPLICATED:
        # uniform weights 1/n and 1/m are those of L = lcm(n, m) copies (L/n of each unit of X,
        # L/m of each of Y) with weight 1/L each; between L and L equal weights the optimal plan
        # is a matching (Birkhoff), and merging the copies back gives the optimal plan
        from scipy.optimize import linear_sum_assignment

        rx, ry = np.repeat(np.arange(n), common // n), np.repeat(np.arange(m), common // m)
        rows, cols = linear_sum_assignment(cost[np.ix_(rx, ry)])
        plan = np.zeros_like(cost)
        np.add.at(plan, (rx[rows], ry[cols]), 1.0 / common)
        return plan
    if n * m > MAX_TRANSPORT:
        raise EstimatorError(
            f"soft matching of {n} and {m} units is a transport problem of {n * m:,} variables "
            f"(more than {MAX_TRANSPORT:,}); with equal unit counts it is an assignment, solved "
            "exactly and fast", field="unit",
            fix="compare sites with the same number of units, or select units first")
    from scipy.optimize import linprog

    # variables P_ij (row-major); rows sum to 1/n, columns to 1/m
    a_rows = np.kron(np.eye(n), np.ones((1, m)))
    a_cols = np.kron(np.ones((1, n)), np.eye(m))
    res = linprog(cost.ravel(), A_eq=np.vstack([a_rows, a_cols]),
                  b_eq=np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)]),
                  bounds=(0, None), method="highs")
    if not res.success:  # pragma: no cover - the transport LP is always feasible
        raise EstimatorError(f"soft matching: the transport problem failed ({res.message})")
    return np.asarray(res.x).reshape(n, m)


def soft_matching_distance(x: np.ndarray, y: np.ndarray, normalize: str = "scale") -> float:
    """The soft matching distance of Khosla & Williams (2024); see the module.

    ``normalize``: ``scale`` divides each system by one number so its units' mean squared norm
    is 1 (the distance then lies in [0, 2] and is invariant to isotropic scaling); ``unit``
    gives every unit norm 1 (||x_i - y_j||^2 = 2 - 2 r_ij, r the units' correlation); ``none``
    keeps the centred activity as it is (summed over the samples).
    """
    return soft_matching_of(moments(x, y), normalize)


def soft_matching_of(m: Moments, normalize: str = "scale") -> float:
    """:func:`soft_matching_distance` from second moments: the squared distance of centred
    units i, j over the samples is n (Cxx_ii + Cyy_jj - 2 Cxy_ij), scaled as ``normalize``
    says."""
    if normalize not in SOFT_NORMALIZE:
        raise EstimatorError(f"normalize must be one of {SOFT_NORMALIZE}, got {normalize!r}",
                             field="normalize")
    cxx, cyy, cxy = m.covariances()
    vx, vy = m.n * np.diag(cxx), m.n * np.diag(cyy)  # squared norms of the units
    if normalize == "scale":
        ax = np.full_like(vx, 1.0 / math.sqrt(vx.mean()) if vx.sum() > 0 else 1.0)
        ay = np.full_like(vy, 1.0 / math.sqrt(vy.mean()) if vy.sum() > 0 else 1.0)
    elif normalize == "unit":
        ax = 1.0 / np.sqrt(np.where(vx > 0, vx, 1.0))
        ay = 1.0 / np.sqrt(np.where(vy > 0, vy, 1.0))
    else:
        ax, ay = np.ones_like(vx), np.ones_like(vy)
    cost = np.maximum(vx[:, None] * ax[:, None] ** 2 + vy[None, :] * ay[None, :] ** 2
                      - 2.0 * m.n * cxy * np.outer(ax, ay), 0.0)
    plan = soft_matching_plan(cost)
    return math.sqrt(max(float((plan * cost).sum()), 0.0))


__all__ = ["MAX_REPLICATED", "MAX_TRANSPORT", "SOFT_NORMALIZE", "shape_cosine_of",
           "shape_distance", "shape_distance_of", "soft_matching_distance", "soft_matching_of",
           "soft_matching_plan"]
