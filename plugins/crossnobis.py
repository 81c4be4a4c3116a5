"""The ``crossnobis`` measure: RSA on cross-validated Mahalanobis distances, via rsatoolbox.

It needs repeated measurements in each recording: a ``repeat`` (or ``run``) coordinate naming
the partition of every measurement (see :mod:`simbench.recording`). The conditions are the
stimuli (``stimulus_id``), or a ``condition`` coordinate when one stimulus id is one
presentation. Two layouts work:

- (stimulus, time, unit) with ``repeat`` on (stimulus, time): each stimulus is a condition and
  its time steps are its presentations (the steps of one repeat are averaged);
- (stimulus, unit) with ``condition`` and ``repeat`` on the stimulus dim: each stimulus id is
  one presentation (e.g. ``img7/run2``).

Each system's RDM comes from its own measurements (the systems need not share presentations,
only conditions). The interval resamples conditions (pairs of copies of one condition are left
out of the comparison); the null permutes the condition labels of the second RDM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from simbench_plugins._paired import boot_param, bootstrap_draws, estimated

from simbench import hookimpl
from simbench.calibration.scoring import null_param, with_null
from simbench.errors import RecordingError, SimbenchError
from simbench.estimators.correlative import CorrelativeMeasure, interval_attrs, make_score
from simbench.estimators.crossnobis import COMPARE, NOISE, compare_square, crossnobis_rdm, resampled
from simbench.estimators.resampling import recentred_interval
from simbench.measure import Param

if TYPE_CHECKING:
    from simbench.result import Score
    from simbench.systems import System

#: coordinates naming the partition (repeat, run) of every measurement, in order of preference
PARTITION_COORDS = ("repeat", "run")
CONDITION_COORD = "condition"
WHAT_TO_RECORD = (f"record every stimulus in two or more independent repeats and add a "
                  f"'{PARTITION_COORDS[0]}' (or '{PARTITION_COORDS[1]}') coordinate giving each "
                  "measurement's repeat: on (stimulus, time) when the time steps are the "
                  f"presentations, or on the stimulus dim with a '{CONDITION_COORD}' coordinate "
                  "when each stimulus id is one presentation; or use rsa, which needs no repeats")


def measurements(system: Any, site: str, *, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows [n, d], condition labels [n], partition labels [n]) of one system's valid
    measurements, or a RecordingError saying why crossnobis cannot use it and what to record."""
    name = getattr(system, "system_id", "?")
    if hasattr(system, "record") and hasattr(system, "task_def"):
        raise RecordingError(f"crossnobis needs repeated measurements, and '{name}' is a network: "
                             "its responses to a stimulus are deterministic, with no repeats",
                             site=site, field="repeat", fix=WHAT_TO_RECORD)
    ds = system.site_data(site, seed=seed)
    file = getattr(system, "path", None)
    part = next((c for c in PARTITION_COORDS if c in ds.coords), None)
    if part is None:
        raise RecordingError(f"crossnobis needs repeated measurements, and the recording of "
                             f"'{name}' has no '{PARTITION_COORDS[0]}' or '{PARTITION_COORDS[1]}' "
                             "coordinate saying which repeat each measurement belongs to",
                             file=file, site=site, field="repeat", fix=WHAT_TO_RECORD)
    act = np.asarray(ds["activity"].values, dtype=np.float64)
    step_shape = act.shape[:-1]
    ids = np.asarray(ds["stimulus_id"].values).astype(str)
    cond = (np.asarray(ds[CONDITION_COORD].values).astype(str) if CONDITION_COORD in ds.coords
            else ids)
    cond = np.broadcast_to(cond.reshape(cond.shape + (1,) * (len(step_shape) - cond.ndim)),
                           step_shape)
    parts = np.broadcast_to(np.asarray(ds[part].values), step_shape)
    valid = (np.asarray(ds["valid"].values, dtype=bool) if "valid" in ds.coords
             else np.ones(step_shape, dtype=bool))
    return act[valid], np.asarray(cond)[valid], np.asarray(parts)[valid].astype(str)


class Crossnobis(CorrelativeMeasure):
    """RSA of two systems' crossnobis RDMs (cross-validated over repeats)."""

    name = "crossnobis"
    symmetric = True
    higher_is_better = True
    range = (-1.0, 1.0)
    #: needs repeated measurements, not just paired rows (calibration skips it on plain rows)
    needs_repeats = True
    citation = ("Walther, Nili, Ejaz, Alink, Kriegeskorte & Diedrichsen (2016). Reliability of "
                "dissimilarity measures for multi-voxel pattern analysis. NeuroImage 137; "
                "rsatoolbox (Schütt et al. 2023, eLife).")
    description = ("RSA on crossnobis distances (unbiased, cross-validated over repeats; "
                   "rsatoolbox): needs a 'repeat' or 'run' coordinate in each recording.")
    params = (
        Param("noise", "shrinkage_diag", "noise precision: identity (cross-validated Euclidean) "
              "or rsatoolbox's estimate from the residuals: " + ", ".join(NOISE[1:]),
              choices=NOISE),
        Param("compare_method", "cosine", "rsatoolbox comparison of the two RDMs: "
              + ", ".join(COMPARE), choices=COMPARE),
        boot_param(over="conditions"),
        Param("intersect", False, "use only the conditions both systems share"),
        null_param("permutations of the conditions of the second RDM"),
    )

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """RSA of the crossnobis RDMs over the shared conditions, with a bootstrap interval
        over conditions and (``null`` > 0) a permutation null."""
        data = [measurements(s, site, seed=seed) for s in systems]
        shared = np.intersect1d(np.unique(data[0][1]), np.unique(data[1][1]))
        only = [len(np.setdiff1d(np.unique(d[1]), shared)) for d in data]
        if (only[0] or only[1]) and not params["intersect"]:
            raise RecordingError(
                f"{systems[0].system_id} vs {systems[1].system_id}: condition sets differ "
                f"({only[0]} only in the first, {only[1]} only in the second, {len(shared)} "
                "shared)", site=site, field="stimulus_id",
                fix="pass intersect=True (CLI: --intersect) to use the shared conditions only")
        rdms = []
        for rows, cond, parts in data:
            use = np.isin(cond, shared)
            try:
                rdm, labels = crossnobis_rdm(rows[use], cond[use], parts[use], params["noise"])
            except SimbenchError:
                raise
            except Exception as exc:  # EstimatorError
                raise SimbenchError(getattr(exc, "message", str(exc)), site=site,
                                    field=getattr(exc, "field", None),
                                    fix=getattr(exc, "fix", None) or WHAT_TO_RECORD) from None
            order = np.argsort(labels)
            rdms.append(rdm[np.ix_(order, order)])
        a, b = rdms
        method = params["compare_method"]
        value = estimated(site, lambda: compare_square(a, b, method))
        if not np.isfinite(value):
            raise SimbenchError("crossnobis RSA is undefined: an RDM does not vary over the "
                                "conditions", site=site, field="activity",
                                fix="check the recordings, or compare another site")
        c = len(shared)
        attrs: dict[str, Any] = {"noise": params["noise"], "compare_method": method,
                                 "n_conditions": c,
                                 "n_repeats": [len(np.unique(d[2])) for d in data],
                                 "rdm_source": "rsatoolbox.rdm.calc_rdm (crossnobis)",
                                 "device": "cpu"}
        reps = np.array([compare_square(resampled(a, i), resampled(b, i), method)
                         for i in bootstrap_draws(np.arange(c), params["n_boot"], seed)])
        ci = recentred_interval(value, reps)
        attrs.update(interval_attrs(
            ci, f"95% percentile bootstrap over conditions ({len(reps)} replicates; pairs of "
            "copies left out), recentred on the estimate", n_boot=params["n_boot"], n_units=c,
            n_finite=int(np.isfinite(reps).sum()), unit="conditions"))
        score = make_score(self.name, systems, site, value=value, ci=ci, n_samples=c,
                           attrs=attrs)
        if params["null"] > 0:
            from simbench.calibration import permutation_null

            idx = np.arange(c, dtype=np.float64)[:, None]

            def stat(i: np.ndarray, j: np.ndarray) -> float:
                p, q = i[:, 0].astype(np.int64), j[:, 0].astype(np.int64)
                return compare_square(a[np.ix_(p, p)], b[np.ix_(q, q)], method)

            score = with_null(score, permutation_null(stat, idx, idx, n_perm=params["null"],
                                                      seed=seed, observed=value))
        return score


@hookimpl
def simbench_measures() -> list[Any]:
    """Register ``crossnobis``."""
    return [Crossnobis()]
