"""Model Alignment Search: one aligned subspace per frozen network, trained so that patching it
across networks (and within each) makes the target behave as the causal model predicts.

The score of a pair is the mean trial-level IIA of the cross-model directions on held-out
counterfactuals; within-model IIA and token-level IIA come alongside in the breakdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simbench_plugins import _causal

# importable from here too, where they were first defined
from simbench_plugins._causal import NULL_DRAW, NULL_DRAWS, NULL_HELP, align_subspaces

from simbench import hookimpl
from simbench.calibration.scoring import null_param
from simbench.measure import Measure, Param
from simbench.result import Score

__all__ = ["MAS", "NULL_DRAW", "NULL_DRAWS", "NULL_HELP", "align_subspaces"]


class MAS(_causal.CausalMeasure):
    name = "mas"
    access = ("accessible",)
    max_systems = None
    citation = "Grant (2025), Model Alignment Search, arXiv:2501.06164"
    description = ("cross-model interchange intervention accuracy after aligning one "
                   "k-dimensional subspace per network (N networks, N matrices)")
    params = (
        Param("k", 16, "aligned subspace size (sweep with --k 1,2,4,8,16,32)", low=1),
        Param("within", True, "train the within-model directions too (keeps the subspace "
              "causal rather than a stitch through the null space)"),
        Param("init", "auto", "starting subspaces: 'auto' (default: the 'data' start where "
              "it already aligns the networks, its cross-model validation IIA at least 0.1 "
              "above the random start's, else the random one; the score's attrs say which), "
              "'random', 'data' (the first network's top-k directions of its raw latents, the "
              "others matched to them by orthogonal Procrustes on the same stimuli) or 'pca' "
              "(the same on centred latents); the data starts fall back to random when the "
              "networks see different stimuli", kind=str, choices=("auto", "random", "data",
                                                                   "pca")),
        Param("control", False, "score a random, untrained subspace instead (the measure "
              "can fail: IIA near chance)"),
        null_param(NULL_HELP),
        NULL_DRAW,
        *_causal.ENGINE_PARAMS,
    )

    def score(self, systems: Sequence[Any], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        from simbench.lm.kind import is_language_model

        if any(is_language_model(s) for s in systems):  # stepwise MAS on their behaviour
            from simbench.lm.measure import score_mas

            return score_mas(self, systems, site=site, seed=seed, device=device, params=params)
        return align_subspaces(self, systems, site=site, task=task, seed=seed, device=device,
                               params=params, within=params["within"])


@hookimpl
def simbench_measures() -> list[Measure]:
    return [MAS()]
