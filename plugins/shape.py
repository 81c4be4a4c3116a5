"""The shape-metric measures: ``procrustes_angular``, ``shape_metric`` and ``soft_matching``.

``procrustes_angular`` is not called ``procrustes``: that name is the README's example plugin.

The numbers come from :mod:`simbench.estimators.shape`; pairing, the bootstrap interval over
stimuli and the permutation null from :mod:`simbench_plugins._paired`.
"""

from __future__ import annotations

import math
from typing import Any

from simbench_plugins._paired import PairedRowMeasure, common_params

from simbench import hookimpl
from simbench.estimators.shape import SOFT_NORMALIZE, shape_distance_of, soft_matching_of
from simbench.measure import Param

SHAPE_CITATION = ("Williams, Kunz, Kornblith & Linderman (2021). Generalized Shape Metrics on "
                  "Neural Representations. NeurIPS.")
SOFT_CITATION = ("Khosla & Williams (2024). Soft Matching Distance: A metric on neural "
                 "representations that captures single-neuron tuning. UniReps (PMLR 243).")


class ShapeMetric(PairedRowMeasure):
    """The generalized shape metric family: CCA (alpha 0) through Procrustes (alpha 1)."""

    name = "shape_metric"
    symmetric = True
    higher_is_better = False
    range = (0.0, math.pi / 2)
    #: the angle between independent systems as the samples grow (for the small-n bias check)
    independent_value = math.pi / 2
    citation = SHAPE_CITATION
    description = ("Generalized shape metric (angular): partial whitening "
                   "X (alpha I + (1 - alpha) C^-1/2), then the Procrustes angle; alpha 0 = CCA "
                   "(invariant to any invertible linear map), 1 = Procrustes.")
    params = (Param("alpha", 0.5, "whitening: 0 = CCA (full whitening), 1 = Procrustes (none)",
                    low=0.0, high=1.0), *common_params())

    def alpha(self, params: dict[str, Any]) -> float:
        """The whitening of this measure: its ``alpha`` parameter."""
        return params["alpha"]

    def moment_statistic(self, params: dict[str, Any]) -> Any:
        alpha = self.alpha(params)
        return lambda m: shape_distance_of(m, alpha)

    def attrs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"alpha": self.alpha(params), "units": "radians"}


class Procrustes(ShapeMetric):
    """Procrustes angular distance: the angle between two centred representations after the
    best rotation of one onto the other (zero-padded to the same width): alpha fixed at 1."""

    name = "procrustes_angular"
    description = ("Procrustes angular distance arccos(||X'Y||_* / (||X|| ||Y||)) of the "
                   "centred activity (radians); 0 = same representation up to rotation, "
                   "translation and isotropic scaling. A metric (Williams et al. 2021, alpha=1).")
    params = common_params()

    def alpha(self, params: dict[str, Any]) -> float:
        return 1.0


class SoftMatching(PairedRowMeasure):
    """Soft matching distance: optimal transport between the two systems' units."""

    name = "soft_matching"
    symmetric = True
    higher_is_better = False
    range = (0.0, 2.0)
    #: between independent systems the cost of any plan tends to 1 + 1 (normalize scale, unit)
    independent_value = math.sqrt(2.0)
    citation = SOFT_CITATION
    description = ("Soft matching distance: the cheapest transport of one system's units "
                   "(tuning curves over the samples) onto the other's; invariant to permuting "
                   "units, not to rotating them, so it sees single-unit tuning.")
    params = (Param("normalize", "scale", "scale: each system scaled so its units' mean "
                    "squared norm is 1 (range [0, 2]); unit: every unit norm 1 (cost 2 - 2r); "
                    "none: raw centred activity", choices=SOFT_NORMALIZE), *common_params())

    def moment_statistic(self, params: dict[str, Any]) -> Any:
        return lambda m: soft_matching_of(m, params["normalize"])

    def attrs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"normalize": params["normalize"]}


@hookimpl
def simbench_measures() -> list[Any]:
    """Register ``procrustes_angular``, ``shape_metric`` and ``soft_matching``."""
    return [Procrustes(), ShapeMetric(), SoftMatching()]
