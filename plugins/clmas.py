"""CLMAS (counterfactual-latent MAS): align a network with a system we can only record.

System 1 (A) is a network; system 2 (B) is a recording (``token``, ``valid`` and the task's
causal variables as coordinates), never run. One aligned subspace per system, as in MAS,
trained on the behaviour loss into A (A->A, B->A; B's recorded latents as sources) and the
counterfactual-latent loss into B (A->B, B->B: B's intervened latent should equal a recorded
latent of B whose causal variables are the counterfactual ones, ``0.5 [(1 - cos) + MSE]``):
``L = (1 - eps) L_MAS + eps L_CL`` (the paper's lambda = eps / (1 - eps); eps = 0 is MAS with
B as a source only). The value is held-out IIA into A from B; A->A IIA and the CL fit into B
(cosine, R^2) come alongside.

Evaluation protocol (``--inaccessible ZOO_ID``, or a network as system 2): B is recorded and
trained as recording-only, then intervened on to measure its true IIA (A->B, B->B).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simbench_plugins import _causal

from simbench import hookimpl
from simbench.calibration.scoring import null_param
from simbench.errors import ParameterError
from simbench.measure import Measure, Param
from simbench.result import Score

if TYPE_CHECKING:
    from simbench.interventions.engine import Party
    from simbench.interventions.runners import Runner


#: what ``--null N`` draws for clmas and model_stitch (see simbench.calibration.causal_null)
SHUFFLED_HELP = ("re-pairings of the held-out counterfactuals with random other sources, "
                 "scored through the trained map")


class CLMAS(_causal.CausalMeasure):
    name = "clmas"
    access = ("accessible", "recording")
    min_systems = 1
    symmetric = False
    citation = "Grant (2025), Model Alignment Search, arXiv:2501.06164"
    description = ("IIA into a network after aligning it with a recording-only system: "
                   "behaviour loss into the network, counterfactual-latent loss into the "
                   "recording, L = (1 - eps) L_MAS + eps L_CL")
    params = (
        Param("k", 16, "aligned subspace size", low=1),
        Param("eps", 0.89, "convex weight of the counterfactual-latent loss: "
              "L = (1 - eps) L_MAS + eps L_CL, eps in [0, 1); the paper's lambda is "
              "eps / (1 - eps) (0.5, 0.89, 0.94 -> 1, 8, ~16); 0 = MAS with the recording "
              "as source only", low=0.0, high=1.0, high_open=True),
        Param("within", True, "train the within-system directions (A->A behaviour, B->B CL)"),
        Param("inaccessible", "", "evaluation protocol: a network (zoo id or checkpoint) used "
              "as system 2 and treated as recording-only for training; its true IIA is "
              "measured after training", kind=str),
        Param("record_n", 3000, "stimuli recorded from a network treated as inaccessible "
              "(split 70/15/15)", low=30),
        Param("n_boot", 0, "stimulus bootstrap of the headline's 95% CI: resample the "
              "recording's held-out stimuli (the sources) this many times; 0 = a Wilson "
              "interval over the held-out interventions", low=0),
        null_param(SHUFFLED_HELP),
        *_causal.ENGINE_PARAMS,
    )

    def score(self, systems: Sequence[Any], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        return align_with_recording(self, systems, site=site, task=task, seed=seed,
                                    device=device, params=params)


def second_system(systems: Sequence[Any], inaccessible: str, task: str | None) -> Any:
    """System 2: the one passed, or the network named by ``--inaccessible``."""
    from simbench.systems.resolve import resolve_system

    if len(systems) == 2:
        b = systems[1]
        if inaccessible and inaccessible != b.system_id:
            raise ParameterError(f"--inaccessible {inaccessible} names another system than "
                                 f"system 2 ('{b.system_id}')", field="inaccessible",
                                 fix="pass only system 1 with --inaccessible ZOO_ID, or drop "
                                 "--inaccessible")
        return b
    if not inaccessible:
        raise ParameterError("CLMAS needs a second system: a recording (.nc) or a network "
                             "treated as inaccessible", field="systems",
                             fix="pass RECORDING.nc as system 2, or --inaccessible ZOO_ID")
    b = resolve_system(inaccessible, task=task)
    if b.access != "accessible":
        raise ParameterError(f"--inaccessible {inaccessible} is a recording, not a network",
                             field="inaccessible",
                             fix="pass a recording as system 2 instead")
    return b


def recording_pair(a: Any, b: Any, nets: _causal.Networks, *, site: str, task: str | None,
                   params: dict[str, Any], seed: int,
                   values: tuple[int, int] | None) -> tuple[list[Party], Runner | None]:
    """Parties for network ``a`` and for ``b`` as recording-only, and ``b``'s runner (or None).

    A recording yields its own stimuli and activity; a network is recorded first (over
    ``params["record_n"]`` seeded stimuli of all counts) and its runner is returned for the
    evaluation protocol.
    """
    from simbench.interventions.recorded import party_from_arrays, recorded_party

    var_a, var_b = _causal.parse_variables(
        params["variable"], [_causal.system_task(s, task) for s in (a, b)],
        [a.system_id, b.system_id])
    (party_a,) = _causal.build_parties([a], nets, site=site, task=task,
                                       variable=_causal.variable_text(var_a))
    task_b = _causal.system_task(b, task)
    if b.access != "accessible":
        return [party_a, recorded_party(b, site=site, task=task_b, variable=var_b, seed=seed,
                                        values=values)], None
    import torch

    from simbench.interventions.runners import make_runner

    runner = make_runner(nets.model(b), site)
    stim = task_b.sample(params["record_n"], seed * 7919 + 4242, counts="all")
    act = runner.cache("record", torch.as_tensor(stim.tokens, device=nets.device))
    runner.latents.pop("record", None)
    party_b = party_from_arrays(b.system_id, task_b, var_b, stim.tokens, act.cpu().numpy(),
                                stim.variables, seed=seed, stimulus_ids=stim.ids,
                                values=values, site=site)
    return [party_a, party_b], runner


def align_with_recording(measure: Measure, systems: Sequence[Any], *, site: str,
                         task: str | None, seed: int, device: str,
                         params: dict[str, Any]) -> Score:
    """Train CLMAS on (A, B), evaluate, and, when B is a network, measure its true IIA."""
    import xarray as xr

    from simbench.interventions.cl_engine import CLEngine
    from simbench.interventions.maps import SubspaceMap

    eps, k = params["eps"], params["k"]
    b_system = second_system(systems, params["inaccessible"], task)
    cfg = _causal.engine_config(params, seed, device)
    with _causal.networks_on(device) as nets:
        parties, runner_b = recording_pair(systems[0], b_system, nets, site=site, task=task,
                                           params=params, seed=seed, values=cfg.values)
        party_b = parties[1]
        _causal.check_k(k, parties, site)
        behaviour = [(0, 0), (1, 0)] if params["within"] else [(1, 0)]
        latent = [(0, 1), (1, 1)] if params["within"] else [(0, 1)]
        imap = SubspaceMap([p.width for p in parties], k, seed=seed)
        engine = CLEngine(parties, imap, [*behaviour, *latent], cfg, eps=eps,
                          behaviour=behaviour, latent=latent)
        log = _causal.train_or_load(engine, params,
                                    _causal.alignment_meta(measure, parties, site, k=k),
                                    f"{measure.name} k={k} eps={eps:g}")
        fit = engine.cl_fit("test")
        protocol = runner_b is not None
        if protocol:
            engine.attach_runner(1, runner_b)
        results = engine.evaluate("test")
        ci_method = "Wilson interval over the held-out interventions"
        ci = None
        if params.get("n_boot"):
            ci = stimulus_bootstrap(engine, len(party_b.pools["test"]),
                                    n_boot=params["n_boot"], seed=seed)
            ci_method = (f"stimulus bootstrap: {params['n_boot']} resamples of "
                         f"'{b_system.system_id}''s {len(party_b.pools['test'])} held-out "
                         "stimuli (the sources), percentile interval")
        null_values = _causal.shuffled_null_draws(engine, [(1, 0)], params, seed)
    names = [p.system_id for p in parties]
    labels = [f"{names[s]}->{names[t]}" for s, t in fit]
    metrics = ["cosine", "r2", "r2_unpatched"]
    attrs: dict[str, Any] = {
        "k": k, "eps": eps, "lambda": eps / (1 - eps), "variables": _causal.variables_of(parties),
        "mode": "protocol (network treated as inaccessible)" if protocol else "recording",
        "iia_into_a": {f"{names[s]}->{names[t]}": results[(s, t)]["trial"]
                       for s, t in behaviour},
        "within_iia": results[(0, 0)]["trial"] if (0, 0) in results else None,
        "cl_fit": {lab: {m: fit[d][m] for m in (*metrics, "mse", "n")}
                   for lab, d in zip(labels, fit)},
        "train": _causal.train_summary(log),
        "recorded_stimuli": {s: len(party_b.pools[s]) for s in party_b.pools},
        # per causal variable: the values recorded, those counterfactuals need, and the fewest
        # stimuli reaching a needed value (counterfactual latents come only from these)
        "coverage": getattr(party_b, "coverage", None),
        "token_iia": results[(1, 0)]["token"],
        "ci_method": ci_method,
    }
    if protocol:
        attrs["true_iia_into_b"] = {f"{names[s]}->{names[t]}": results[(s, t)]["trial"]
                                    for s, t in latent}
    score = _causal.iia_score(measure, parties, site, results, [(1, 0)], attrs)
    if ci is not None:
        score.ci = ci
    score.breakdown["cl_fit"] = xr.DataArray([[fit[d][m] for m in metrics] for d in fit],
                                             dims=("direction", "metric"),
                                             coords={"direction": labels, "metric": metrics})
    return _causal.with_shuffled_null(score, null_values, [(1, 0)], seed)


def stimulus_bootstrap(engine: Any, n_stimuli: int, *, n_boot: int,
                       seed: int) -> tuple[float, float]:
    """Percentile interval of IIA into system 1 from system 2 over system 2's stimuli (an
    animal's trials are the experimental units, not the interventions drawn from them): each
    resample draws the held-out source stimuli with replacement and weights every held-out
    intervention by its source's draws; a trial counts as correct exactly as in the score."""
    import numpy as np
    import torch

    from simbench.stats import bootstrap_ci

    d = engine.data["test"][(1, 0)]
    n = len(d.iv)
    hits = []
    with torch.no_grad():
        for i in range(0, n, 1024):
            rows = torch.arange(i, min(i + 1024, n), device=d.src_idx.device)
            trial, _ = engine.correct(*engine.patched_logits("test", 0, [(1, rows)]))
            hits.append(trial.cpu().numpy())
    hit = np.concatenate(hits).astype(np.float64)
    src = np.asarray(d.iv.src_idx, dtype=np.int64)
    per_hits = np.bincount(src, weights=hit, minlength=n_stimuli)
    per_n = np.bincount(src, minlength=n_stimuli).astype(np.float64)

    def iia(idx: np.ndarray) -> float:
        w = np.bincount(idx, minlength=n_stimuli)
        total = float(w @ per_n)
        return float(w @ per_hits) / total if total else float("nan")

    return bootstrap_ci(iia, n_stimuli, n_boot=n_boot, seed=seed)


@hookimpl
def simbench_measures() -> list[Measure]:
    return [CLMAS()]
