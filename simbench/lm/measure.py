"""Stepwise MAS on language models: what the ``mas`` measure runs when its systems are LMs.

The measure's own parameters apply; the prompts and the continuation length come from the
systems' task (:class:`~simbench.tasks.continuation.Continuation`: ``--prompts``,
``--new-tokens``). Interventions are always stepwise: a transformer recomputes its state from
the context, so a patch at one position alone would be read around.

The protocol is the paper's (Grant 2025's ``language/`` code; the documentation's guide,
"Language models"): the site defaults to ``embedding`` (:data:`LM_SITE`: at a middle layer the
layers below keep attending to the target's own prefix, so not even a model aligned with itself
continues as itself); the step is drawn away from both ends (:mod:`simbench.lm.data`); **token
IIA is the value**, the whole-continuation IIA comes in ``attrs["trial_iia"]``; every score
carries each model's within-model IIA as its ceiling (:func:`ceiling`, with a warning under
:data:`CEILING_WARN`); training starts from the data
(:func:`simbench.lm.engine.init_from_prompts`) and takes :data:`LM_DEFAULTS` wherever the
generic default was left in place.

While a measure runs the models compute with the fused kernels of :mod:`simbench.lm.kernels`
(:data:`FAST_KERNELS`: the same function, logits equal to 1e-5); no protocol default changed
for speed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from simbench.errors import ParameterError, SimbenchError, TaskError
from simbench.lm.kind import LM_SITE, is_language_model
from simbench.result import Score
from simbench.stats import pooled_iia
from simbench.tasks.continuation import CONTINUATION, Continuation

#: the measure's parameters that language models default differently (see the module): a
#: parameter still at the measure's generic default takes this value
LM_DEFAULTS: dict[str, Any] = {"init": "pca", "batch_size": 64, "n_val": 256, "n_test": 500,
                               "max_steps": 200, "eval_every": 25, "patience": 2,
                               "stop_at": 0.98}
#: whole-continuation within-model IIA under which a score warns that its site cannot express
#: identity (a model aligned with itself should continue as itself)
CEILING_WARN = 0.8
#: run the models with fused kernels while they are aligned (:mod:`simbench.lm.kernels`: the
#: same function, logits equal to about 1e-5; False: the models' own kernels)
FAST_KERNELS = True
#: what ``Score.value`` is for language models
HEADLINE = "token"


def check_same_tokenizer(systems: Sequence[Any]) -> None:
    """Refuse language models whose tokenizers differ: the behavioural counterfactual (the
    source's tokens) must mean the same in the target."""
    first = systems[0]
    vocab = first.vocab()
    for other in systems[1:]:
        theirs = other.vocab()
        if theirs == vocab:
            continue
        only_a = sorted(set(vocab) - set(theirs))[:3]
        only_b = sorted(set(theirs) - set(vocab))[:3]
        moved = sorted(t for t in set(vocab) & set(theirs) if vocab[t] != theirs[t])[:3]
        detail = "; ".join(part for part in (
            f"only in '{first.system_id}': {', '.join(map(repr, only_a))}" if only_a else "",
            f"only in '{other.system_id}': {', '.join(map(repr, only_b))}" if only_b else "",
            f"other ids for {', '.join(map(repr, moved))}" if moved else "") if part)
        raise TaskError(
            f"'{first.system_id}' and '{other.system_id}' have different tokenizers "
            f"({len(vocab)} vs {len(theirs)} tokens; {detail}); the target must produce the "
            "source's tokens, which needs one token space", field="tokenizer",
            fix="compare models that share a tokenizer (e.g. fine-tunes of one base)")


def shared_task(systems: Sequence[Any]) -> Continuation:
    """The prompts and continuation length every system is aligned on (the first system's
    that has prompts; the others must agree)."""
    with_prompts = [s.task_def for s in systems if s.task_def.prompts]
    if not with_prompts:
        raise TaskError("no prompts for the language models", field="prompts",
                        fix="pass --prompts FILE (one prompt per line); in Python "
                        "score(..., prompts='file.txt' or a list)")
    task = with_prompts[0]
    for other in with_prompts[1:]:
        if (other.prompts, other.new_tokens) != (task.prompts, task.new_tokens):
            raise TaskError("the language models were given different prompts or "
                            "continuation lengths", field="prompts",
                            fix="give every model the same prompts (--prompts FILE)")
    if len(task.prompts) < 3:
        raise TaskError(f"{len(task.prompts)} prompt(s): training, validation and test need "
                        "at least 3", field="prompts", fix="give more prompts")
    return task


def lm_params(measure: Any, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``params`` with :data:`LM_DEFAULTS` in place of the measure's generic defaults, and the
    values so replaced."""
    generic = {p.name: p.default for p in getattr(measure, "params", ())}
    out, applied = dict(params), {}
    for name, value in LM_DEFAULTS.items():
        if name in generic and out.get(name, generic[name]) == generic[name]:
            out[name] = value
            if value != generic[name]:
                applied[name] = value
    return out, applied


def score_mas(measure: Any, systems: Sequence[Any], *, site: str | None, seed: int,
              device: str, params: dict[str, Any]) -> Score:
    """Stepwise MAS IIA between language models (cross directions; see
    :mod:`simbench.lm.data` for the intervention), at the protocol of the module docstring."""
    site = site or LM_SITE
    if not all(is_language_model(s) for s in systems):
        raise SimbenchError("language models can only be aligned with language models here",
                            field="systems", fix="score LMs with LMs")
    if params.get("variable") not in ("", None, CONTINUATION):
        raise ParameterError(f"--variable {params['variable']}: a language model's behaviour "
                             f"is its whole continuation ('{CONTINUATION}')", field="variable",
                             fix="drop --variable")
    if params.get("save") or params.get("load"):
        raise ParameterError("--save/--load are not supported for language models yet",
                             field="save", fix="drop --save/--load")
    check_same_tokenizer(systems)
    task = shared_task(systems)
    params, applied = lm_params(measure, params)
    from simbench.interventions.frozen import frozen_on
    from simbench.lm.kernels import fast_kernels

    with contextlib.ExitStack() as stack:
        for s in systems:
            stack.enter_context(frozen_on(s.module, device))
            if FAST_KERNELS:
                stack.enter_context(fast_kernels(s.module, device))
        return _align(measure, systems, task, site=site, seed=seed, device=device,
                      params=params, applied=applied)


def _align(measure: Any, systems: Sequence[Any], task: Continuation, *, site: str, seed: int,
           device: str, params: dict[str, Any], applied: dict[str, Any]) -> Score:
    """Train and score stepwise MAS at the protocol of the module docstring."""
    from simbench.interventions.engine import EngineConfig, Party, directions_for, iia_matrices
    from simbench.interventions.maps import SubspaceMap
    from simbench.interventions.subspace import check_subspace_size, random_subspace
    from simbench.lm.data import MIN_AFTER, MIN_BEFORE, OwnBehaviour
    from simbench.lm.engine import LMEngine, init_from_prompts
    from simbench.lm.runner import LMRunner
    from simbench.lm.text import greedy_continue

    k = params["k"]
    runners = [LMRunner(s, site, fast=params.get("fast", True)) for s in systems]
    check_subspace_size(k, [(r.system.system_id, r.width) for r in runners], site)
    behaviour = []
    for s in systems:
        ids = s.encode(task.prompts, task.new_tokens)
        conts = greedy_continue(s.module, ids, task.new_tokens, pad=s.pad, side=s.padding_side)
        behaviour.append(OwnBehaviour.build(ids, conts, s.pad))
    parties = [Party(s.system_id, task, CONTINUATION, r.width, r)  # type: ignore[arg-type]
               for s, r in zip(systems, runners)]
    n = len(parties)
    # the within-model directions are the ceiling: always trained and scored (--within false
    # is refused below rather than silently giving a score without its ceiling)
    if params.get("within") is False and n > 1:
        raise ParameterError("--within false: language-model scores carry each model's "
                             "within-model IIA as their ceiling, which needs the within-model "
                             "directions", field="within", fix="drop --within false")
    directions = directions_for(n, within=True)
    imap = SubspaceMap([p.width for p in parties], k, seed=seed)
    cfg = EngineConfig.from_params(params, stepwise=True, pool_size=len(task.prompts), seed=seed,
                                   device=device, values=None)
    engine = LMEngine(parties, imap, directions, cfg, behaviour=behaviour)
    log = None
    init = "random"
    if params.get("control"):
        for i, p in enumerate(parties):
            imap.fix(i, random_subspace(p.width, k, seed + i).to(device))
    else:
        if params.get("init", "random") == "pca" and init_from_prompts(engine):
            init = "pca"
        log = engine.train(progress=params.get("progress", True), label=f"mas k={k}")
    results = engine.evaluate("test")
    cross = [d for d in directions if d[0] != d[1]] or directions
    null_values = _token_null(engine, parties, k, int(params.get("null", 0) or 0), seed, cross)
    names = [p.system_id for p in parties]
    trial, trial_ci, n_samples = pooled_iia(results, cross)
    value, ci = _token_ci(results, cross)
    labels = [f"{i}:{nm}" if names.count(nm) > 1 else nm for i, nm in enumerate(names)]
    within = [d for d in directions if d[0] == d[1]]
    train = ({"loaded": False, "control": True} if log is None else
             {**log.summary(), "init": init})
    roof = ceiling(labels, directions, cross, results, site)
    attrs = {"k": k, "variables": [CONTINUATION] * len(names), "directions": len(directions),
             "train": train, "control": log is None, "stepwise": True,
             "headline": HEADLINE,
             "headline_note": "language models: the value is token IIA (the paper's measure "
                              "for language models); trial_iia is the whole-continuation IIA",
             "token_iia": value, "trial_iia": trial,
             "trial_ci": [float(x) for x in trial_ci] if trial_ci is not None else None,
             "within_iia": (sum(results[d]["trial"] for d in within) / len(within)
                            if within else None),
             "within_token_iia": (sum(results[d]["token"] for d in within) / len(within)
                                  if within else None),
             "ceiling": roof,
             "lm_protocol": {"site_default": LM_SITE, "step": f"uniform, at least {MIN_BEFORE} "
                             f"positions before it and {MIN_AFTER} source tokens after it",
                             "init": init, "defaults_applied": dict(applied or {})},
             "prompts": task.origin, "n_prompts": len(task.prompts),
             "new_tokens": task.new_tokens,
             "prefix_cache": engine.cached and runners[0].fast,
             "iia_note": "trial = whole continuation right; token = share of the source's "
                         "continuation tokens after the step predicted right"}
    if "warning" in roof:
        attrs["warning"] = roof["warning"]
    score = Score(measure=measure.name, value=value, systems=tuple(names), site=site, ci=ci,
                  n_samples=n_samples, breakdown=iia_matrices(results, names), attrs=attrs)
    if null_values:
        from simbench.calibration.causal_null import random_subspace_null_result
        from simbench.calibration.scoring import with_null

        score = with_null(score, random_subspace_null_result(
            value, null_values, k=k, seed=seed, what="interventions (token IIA)"))
    return score


def _token_null(engine: Any, parties: Sequence[Any], k: int, n: int, seed: int,
                cross: Sequence[tuple[int, int]]) -> list[float]:
    """``n`` cross-model token IIAs with every subspace replaced by an untrained random one
    (the seeds of :func:`simbench.calibration.causal_null.random_subspace_null`); only the
    cross directions are evaluated."""
    from simbench.calibration.causal_null import NULL_SEED_STRIDE
    from simbench.interventions.subspace import random_subspace

    out = []
    for j in range(n):
        for i, p in enumerate(parties):
            sub = random_subspace(p.width, k, seed + NULL_SEED_STRIDE * (j + 1) + i)
            engine.imap.fix(i, sub.to(engine.cfg.device))
        res = engine.evaluate("test", directions=cross)
        out.append(sum(res[d]["token"] for d in cross) / len(cross))
    return out


def _token_ci(results: dict, keys: Sequence[tuple[int, int]]) -> tuple[float, tuple[float, float]]:
    """Mean token IIA over ``keys`` and a normal-approximation 95% interval from the
    per-intervention token shares (pooled over the directions)."""
    import numpy as np

    shares = np.concatenate([np.asarray(results[d]["token_rows"], dtype=float) for d in keys])
    value = float(np.mean([results[d]["token"] for d in keys]))
    if shares.size < 2:
        return value, (float("nan"), float("nan"))
    half = 1.96 * float(shares.std(ddof=1)) / float(np.sqrt(shares.size))
    return value, (max(0.0, value - half), min(1.0, value + half))


def ceiling(names: Sequence[str], directions: Sequence[tuple[int, int]],
            cross: Sequence[tuple[int, int]], results: dict, site: str = "") -> dict[str, Any]:
    """Each model's within-model IIA (token and whole continuation), the cross IIA normalised
    by the mean of the two models' within-model IIA per direction, and the warning when a
    model's whole-continuation within-model IIA is under :data:`CEILING_WARN`."""
    within = {i: results[(i, i)] for i in range(len(names)) if (i, i) in results}
    per_model = {names[i]: {"token": round(r["token"], 4), "trial": round(r["trial"], 4)}
                 for i, r in within.items()}
    out: dict[str, Any] = {"within": per_model, "warn_below": CEILING_WARN}
    for level in ("token", "trial"):
        ratios = []
        for s, t in cross:
            if s in within and t in within:
                roof = (within[s][level] + within[t][level]) / 2
                ratios.append(results[(s, t)][level] / roof if roof > 0 else float("nan"))
        out[f"within_{level}"] = (sum(r[level] for r in within.values()) / len(within)
                                  if within else None)
        out[f"normalised_{level}"] = sum(ratios) / len(ratios) if ratios else None
    low = [nm for nm, v in per_model.items() if v["trial"] < CEILING_WARN]
    out["ok"] = not low
    if low:
        out["warning"] = (f"within-model whole-continuation IIA under {CEILING_WARN} for "
                          f"{', '.join(low)}: at this site a model aligned with itself does not "
                          "continue as itself, so the site cannot express identity and cross "
                          "IIA sits under that ceiling"
                          + (f" (try site = {LM_SITE})" if site and site != LM_SITE else ""))
    return out


def describe_lm_score(score: Score) -> list[str]:
    """A few lines on an LM MAS score: the headline, the whole-continuation IIA, each model's
    within-model ceiling and the cross IIA normalised by it, and the warning if any."""
    a = score.attrs
    roof = a.get("ceiling") or {}
    trial_ci = a.get("trial_ci") or [float("nan"), float("nan")]
    lines = [f"\nheadline: token IIA {score.value:.4f} (language models, as in the paper: the "
             "share of the source's continuation tokens after the step that the patched "
             "target predicts); whole-continuation IIA "
             f"{a.get('trial_iia', float('nan')):.4f} [{trial_ci[0]:.3f}, {trial_ci[1]:.3f}]"]
    within = roof.get("within") or {}
    if within:
        per = "; ".join(f"{nm}: token {v['token']:.3f}, whole {v['trial']:.3f}"
                        for nm, v in within.items())
        lines.append(f"ceiling (each model aligned with itself in the same training): {per}")
        norm = [f"{lvl} {roof[f'normalised_{lvl}']:.3f}" for lvl in ("token", "trial")
                if roof.get(f"normalised_{lvl}") is not None]
        if norm:
            lines.append("cross IIA / within-model IIA: " + ", ".join(norm))
    if a.get("warning"):
        lines.append(f"WARNING: {a['warning']}")
    return lines


__all__ = [
    "CEILING_WARN",
    "HEADLINE",
    "LM_DEFAULTS",
    "LM_SITE",
    "ceiling",
    "check_same_tokenizer",
    "describe_lm_score",
    "is_language_model",
    "lm_params",
    "score_mas",
]
