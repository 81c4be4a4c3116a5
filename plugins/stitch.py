"""The stitching baselines of MAS: model stitching and latent stitching.

- ``model_stitch``: a rank-k linear map that *replaces* system 2's latent, ``h'_2 = h_1 A B
  (+ b)``, trained on system 2's behaviour (1 -> 2); the value is IIA there. It is near perfect
  at rank 2 between Multi-Object GRUs because it may route the variable through dimensions the
  source's own behaviour never reads: a good stitch does not show that two systems encode a
  variable alike. ``--via-inverse`` trains 2 -> 1 and scores the pseudo-inverse 1 -> 2 (a
  stitch into system 2 without access to it: the baseline of the CLMAS protocol).
- ``latent_stitch``: one orthogonal map trained only with the counterfactual-latent loss;
  the value is IIA into system 2 when it is a network, else the held-out CL fit (R^2).

A stitch replaces the whole latent, so its counterfactual is the source's whole state: every
causal variable both tasks share takes the source's values (``--full-state``, default on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simbench_plugins import _causal
from simbench_plugins.clmas import SHUFFLED_HELP, recording_pair

from simbench import hookimpl
from simbench.calibration.scoring import null_param
from simbench.measure import Measure, Param
from simbench.result import Score

FULL_STATE = Param("full_state", True, "the counterfactual sets every causal variable both "
                   "tasks share to the source's values (a stitch replaces the whole latent); "
                   "off: only --variable, keeping the target's others")


class ModelStitch(_causal.CausalMeasure):
    name = "model_stitch"
    access = ("accessible", "accessible")
    symmetric = False
    citation = "Bansal, Nakkiran & Barak (2021), Revisiting Model Stitching; baseline in " \
               "Grant (2025), arXiv:2501.06164"
    description = ("IIA into system 2 after replacing its latent by a rank-k linear map of "
                   "system 1's, trained on system 2's behaviour (1 -> 2)")
    params = (
        Param("rank", 2, "rank of the stitch (sweep with --rank 1,2,4,16)", low=1),
        Param("bias", True, "add a bias to the stitch"),
        Param("via_inverse", False, "train 2 -> 1 on system 1's behaviour and score the "
              "pseudo-inverse 1 -> 2 (a stitch into system 2 without access to it)"),
        FULL_STATE,
        null_param(SHUFFLED_HELP),
        *_causal.ENGINE_PARAMS,
    )

    def score(self, systems: Sequence[Any], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        from simbench.interventions.engine import Engine
        from simbench.interventions.maps import InverseStitch, StitchMap

        rank = params["rank"]
        cfg = _causal.engine_config(params, seed, device)
        with _causal.networks_on(device) as nets:
            parties = _causal.build_parties(systems, nets, site=site, task=task,
                                            variable=params["variable"])
            cfg.carry = carried(parties[0], parties[1]) if params["full_state"] else ()
            trained = (1, 0) if params["via_inverse"] else (0, 1)
            widths = [p.width for p in parties]
            imap = StitchMap(widths, [trained], rank, bias=params["bias"], seed=seed)
            directions = [(0, 1), (1, 0)] if params["via_inverse"] else [(0, 1)]
            engine = Engine(parties, imap, directions, cfg, trained=[trained])
            meta = _causal.alignment_meta(self, parties, site, rank=rank)
            if params["via_inverse"]:
                log = _causal.train_or_load(engine, params, meta,
                                            f"{self.name} 2->1 rank={rank}")
                engine.imap = InverseStitch(imap, 1, 0).to(cfg.device)
                results = engine.evaluate("test")
            else:
                log, results = _causal.run_engine(engine, params, meta,
                                                  f"{self.name} rank={rank}")
            null_values = _causal.shuffled_null_draws(engine, [(0, 1)], params, seed)
        attrs = {"rank": rank, "bias": params["bias"], "via_inverse": params["via_inverse"],
                 "carried": list(cfg.carry), "variables": meta["variables"],
                 "token_iia": results[(0, 1)]["token"], "train": _causal.train_summary(log)}
        if params["via_inverse"]:
            attrs["trained_iia_2_to_1"] = results[(1, 0)]["trial"]
        score = _causal.iia_score(self, parties, site, results, [(0, 1)], attrs)
        return _causal.with_shuffled_null(score, null_values, [(0, 1)], seed)


class LatentStitch(_causal.CausalMeasure):
    name = "latent_stitch"
    access = ("accessible", "recording")
    symmetric = False
    range = (-1.0, 1.0)
    citation = "baseline in Grant (2025), Model Alignment Search, arXiv:2501.06164"
    description = ("one orthogonal map from system 1's latents to system 2's, trained only on "
                   "counterfactual latents; IIA into system 2 when it is a network, else the "
                   "held-out CL fit (R^2)")
    params = (
        FULL_STATE,
        null_param(SHUFFLED_HELP + "; needs system 2 to be a network (its IIA)"),
        Param("record_n", 3000, "stimuli recorded from system 2 when it is a network "
              "(split 70/15/15)", low=30),
        *_causal.ENGINE_PARAMS,
    )

    def score(self, systems: Sequence[Any], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        import xarray as xr

        from simbench.interventions.cl_engine import CLEngine
        from simbench.interventions.maps import OrthogonalStitchMap

        cfg = _causal.engine_config(params, seed, device)
        if params.get("null", 0) > 0 and systems[1].access != "accessible":
            from simbench.calibration.permutation import NullError

            raise NullError(f"latent_stitch into a recording ('{systems[1].system_id}') is "
                            "scored by its held-out fit (R^2), which has no null",
                            field="null", fix="drop --null, or use clmas --null N (its "
                            "null keeps the recording and shuffles the sources)")
        null_values: list[float] = []
        with _causal.networks_on(device) as nets:
            parties, runner_b = recording_pair(*systems, nets, site=site, task=task,
                                               params=params, seed=seed, values=cfg.values)
            cfg.carry = carried(*parties) if params["full_state"] else ()
            imap = OrthogonalStitchMap([p.width for p in parties], [(0, 1)], seed=seed)
            engine = CLEngine(parties, imap, [(0, 1)], cfg, eps=0.0, behaviour=[],
                              latent=[(0, 1)])
            log = _causal.train_or_load(engine, params,
                                        _causal.alignment_meta(self, parties, site), self.name)
            fit = engine.cl_fit("test")[(0, 1)]
            results = None
            if runner_b is not None:
                engine.attach_runner(1, runner_b)
                results = engine.evaluate("test")
                null_values = _causal.shuffled_null_draws(engine, [(0, 1)], params, seed)
        metrics = ["cosine", "r2", "r2_unpatched"]
        breakdown = {"cl_fit": xr.DataArray([fit[m] for m in metrics], dims=("metric",),
                                            coords={"metric": metrics})}
        attrs: dict[str, Any] = {"carried": list(cfg.carry),
                                 "variables": _causal.variables_of(parties), "cl_fit": fit,
                                 "train": _causal.train_summary(log)}
        if results is None:
            attrs["value_kind"] = "cl_r2"
            return Score(measure=self.name, value=fit["r2"], systems=tuple(
                p.system_id for p in parties), site=site, ci=None, n_samples=int(fit["n"]),
                breakdown=breakdown, attrs=attrs)
        attrs["value_kind"] = "iia"
        attrs["token_iia"] = results[(0, 1)]["token"]
        score = _causal.iia_score(self, parties, site, results, [(0, 1)], attrs, breakdown)
        return _causal.with_shuffled_null(score, null_values, [(0, 1)], seed)


def carried(source: Any, target: Any) -> tuple[str, ...]:
    """Variables besides the aligned one that both tasks have (a full-state counterfactual)."""
    aligned = (target.variable,) if isinstance(target.variable, str) else target.variable
    return tuple(v for v in target.task.variables
                 if v not in aligned and v in source.task.variables)


@hookimpl
def simbench_measures() -> list[Measure]:
    return [ModelStitch(), LatentStitch()]
