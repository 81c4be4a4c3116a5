"""What every causal measure shares: parameters, building parties, running the engine, scoring.

MAS, DAS, CLMAS and both stitches differ only in their map, directions and extra losses. A
measure takes each network's model through :func:`networks_on` (:meth:`Networks.model`), so it
runs frozen on the measure's device and is handed back as it was when the measure ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simbench.calibration.scoring import with_null
from simbench.errors import AccessError, ParameterError, SimbenchError, TaskError
from simbench.measure import Measure, Param
from simbench.result import Score

if TYPE_CHECKING:  # simbench.systems loads xarray: plugins import it only when they run
    from simbench.interventions.engine import Party
    from simbench.systems.accessible import PatchableModel

#: Default of ``gain_se``. Off: on a GRU seed pair and a GRU vs transformer pair the paired bound
#: at 1 SE stopped where plateau stopping did (an unpaired bound: 0.67x the steps, 0.012 lower
#: test IIA), so neither saves time without moving scores.
GAIN_SE = 0.0

# Parameters every engine-based measure takes (each measure adds its own).
ENGINE_PARAMS: tuple[Param, ...] = (
    Param("variable", "", "causal variable(s) to align: 'count'; 'count+phase' jointly; "
          "'a:b' maps system 1's a onto system 2's b (default: all of the task's variables "
          "jointly: the counterfactual sets every one of them to the source's values)",
          kind=str),
    Param("values", "", "restrict intervened values to 'lo:hi' (e.g. 1:10)", kind=str),
    Param("stepwise", False, "intervene at every position up to a sampled step (needed for "
          "transformers, which recompute from context)"),
    Param("lr", 1e-3, "Adam learning rate (paper: 1e-3)", low=0.0),
    Param("batch_size", 128, "interventions per direction per step", low=1),
    Param("n_train", 10_000, "training interventions per direction (paper: 10,000)", low=1),
    Param("n_val", 1_000, "validation interventions per direction (paper: 1,000)", low=1),
    Param("n_test", 1_000, "held-out test interventions per direction, for the score", low=1),
    Param("max_steps", 2_000, "step cap", low=1),
    Param("eval_every", 25, "steps between validations", low=1),
    Param("patience", 8, "validations without gain before early stopping", low=1),
    Param("gain_se", GAIN_SE, "a validation counts as a gain only when it beats the best by "
          "more than this many standard errors of their paired difference on the same "
          "validation rows (sqrt(rows that flipped) / n_val) as well as by 0.002; 0 (default): "
          "by 0.002 alone", low=0.0),
    Param("stop_at", 0.99, "stop once every trained direction reaches this validation IIA",
          low=0.0, high=1.0),
    Param("pool_size", 2_000, "stimuli per system in the training pool", low=16),
    Param("save", "", "write the trained alignment here (.safetensors + .json)", kind=str),
    Param("load", "", "load a trained alignment instead of training", kind=str),
    Param("progress", True, "show a progress bar"),
)


class CausalMeasure(Measure):
    """What every causal measure declares alike: it needs a task and draws its own null (see
    each measure's ``--null`` help)."""

    family = "causal"
    null = "own"
    needs_task = True


def variable_text(var: str | tuple[str, ...]) -> str:
    """A parsed variable back in ``--variable`` syntax (a tuple is joint: ``'count+phase'``)."""
    return var if isinstance(var, str) else "+".join(var)


def parse_variables(spec: str, tasks: Sequence[Any], names: Sequence[str]) -> list[Any]:
    """The variables each system aligns: a name, or a tuple intervened on jointly.

    ``''`` means every causal variable of the task, jointly (the counterfactual sets all of
    the target's variables to the source's values); ``'count'`` one shared variable;
    ``'count+phase'`` several jointly; ``'count:rem_ops'`` one per system.
    """
    kinds = sorted({t.name for t in tasks})

    def other_tasks(what: str) -> TaskError:
        return TaskError(f"systems are trained on different tasks ({', '.join(kinds)}) {what}",
                         field="variable", fix="map the variables per system, e.g. --variable "
                         + ":".join(t.variables[0] for t in tasks))

    if not spec:
        chosen: list[Any] = [tuple(t.variables) for t in tasks]
        if len({len(c) for c in chosen}) > 1 or len({c for c in chosen}) > 1:
            raise other_tasks("with different causal variables")
    elif ":" in spec:
        chosen = spec.split(":")
        if len(chosen) != len(tasks):
            raise ParameterError(f"--variable {spec} names {len(chosen)} variables for "
                                 f"{len(tasks)} systems", field="variable",
                                 fix="give one variable per system, e.g. count:rem_ops")
    else:
        chosen = [spec] * len(tasks)
    chosen = [tuple(c.split("+")) if isinstance(c, str) and "+" in c else c for c in chosen]
    for var, task, name in zip(chosen, tasks, names):
        for v in (var,) if isinstance(var, str) else var:
            if v in task.variables:
                continue
            if len(kinds) > 1 and ":" not in spec:
                raise other_tasks(f"and '{name}' ({task.name}) has no variable '{v}'")
            raise TaskError(f"task '{task.name}' of '{name}' has no causal variable '{v}'",
                            field="variable",
                            fix=f"variables of {task.name}: {', '.join(task.variables)}")
    return chosen


def variables_of(parties: Sequence[Any]) -> list[Any]:
    """Each party's aligned variable(s), JSON-shaped (a name, or a list of names)."""
    return [list(p.variable) if isinstance(p.variable, tuple) else p.variable for p in parties]


def parse_values(spec: str) -> tuple[int, int] | None:
    if not spec:
        return None
    try:
        lo, hi = (int(x) for x in spec.split(":"))
    except ValueError:
        raise ParameterError(f"--values {spec!r} is not 'lo:hi'", field="values",
                             fix="e.g. --values 1:10") from None
    if lo > hi:
        raise ParameterError(f"--values {spec}: lo > hi", field="values")
    return lo, hi


def engine_config(params: dict[str, Any], seed: int, device: str) -> Any:
    from simbench.interventions.engine import EngineConfig

    return EngineConfig.from_params(params, seed=seed, device=device,
                                    values=parse_values(params["values"]))


def system_task(system: Any, task: str | None) -> Any:
    """The task a system's counterfactuals come from (its own unless overridden)."""
    from simbench.registry import task_by_name

    name = task or system.task
    if name is None:
        raise TaskError(f"system '{system.system_id}' names no task", field="task",
                        fix="pass --task NAME (see `simbench tasks`)")
    return task_by_name(name if isinstance(name, str) else name.name)


class Networks:
    """The networks one causal measure runs (made by :func:`networks_on`): a model taken
    through :meth:`model` stays frozen on the device until that block ends."""

    def __init__(self, device: str, stack: ExitStack) -> None:
        self.device = device
        self._stack = stack
        self._held: set[int] = set()

    def model(self, system: Any) -> PatchableModel:
        """``system``'s patchable model, frozen on the device for the rest of the block."""
        from simbench.systems.accessible import AccessibleSystem, PatchableModel

        model = system.model if isinstance(system, AccessibleSystem) else None
        if not isinstance(model, PatchableModel):
            raise AccessError(
                f"system '{getattr(system, 'system_id', system)}' cannot be run and patched: a "
                "causal measure needs a system whose .model has run(tokens, edits=, record=) "
                "and site_dims", field="systems",
                fix="wrap a torch module as simbench.TorchSystem(module, task, sites={...}), "
                "or pass a zoo id or checkpoint")
        if id(model) not in self._held:
            from torch import nn

            from simbench.interventions.frozen import frozen_on

            if isinstance(model, nn.Module):
                self._stack.enter_context(frozen_on(model, self.device))
            self._held.add(id(model))
        return model


@contextmanager
def networks_on(device: str) -> Iterator[Networks]:
    """A :class:`Networks` for one measure; its networks are restored when the block ends."""
    with ExitStack() as stack:
        yield Networks(device, stack)


def build_parties(systems: Sequence[Any], nets: Networks, *, site: str, task: str | None,
                  variable: str) -> list[Party]:
    """One engine Party per accessible system: its task, variable, runner and site width."""
    from simbench.interventions.engine import Party
    from simbench.interventions.runners import make_runner

    tasks = [system_task(s, task) for s in systems]
    names = [s.system_id for s in systems]
    variables = parse_variables(variable, tasks, names)
    parties = []
    for system, t, var in zip(systems, tasks, variables):
        runner = make_runner(nets.model(system), site)
        parties.append(Party(system.system_id, t, var, runner.width, runner))
    return parties


def check_k(k: int, parties: Sequence[Party], site: str) -> None:
    """An aligned subspace of size ``k`` must fit in every party's site."""
    from simbench.interventions.subspace import check_subspace_size

    check_subspace_size(k, [(p.system_id, p.width) for p in parties], site)


def save_alignment(engine: Any, path: str, meta: dict[str, Any]) -> None:
    """The trained map as safetensors plus a JSON sidecar that says what it aligns."""
    from safetensors.torch import save_file

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in engine.imap.state_dict().items()}
    save_file(state, str(target))
    target.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))


def load_alignment(engine: Any, path: str, meta: dict[str, Any]) -> None:
    """Load a saved map, refusing one trained for other systems, site or k."""
    from safetensors.torch import load_file

    target = Path(path)
    if not target.exists():
        raise SimbenchError("no such alignment file", file=target, field="load",
                            fix="train with --save PATH first")
    sidecar = target.with_suffix(".json")
    saved = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    for key in ("measure", "systems", "site", "k", "rank"):
        if key in saved and key in meta and saved[key] != meta[key]:
            raise SimbenchError(f"alignment was trained with {key} = {saved[key]!r}, "
                                f"this run has {meta[key]!r}", file=target, field=key,
                                fix=f"score with the same {key}, or train a new alignment")
    try:
        state = load_file(str(target), device=str(engine.cfg.device))
    except Exception as exc:
        raise SimbenchError(f"not a safetensors alignment ({exc})", file=target,
                            field="load") from None
    engine.imap.load_state_dict(state)


def alignment_meta(measure: Measure, parties: Sequence[Party], site: str,
                   **extra: Any) -> dict[str, Any]:
    """What a saved alignment says it aligns (:func:`load_alignment` checks it)."""
    return {"measure": measure.name, "systems": [p.system_id for p in parties], "site": site,
            **extra, "variables": variables_of(parties)}


def iia_score(measure: Measure, parties: Sequence[Party], site: str, results: dict,
              keys: Sequence[tuple[int, int]], attrs: dict[str, Any],
              breakdown: dict[str, Any] | None = None) -> Score:
    """The Score of mean trial IIA over ``keys`` (Wilson interval on the pooled trials), the
    IIA matrices after ``breakdown`` in its breakdown."""
    from simbench.interventions.engine import iia_matrices
    from simbench.stats import pooled_iia

    names = [p.system_id for p in parties]
    value, ci, n = pooled_iia(results, keys)
    return Score(measure=measure.name, value=value, systems=tuple(names), site=site, ci=ci,
                 n_samples=n, breakdown={**(breakdown or {}), **iia_matrices(results, names)},
                 attrs=attrs)


def shuffled_null_draws(engine: Any, directions: list[tuple[int, int]], params: dict[str, Any],
                        seed: int) -> list[float]:
    """``params["null"]`` IIA draws of the trained map with shuffled sources (none for 0)."""
    from simbench.calibration.causal_null import shuffled_source_null

    return shuffled_source_null(engine, directions, int(params.get("null", 0)), seed)


def with_shuffled_null(score: Score, draws: list[float], directions: list[tuple[int, int]],
                       seed: int) -> Score:
    """``score`` carrying the shuffled-source null of ``draws`` (unchanged without draws)."""
    if not draws:
        return score
    from simbench.calibration.causal_null import shuffled_null_result

    return with_null(score, shuffled_null_result(score.value, draws, seed=seed,
                                                 directions=directions, names=score.systems))


def train_or_load(engine: Any, params: dict[str, Any], meta: dict[str, Any], label: str) -> Any:
    """Load the alignment named by ``--load``, or train (and ``--save``); the train log or None."""
    if params.get("load"):
        load_alignment(engine, params["load"], meta)
        return None
    log = engine.train(progress=params.get("progress", True), label=label)
    if params.get("save"):
        save_alignment(engine, params["save"], {**meta, "train": train_summary(log)})
    return log


def run_engine(engine: Any, params: dict[str, Any], meta: dict[str, Any], label: str) -> Any:
    """Train (or load) then evaluate; returns (train log or None, test results)."""
    log = train_or_load(engine, params, meta, label)
    start = time.perf_counter()
    results = engine.evaluate("test")
    if log is not None:
        log.test_seconds = time.perf_counter() - start
    return log, results


def train_summary(log: Any) -> dict[str, Any]:
    """The train log as plain data (``TrainLog.summary``), with ``reached_s``: when validation
    reached ``stop_at``, in seconds since this process started (for a command: imports,
    loading and data included), and ``test_seconds``: what the held-out test took after."""
    if log is None:
        return {"loaded": True}
    out = log.summary()
    if log.reached_at is not None:
        out["reached_s"] = round(log.reached_at - process_started(), 3)
    if log.test_seconds is not None:
        out["test_seconds"] = round(log.test_seconds, 3)
    return out


def process_started() -> float:
    """When this process started, on the ``time.time()`` scale: its age on the boot clock where
    there is one (Linux), since psutil's ``create_time`` adds it to a boot time given in whole
    seconds that drifts from the wall clock (it can be a second early)."""
    import psutil

    created = psutil.Process().create_time()
    boot_clock = getattr(time, "CLOCK_BOOTTIME", None)
    if boot_clock is None:
        return created
    age = time.clock_gettime(boot_clock) - (created - psutil.boot_time())
    return time.time() - age


# ---- mas and das: one aligned subspace per network --------------------------------------

NULL_HELP = ("draws: untrained random subspaces of the same k on the same held-out "
             "counterfactuals (null_draw = subspaces), or the trained alignment on held-out "
             "counterfactuals re-paired with random other sources (null_draw = shuffled)")
#: the two nulls of mas and das (see simbench.calibration.causal_null)
NULL_DRAWS = ("subspaces", "shuffled")
NULL_DRAW = Param("null_draw", "subspaces", "how --null draws: 'subspaces' (untrained random "
                  "subspaces of the same k: did training matter?) or 'shuffled' (sources "
                  "re-paired with other interventions' labels: is the value really carried?)",
                  choices=NULL_DRAWS)


def align_subspaces(measure: Measure, systems: Sequence[Any], *, site: str, task: str | None,
                    seed: int, device: str, params: dict[str, Any], within: bool) -> Score:
    """Train one subspace per system over every direction; score the cross directions.

    With ``params["null"]`` = N > 0 the score also carries a null (``null_draw``), evaluated
    after the score itself on the same held-out counterfactuals: N sets of untrained random
    subspaces of the same k, or N re-pairings with other sources through the trained map.
    """
    from simbench.calibration.causal_null import random_subspace_null, random_subspace_null_result
    from simbench.interventions.engine import Engine, directions_for
    from simbench.interventions.init import choose_start
    from simbench.interventions.maps import SubspaceMap
    from simbench.interventions.subspace import random_subspace

    k = params["k"]
    with networks_on(device) as nets:
        parties = build_parties(systems, nets, site=site, task=task,
                                variable=params["variable"])
        check_k(k, parties, site)
        n = len(parties)
        directions = directions_for(n, within=within or n == 1)
        imap = SubspaceMap([p.width for p in parties], k, seed=seed)
        engine = Engine(parties, imap, directions, engine_config(params, seed, device))
        start = ({"init": "random"} if params.get("control") or params.get("load")
                 else choose_start(engine, params.get("init", "random")))  # DAS: no init param
        # a start from the data that is already near stop_at is validated before training: it
        # may be the best alignment within the step cap (a network against itself or a
        # re-parametrization); one far below it (GRU seeds: ~0.6) is left to training
        check = start.get("init_check")
        engine.cfg.validate_start = start["init"] != "random" and (
            check is None or check["data"] >= engine.cfg.stop_at - check["margin"])
        if params.get("control"):
            for i, p in enumerate(parties):
                imap.fix(i, random_subspace(p.width, k, seed + i).to(device))
            log, results = None, engine.evaluate("test")
        else:
            log, results = run_engine(engine, params, alignment_meta(measure, parties, site, k=k),
                                      f"{measure.name} k={k}")
        cross = [d for d in directions if d[0] != d[1]] or directions
        shuffled = params.get("null_draw", "subspaces") == "shuffled"
        if shuffled:
            null_values = shuffled_null_draws(engine, cross, params, seed)
        else:
            null_values = random_subspace_null(engine, [p.width for p in parties], k,
                                               int(params.get("null", 0)), seed, cross)
    within_dirs = [d for d in directions if d[0] == d[1]]
    attrs = {"k": k, "variables": variables_of(parties), "directions": len(directions),
             "train": train_summary(log), "control": bool(params.get("control")),
             **start,
             "within_iia": (sum(results[d]["trial"] for d in within_dirs) / len(within_dirs)
                            if within_dirs else None),
             "token_iia": sum(results[d]["token"] for d in cross) / len(cross)}
    score = iia_score(measure, parties, site, results, cross, attrs)
    if shuffled:
        return with_shuffled_null(score, null_values, cross, seed)
    if null_values:
        score = with_null(score, random_subspace_null_result(score.value, null_values, k=k,
                                                             seed=seed))
    return score
