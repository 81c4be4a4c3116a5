"""The CCA measures: ``svcca`` and ``pwcca`` (numbers from :mod:`simbench.estimators.cca`)."""

from __future__ import annotations

from typing import Any

from simbench_plugins._paired import PairedRowMeasure, common_params

from simbench import hookimpl
from simbench.estimators.cca import pwcca_of, svcca_of
from simbench.measure import Param


class SVCCA(PairedRowMeasure):
    """SVCCA: mean canonical correlation of the two systems' leading principal subspaces."""

    name = "svcca"
    symmetric = True
    higher_is_better = True
    range = (0.0, 1.0)
    citation = ("Raghu, Gilmer, Yosinski & Sohl-Dickstein (2017). SVCCA: Singular Vector "
                "Canonical Correlation Analysis for Deep Learning Dynamics and "
                "Interpretability. NeurIPS.")
    description = ("SVCCA: each system reduced to the principal components explaining `var` of "
                   "its variance, then the mean canonical correlation. Needs more samples than "
                   "kept components (with n <= d every correlation is 1).")
    params = (Param("var", 0.99, "share of each system's variance its kept components explain",
                    low=1e-9, high=1.0), *common_params())

    def moment_statistic(self, params: dict[str, Any]) -> Any:
        return lambda m: svcca_of(m, params["var"])

    def attrs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"var": params["var"]}


class PWCCA(PairedRowMeasure):
    """PWCCA: canonical correlations weighted by how much of the first system each carries."""

    name = "pwcca"
    symmetric = False  # the weights come from the first system
    higher_is_better = True
    range = (0.0, 1.0)
    citation = ("Morcos, Raghu & Bengio (2018). Insights on representational similarity in "
                "neural networks with canonical correlation. NeurIPS.")
    description = ("Projection-weighted CCA: the mean of the canonical correlations weighted by "
                   "the first system's activity along each canonical variate (asymmetric).")
    params = common_params()

    def moment_statistic(self, params: dict[str, Any]) -> Any:
        return pwcca_of


@hookimpl
def simbench_measures() -> list[Any]:
    """Register ``svcca`` and ``pwcca``."""
    return [SVCCA(), PWCCA()]
