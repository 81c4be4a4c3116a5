"""Model Alignment Search: one aligned subspace per frozen network, trained so that patching it
across networks (and within each) makes the target behave as the causal model predicts.

The score of a pair is the mean trial-level IIA of the cross-model directions on held-out
counterfactuals; within-model IIA and token-level IIA come alongside in the breakdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simbench_plugins import _causal

from simbench import hookimpl
from simbench.calibration.scoring import null_param, with_null
from simbench.measure import Measure, Param
from simbench.result import Score

NULL_HELP = ("draws: untrained random subspaces of the same k on the same held-out "
             "counterfactuals (null_draw = subspaces), or the trained alignment on held-out "
             "counterfactuals re-paired with random other sources (null_draw = shuffled)")
#: the two nulls of mas and das (see simbench.calibration.causal_null)
NULL_DRAWS = ("subspaces", "shuffled")
NULL_DRAW = Param("null_draw", "subspaces", "how --null draws: 'subspaces' (untrained random "
                  "subspaces of the same k: did training matter?) or 'shuffled' (sources "
                  "re-paired with other interventions' labels: is the value really carried?)",
                  choices=NULL_DRAWS)


class MAS(Measure):
    name = "mas"
    family = "causal"
    null = "own"  # a distribution over untrained random subspaces (see align_subspaces)
    access = ("accessible",)
    min_systems = 2
    max_systems = None
    symmetric = True
    higher_is_better = True
    range = (0.0, 1.0)
    needs_task = True
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


def align_subspaces(measure: Measure, systems: Sequence[Any], *, site: str, task: str | None,
                    seed: int, device: str, params: dict[str, Any], within: bool) -> Score:
    """Train one subspace per system over every direction; score the cross directions.

    With ``params["null"]`` = N > 0 the score also carries a null: the same held-out
    counterfactuals scored through N sets of untrained random subspaces of the same k (the
    control, over N seeds), evaluated after the score itself.
    """
    from simbench.calibration.causal_null import (
        random_subspace_null,
        random_subspace_null_result,
        shuffled_null_result,
        shuffled_source_null,
    )
    from simbench.interventions.engine import Engine, directions_for
    from simbench.interventions.init import choose_start
    from simbench.interventions.maps import SubspaceMap
    from simbench.interventions.subspace import random_subspace

    k = params["k"]
    with _causal.networks_on(device) as nets:
        parties = _causal.build_parties(systems, nets, site=site, task=task,
                                        variable=params["variable"])
        _causal.check_k(k, parties, site)
        n = len(parties)
        directions = directions_for(n, within=within or n == 1)
        imap = SubspaceMap([p.width for p in parties], k, seed=seed)
        engine = Engine(parties, imap, directions, _causal.engine_config(params, seed, device))
        start = ({"init": "random"} if params.get("control") or params.get("load")
                 else choose_start(engine, params.get("init", "random")))  # DAS: no init param
        # a start from the data that is already near stop_at is validated before training: it
        # may be the best alignment within the step cap (a network against itself or a
        # re-parametrization); one far below it (GRU seeds: ~0.6) is left to training
        check = start.get("init_check")
        engine.cfg.validate_start = start["init"] != "random" and (
            check is None or check["data"] >= engine.cfg.stop_at - check["margin"])
        meta = {"measure": measure.name, "systems": [p.system_id for p in parties],
                "site": site, "k": k, "variables": _causal.variables_of(parties)}
        if params.get("control"):
            for i, p in enumerate(parties):
                imap.fix(i, random_subspace(p.width, k, seed + i).to(device))
            log, results = None, engine.evaluate("test")
        else:
            log, results = _causal.run_engine(engine, params, meta, f"{measure.name} k={k}")
        cross = [d for d in directions if d[0] != d[1]] or directions
        shuffled = params.get("null_draw", "subspaces") == "shuffled"
        if shuffled:
            null_values = shuffled_source_null(engine, cross, int(params.get("null", 0)), seed)
        else:
            null_values = random_subspace_null(engine, [p.width for p in parties], k,
                                               int(params.get("null", 0)), seed, cross)
    value, ci, n_samples = _causal.pooled(results, cross)
    names = [p.system_id for p in parties]
    breakdown = _causal.iia_matrices(results, names)
    within_dirs = [d for d in directions if d[0] == d[1]]
    attrs = {"k": k, "variables": meta["variables"], "directions": len(directions),
             "train": _causal.train_summary(log), "control": bool(params.get("control")),
             **start,
             "within_iia": (sum(results[d]["trial"] for d in within_dirs) / len(within_dirs)
                            if within_dirs else None),
             "token_iia": sum(results[d]["token"] for d in cross) / len(cross)}
    score = Score(measure=measure.name, value=value, systems=tuple(names), site=site, ci=ci,
                  n_samples=n_samples, breakdown=breakdown, attrs=attrs)
    if null_values and shuffled:
        score = with_null(score, shuffled_null_result(value, null_values, seed=seed,
                                                      directions=cross, names=names))
    elif null_values:
        score = with_null(score, random_subspace_null_result(value, null_values, k=k, seed=seed))
    return score


@hookimpl
def simbench_measures() -> list[Measure]:
    return [MAS()]
