"""The neighbourhood measures ``mutual_knn`` and ``cknna`` (Huh et al. 2024).

Numbers from :mod:`simbench.estimators.knn`. Each system's neighbour graph is built once
(O(n^2 d)); the bootstrap over stimuli resamples samples with their full-data neighbours kept
(so a duplicated sample is never its copy's neighbour), and the permutation null re-pairs the
graphs (O(n k) per permutation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from simbench_plugins._paired import (
    PairedRowMeasure,
    Statistic,
    bootstrap_rows,
    common_params,
    max_samples_param,
)

from simbench import hookimpl
from simbench.estimators.knn import (
    Graph,
    cknna,
    cknna_parts,
    cknna_resampled,
    cknna_sparse,
    mutual_knn,
    mutual_overlaps,
)
from simbench.measure import Param

CITATION = ("Huh, Cheung, Wang & Isola (2024). The Platonic Representation Hypothesis. ICML.")


class _Neighbours(PairedRowMeasure):
    symmetric = True
    higher_is_better = True
    citation = CITATION
    square_bytes = 64  # a few [n, n] float64 and bool arrays
    params = (Param("k", 10, "neighbours per sample", low=1),
              Param("normalize", True, "unit-normalise every sample first (cosine similarity, "
                    "as in the paper)"),
              max_samples_param(2000), *common_params())
    _fn: Any = None

    def statistic(self, params: dict[str, Any], seed: int, stimulus: Any) -> Statistic:
        k, norm, fn = params["k"], params["normalize"], type(self)._fn
        return lambda x, y: fn(x, y, k, norm)

    def attrs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"k": params["k"], "normalize": params["normalize"]}

    def null_statistic(self, x: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> Any:
        gx, gy = (Graph(t, params["k"], params["normalize"]) for t in (x, y))
        return lambda m: self.from_graphs(gx, gy, m)

    def replicates(self, x: np.ndarray, y: np.ndarray, stimulus: np.ndarray,
                   params: dict[str, Any], seed: int, stat: Statistic) -> tuple[np.ndarray, str]:
        gx, gy = (Graph(t, params["k"], params["normalize"]) for t in (x, y))
        rows = bootstrap_rows(stimulus, params["n_boot"], seed)
        return self.resampled(gx, gy, rows), ("whole stimuli resampled, each sample's "
                                              "neighbours in the full data kept")

    def from_graphs(self, gx: Graph, gy: Graph, m: np.ndarray) -> float:  # pragma: no cover
        raise NotImplementedError

    def resampled(self, gx: Graph, gy: Graph, rows: list[np.ndarray]
                  ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class MutualKNN(_Neighbours):
    """Mutual k-NN alignment: the share of each sample's k nearest neighbours the systems share."""

    name = "mutual_knn"
    range = (0.0, 1.0)
    description = ("Mutual k-nearest-neighbour alignment: the mean share of each sample's k "
                   "nearest neighbours (cosine) that are the same in both systems; 1 = same "
                   "neighbourhoods. Invariant to any transform that keeps neighbours.")
    _fn = staticmethod(mutual_knn)

    def from_graphs(self, gx: Graph, gy: Graph, m: np.ndarray) -> float:
        return float(mutual_overlaps(gx, gy, m).mean() / gx.k)

    def resampled(self, gx: Graph, gy: Graph, rows: list[np.ndarray]) -> np.ndarray:
        share = mutual_overlaps(gx, gy) / gx.k
        return np.array([share[i].mean() for i in rows])


class CKNNA(_Neighbours):
    """CKNNA: centred kernel alignment over mutual nearest neighbours only."""

    name = "cknna"
    range = (-1.0, 1.0)
    description = ("Centred kernel nearest-neighbour alignment: debiased CKA of the cosine "
                   "kernels restricted to pairs that are k nearest neighbours in both systems "
                   "(k = n - 1 gives debiased CKA).")
    _fn = staticmethod(cknna)

    def from_graphs(self, gx: Graph, gy: Graph, m: np.ndarray) -> float:
        return cknna_sparse(cknna_parts(gx, gy, m))

    def resampled(self, gx: Graph, gy: Graph, rows: list[np.ndarray]) -> np.ndarray:
        counts = np.stack([np.bincount(i, minlength=gx.n) for i in rows])
        return cknna_resampled(cknna_parts(gx, gy), counts)


@hookimpl
def simbench_measures() -> list[Any]:
    """Register ``mutual_knn`` and ``cknna``."""
    return [MutualKNN(), CKNNA()]
