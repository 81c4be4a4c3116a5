"""Distributed Alignment Search: align one network with its task's causal model.

MAS with a single system: within-model interventions only, the counterfactual label from the
causal model. Same engine, N = 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simbench_plugins import _causal
from simbench_plugins._causal import NULL_DRAW, NULL_HELP, align_subspaces

from simbench import hookimpl
from simbench.calibration.scoring import null_param
from simbench.measure import Measure, Param
from simbench.result import Score


class DAS(_causal.CausalMeasure):
    name = "das"
    access = ("accessible",)
    min_systems = 1
    max_systems = 1
    citation = "Geiger et al. (2023), Finding Alignments Between Interpretable Causal " \
               "Variables and Distributed Neural Representations"
    description = "IIA of a k-dimensional subspace aligned with the task's causal variable"
    params = (
        Param("k", 16, "aligned subspace size", low=1),
        Param("control", False, "score a random, untrained subspace instead"),
        null_param(NULL_HELP),
        NULL_DRAW,
        *_causal.ENGINE_PARAMS,
    )

    def score(self, systems: Sequence[Any], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        return align_subspaces(self, systems, site=site, task=task, seed=seed, device=device,
                               params=params, within=True)


@hookimpl
def simbench_measures() -> list[Measure]:
    return [DAS()]
