"""Stepwise MAS on language models: what the ``mas`` measure runs when its systems are LMs.

The measure's own parameters apply (``k``, ``within``, ``control``, ``null``, ``lr``,
``batch_size``, ``n_train``/``n_val``/``n_test``, ``max_steps``, ``eval_every``, ``patience``,
``stop_at``); the prompts and the continuation length come from the systems' task
(:class:`~simbench.tasks.continuation.Continuation`, set by ``--prompts`` and
``--new-tokens``). Interventions are always stepwise: a transformer recomputes its state from
the context, so a patch at one position alone would be read around.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from simbench.errors import ParameterError, SimbenchError, TaskError
from simbench.lm.kind import is_language_model
from simbench.result import Score
from simbench.stats import pooled_iia
from simbench.tasks.continuation import CONTINUATION, Continuation

#: untrained random subspace ``j`` of a null for system ``i`` uses seed ``seed + STRIDE*(j+1)+i``


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


def score_mas(measure: Any, systems: Sequence[Any], *, site: str, seed: int, device: str,
              params: dict[str, Any]) -> Score:
    """Stepwise MAS IIA between language models (cross directions; see
    :mod:`simbench.lm.data` for the intervention)."""
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
    from simbench.interventions.frozen import frozen_on

    with contextlib.ExitStack() as stack:
        for s in systems:
            stack.enter_context(frozen_on(s.module, device))
        return _align(measure, systems, task, site=site, seed=seed, device=device,
                      params=params)


def _align(measure: Any, systems: Sequence[Any], task: Continuation, *, site: str, seed: int,
           device: str, params: dict[str, Any]) -> Score:
    from simbench.calibration.causal_null import random_subspace_null
    from simbench.interventions.engine import EngineConfig, Party, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.interventions.subspace import check_subspace_size, random_subspace
    from simbench.lm.data import OwnBehaviour
    from simbench.lm.engine import LMEngine
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
    directions = directions_for(n, within=params.get("within", True) or n == 1)
    imap = SubspaceMap([p.width for p in parties], k, seed=seed)
    cfg = EngineConfig(lr=params["lr"], batch_size=params["batch_size"],
                       n_train=params["n_train"], n_val=params["n_val"],
                       n_test=params["n_test"], max_steps=params["max_steps"],
                       eval_every=params["eval_every"], patience=params["patience"],
                       stop_at=params.get("stop_at", 1.0), gain_se=params.get("gain_se", 0.0),
                       stepwise=True,
                       pool_size=len(task.prompts), seed=seed, device=device)
    engine = LMEngine(parties, imap, directions, cfg, behaviour=behaviour)
    log = None
    if params.get("control"):
        for i, p in enumerate(parties):
            imap.fix(i, random_subspace(p.width, k, seed + i).to(device))
    else:
        log = engine.train(progress=params.get("progress", True), label=f"mas k={k}")
    results = engine.evaluate("test")
    cross = [d for d in directions if d[0] != d[1]] or directions
    null_values = random_subspace_null(engine, [p.width for p in parties], k,
                                       int(params.get("null", 0) or 0), seed, cross)
    return _score(measure, parties, directions, cross, results, log, null_values, task,
                  k=k, site=site, seed=seed, cached=engine.cached and runners[0].fast)


def _score(measure: Any, parties: Sequence[Any], directions: Sequence[tuple[int, int]],
           cross: Sequence[tuple[int, int]], results: dict, log: Any, null_values: list,
           task: Continuation, *, k: int, site: str, seed: int, cached: bool) -> Score:
    import numpy as np
    import xarray as xr

    names = [p.system_id for p in parties]
    value, ci, n_samples = pooled_iia(results, cross)
    labels = [f"{i}:{nm}" if names.count(nm) > 1 else nm for i, nm in enumerate(names)]
    breakdown = {}
    for level in ("trial", "token"):
        m = np.full((len(names), len(names)), np.nan)
        for (s, t), r in results.items():
            m[s, t] = r[level]
        breakdown[f"iia_{level}"] = xr.DataArray(m, dims=("source", "target"),
                                                 coords={"source": labels, "target": labels})
    within = [d for d in directions if d[0] == d[1]]
    train = ({"loaded": False, "control": True} if log is None else
             {"steps": log.steps, "seconds": round(log.seconds, 3), "stopped": log.stopped,
              "best_step": log.best_step, "best_val": log.best_val, "val_metric": log.metric,
              "interventions_per_s": round(log.interventions_per_s, 1)})
    attrs = {"k": k, "variables": [CONTINUATION] * len(names), "directions": len(directions),
             "train": train, "control": log is None, "stepwise": True,
             "within_iia": (sum(results[d]["trial"] for d in within) / len(within)
                            if within else None),
             "token_iia": sum(results[d]["token"] for d in cross) / len(cross),
             "prompts": task.origin, "n_prompts": len(task.prompts),
             "new_tokens": task.new_tokens, "prefix_cache": cached,
             "iia_note": "trial = whole continuation right; token = share of the source's "
                         "continuation tokens after the step predicted right"}
    score = Score(measure=measure.name, value=value, systems=tuple(names), site=site, ci=ci,
                  n_samples=n_samples, breakdown=breakdown, attrs=attrs)
    if null_values:
        from simbench.calibration.causal_null import random_subspace_null_result
        from simbench.calibration.scoring import with_null

        score = with_null(score, random_subspace_null_result(value, null_values, k=k, seed=seed,
                                                             what="interventions"))
    return score


__all__ = ["check_same_tokenizer", "is_language_model", "score_mas"]
