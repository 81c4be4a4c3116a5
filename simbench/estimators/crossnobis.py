"""RSA on cross-validated Mahalanobis distances (crossnobis; Walther et al. 2016), via rsatoolbox.

Crossnobis needs repeated measurements: every condition (stimulus) measured in two or more
independent partitions (repeats, runs). For conditions i, j and partitions f, with m_f the
condition means in partition f and m_-f those of the other partitions, rsatoolbox computes

    d_ij = mean_f (m_f,i - m_f,j)' P (m_-f,i - m_-f,j) / n_units

(leave one partition out), P the noise precision (identity: cross-validated Euclidean). Noise
shared within a partition cancels in expectation, so the estimate is unbiased: 0 on average
for two conditions with the same true pattern, and it can be negative. The two systems' RDMs
over their shared conditions are then compared with ``rsatoolbox.rdm.compare``.

rsatoolbox is imported when a function runs (it is slow to import).
"""

from __future__ import annotations

import numpy as np

from simbench.estimators.cka import EstimatorError

#: noise precisions: identity (cross-validated Euclidean) or rsatoolbox's estimates from the
#: residuals around the condition means
NOISE = ("identity", "shrinkage_diag", "shrinkage_eye", "diag", "full")
#: rsatoolbox comparisons (cosine keeps the meaningful zero of crossnobis distances)
COMPARE = ("cosine", "corr", "spearman", "kendall", "tau-a", "rho-a", "corr_cov", "cosine_cov")


def crossnobis_rdm(rows: np.ndarray, conditions: np.ndarray, partitions: np.ndarray,
                   noise: str = "shrinkage_diag") -> tuple[np.ndarray, np.ndarray]:
    """(square [c, c] crossnobis RDM, its condition labels in order) of one system.

    ``rows`` [n, d] are single measurements; ``conditions`` and ``partitions`` [n] label them.
    Every condition needs a measurement in at least two partitions.
    """
    import rsatoolbox

    rows = np.asarray(rows, dtype=np.float64)
    conditions, partitions = np.asarray(conditions), np.asarray(partitions)
    parts = np.unique(partitions)
    if len(parts) < 2:
        raise EstimatorError(f"crossnobis needs at least 2 partitions (repeats), got "
                             f"{len(parts)}", field="repeat",
                             fix="record every stimulus in two or more repeats")
    conds = np.unique(conditions)
    seen = np.array([len(np.unique(partitions[conditions == c])) for c in conds])
    if (seen < 2).any():
        bad = [str(c) for c in conds[seen < 2][:3]]
        raise EstimatorError(f"{int((seen < 2).sum())} conditions are measured in fewer than 2 "
                             f"repeats (e.g. {bad}); crossnobis needs each in 2 or more",
                             field="repeat", fix="drop those stimuli or record more repeats")
    if len(conds) < 3:
        raise EstimatorError(f"RSA needs at least 3 conditions, got {len(conds)}",
                             field="stimulus_id")
    if noise not in NOISE:
        raise EstimatorError(f"noise must be one of {NOISE}, got {noise!r}", field="noise")
    data = rsatoolbox.data.Dataset(rows, obs_descriptors={"conds": conditions.astype(str),
                                                          "runs": partitions.astype(str)})
    precision = None
    if noise != "identity":
        precision = rsatoolbox.data.noise.prec_from_measurements(data, obs_desc="conds",
                                                                 method=noise)
    rdm = rsatoolbox.rdm.calc_rdm(data, method="crossnobis", descriptor="conds",
                                  cv_descriptor="runs", noise=precision)
    labels = np.asarray(rdm.pattern_descriptors["conds"]).astype(str)
    return np.asarray(rdm.get_matrices()[0], dtype=np.float64), labels


def compare_square(a: np.ndarray, b: np.ndarray, method: str = "cosine") -> float:
    """``rsatoolbox.rdm.compare`` of two square RDMs; NaN entries (e.g. pairs of copies of one
    condition in a bootstrap replicate) are left out of the comparison."""
    import rsatoolbox

    iu = np.triu_indices(a.shape[0], 1)
    va, vb = a[iu][None, :], b[iu][None, :]
    return float(rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(va), rsatoolbox.rdm.RDMs(vb),
                                        method=method)[0, 0])


def resampled(rdm: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``rdm`` over the conditions ``idx`` (with repeats), pairs of one condition set to NaN."""
    out = rdm[np.ix_(idx, idx)].copy()
    out[idx[:, None] == idx[None, :]] = np.nan
    return out


__all__ = ["COMPARE", "NOISE", "compare_square", "crossnobis_rdm", "resampled"]
