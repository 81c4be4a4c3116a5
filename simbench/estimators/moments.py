"""Second moments of two systems' paired rows, whole or resampled by stimulus. Pure numpy.

The shape metrics, soft matching and CCA are functions of the means and the [d, d] second
moments of the paired activity only. Holding those per stimulus makes a bootstrap replicate
(whole stimuli drawn with replacement, i.e. integer counts per stimulus) a weighted sum of S
small matrices instead of a pass over every row: at 300 stimuli x 25 steps x 64 units, about
70 times less work per replicate.

The rows are centred by their overall mean before anything is summed, so the covariances of a
replicate (whose mean differs only slightly) lose no precision to cancellation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: per-stimulus moments are kept up to this many bytes; past it replicates recompute from rows
STIMULUS_MOMENTS_BYTES = 512 * 2**20


@dataclasses.dataclass
class Moments:
    """Sums over (weighted) rows: count ``n``, sums ``sx``, ``sy`` and products ``xx``,
    ``yy``, ``xy`` (X'X, Y'Y, X'Y) of centred-by-the-overall-mean activity."""

    n: float
    sx: np.ndarray
    sy: np.ndarray
    xx: np.ndarray
    yy: np.ndarray
    xy: np.ndarray

    def covariances(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Cxx, Cyy, Cxy): the covariances over the rows (divided by n)."""
        mx, my = self.sx / self.n, self.sy / self.n
        return (self.xx / self.n - np.outer(mx, mx), self.yy / self.n - np.outer(my, my),
                self.xy / self.n - np.outer(mx, my))


def _centred(t: np.ndarray) -> np.ndarray:
    a = np.asarray(t, dtype=np.float64)
    return a - a.mean(axis=0)


def moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """The :class:`Moments` of all rows of ``x`` and ``y``."""
    xc, yc = _centred(x), _centred(y)
    return Moments(float(len(xc)), xc.sum(axis=0), yc.sum(axis=0), xc.T @ xc, yc.T @ yc,
                   xc.T @ yc)


class StimulusMoments:
    """Per-stimulus :class:`Moments`, for bootstrap replicates over stimuli."""

    def __init__(self, x: np.ndarray, y: np.ndarray, stimulus: np.ndarray) -> None:
        xc, yc = _centred(x), _centred(y)
        stim = np.unique(np.asarray(stimulus), return_inverse=True)[1].ravel()
        order = np.argsort(stim, kind="stable")
        starts = np.searchsorted(stim[order], np.arange(int(stim.max()) + 1))
        xs, ys = xc[order], yc[order]
        self.n = np.bincount(stim).astype(np.float64)
        self.sx = np.add.reduceat(xs, starts, axis=0)
        self.sy = np.add.reduceat(ys, starts, axis=0)
        bounds = [*starts.tolist(), len(xs)]
        blocks = [(bounds[i], bounds[i + 1]) for i in range(len(starts))]
        self.xx, self.yy, self.xy = (np.stack([p[a:b].T @ q[a:b] for a, b in blocks])
                                     for p, q in ((xs, xs), (ys, ys), (xs, ys)))

    @staticmethod
    def nbytes(n_stimuli: int, dx: int, dy: int) -> int:
        """What the per-stimulus moments of ``n_stimuli`` stimuli hold."""
        return 8 * n_stimuli * (dx * dx + dy * dy + dx * dy + dx + dy + 1)

    def resampled(self, counts: np.ndarray) -> Moments:
        """The moments of a replicate drawing stimulus s ``counts[s]`` times."""
        c = np.asarray(counts, dtype=np.float64)
        return Moments(float(c @ self.n), c @ self.sx, c @ self.sy,
                       np.tensordot(c, self.xx, 1), np.tensordot(c, self.yy, 1),
                       np.tensordot(c, self.xy, 1))


__all__ = ["STIMULUS_MOMENTS_BYTES", "Moments", "StimulusMoments", "moments"]
