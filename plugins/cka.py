"""The ``cka`` and ``cka_paper`` measures: simbench's side of centred kernel alignment.

The numbers come from :mod:`simbench.estimators.cka` (numpy and torch only); this
module pairs the two systems' activity, picks the device, turns the bootstrap replicates into
an interval (or a ``ci_note`` saying why there is none) and builds the ``Score``.

Scale: when the paired activity would take more than ``memory_mb`` (auto: what simbench may
use; recordings too large to load stay in their files, see
:func:`simbench.recording.open_recording`), linear and cosine CKA are computed by
:func:`~simbench.estimators.cka.chunked_cka`, a block of rows at a time
(``attrs["form"] = "chunked"``, ``attrs["chunked_reason"]`` says why; no bootstrap interval).
Below the budget nothing changes. Kernels that need [n, n] matrices (RBF, ``cka_paper``) refuse
activity over the budget with what to do instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from simbench_plugins._paired import boot_param

from simbench import hookimpl
from simbench.calibration.scoring import null_param, with_null
from simbench.devices import resolve_device
from simbench.errors import ParameterError, SimbenchError
from simbench.estimators.cka import (
    BOOT_MEMORY_MB,
    FORMS,
    KERNELS,
    CKAResult,
    EstimatorError,
    chunk_rows_for,
    chunked_cka,
    chunked_memory_bytes,
    cka,
    distance_cka,
    kernel_matrices,
)
from simbench.estimators.cka import gram_cka as gram_cka  # re-exported for callers
from simbench.estimators.correlative import (
    DTYPES,
    MEMORY_PARAMS,
    PAIRING_PARAMS,
    Budget,
    CorrelativeMeasure,
    estimator_errors,
    interval_attrs,
    make_score,
    memory_budget,
    paired_activity,
    undefined_activity,
)
from simbench.estimators.resampling import recentred_interval, subsample_rows
from simbench.measure import Measure, Param

if TYPE_CHECKING:
    from simbench.pairing import Paired
    from simbench.result import Score
    from simbench.systems import System

#: ``form`` choices of the ``cka`` measure: the estimator's, and the out-of-core pass.
MEASURE_FORMS = (*FORMS, "chunked")

CITATION = ("Kornblith, Norouzi, Lee & Hinton (2019). Similarity of Neural Network "
            "Representations Revisited. ICML. Debiased HSIC: Song et al. (2012), JMLR 13.")


def _common_params() -> tuple[Param, ...]:
    return (
        Param("max_samples", 5000, "Gram form: at most this many samples (seeded subsample; "
              "0 = all); memory grows as its square", low=0),
        boot_param(),
        Param("boot_memory_mb", BOOT_MEMORY_MB, "memory (MiB) the bootstrap may add to the "
              "estimate's; less memory, fewer bootstrap units (none below 16: ci_note says so)",
              low=1),
        Param("dtype", "float64", "precision of the matrix products (sums are always float64)",
              choices=DTYPES),
        *PAIRING_PARAMS,
        null_param(),
    )


def _scored(measure: Measure, systems: Sequence[System], site: str, pair: Any,
            result: CKAResult, params: dict[str, Any], seed: int, device: str, *,
            kernel: str = "linear", debiased: bool = False, metric: str | None = None) -> Score:
    """The Score of a CKA result: the recentred interval (or ci None with ci_note), and its
    permutation null when ``params["null"]`` > 0.

    The null re-pairs whole stimuli between the systems on the rows the estimate used (the
    Gram form's seeded subsample included). Linear and cosine CKA go through the fast route
    (only the cross term is recomputed); the RBF kernel and the paper's distance matrices build
    their two matrices once and permute one of them.
    """
    from simbench.calibration import gram_cka_null, linear_cka_null

    if not math.isfinite(result.value):
        raise undefined_activity("CKA", systems, site,
                                 "too few samples for the debiased estimator")
    attrs = dict(result.attrs)
    ci = recentred_interval(result.value, result.replicates)
    reps = result.replicates[np.isfinite(result.replicates)]
    how = interval_attrs(ci, f"95% percentile bootstrap over stimuli ({len(reps)} replicates), "
                         "recentred on the estimate (duplicated samples inflate CKA)",
                         n_boot=params["n_boot"], n_units=pair.n_stimuli, n_finite=len(reps))
    for key, text in how.items():  # the estimator's own ci_note, when it gave one, stands
        attrs.setdefault(key, text)
    if ci is not None:
        attrs["bootstrap_shift"] = float(np.median(reps) - result.value)
    score = make_score(measure.name, systems, site, value=result.value, ci=ci,
                       n_samples=result.n, attrs=attrs)
    n_perm = int(params.get("null", 0))
    if n_perm <= 0:
        return score
    x, y, stim, time = pair.x, pair.y, pair.stimulus, pair.time
    keep = None if result.form == "feature" else \
        subsample_rows(x.shape[0], params["max_samples"], seed)
    if keep is not None:
        x, y, stim = x[keep], y[keep], stim[keep]
        time = None if time is None else time[keep]
    common = {"stimulus": stim, "time": time, "n_perm": n_perm, "seed": seed,
              "debiased": debiased, "device": device}
    with estimator_errors(site):
        if metric is None and kernel in ("linear", "cosine"):
            null = linear_cka_null(x, y, kernel=kernel, dtype=params["dtype"], **common)
        else:
            K, L = kernel_matrices(x, y, kernel=kernel, rbf_sigma=params.get("rbf_sigma", 1.0),
                                   metric=metric, dtype=params["dtype"], device=device)
            null = gram_cka_null(K, L, **common)
    return with_null(score, null)


def _in_memory(measure: str, pair: Paired, params: dict[str, Any], site: str,
               what: str) -> Paired:
    """``pair`` with its activity in memory, or a SimbenchError when the memory budget does
    not hold it (``what`` names the computation that needs it whole)."""
    budget = _budget(pair, params)
    if budget.over:
        raise SimbenchError(
            f"{measure}: {what} needs the paired activity in memory, and "
            f"{budget.reason('it')} ({pair.x.shape[0]:,} samples x {pair.x.shape[1]} + "
            f"{pair.y.shape[1]} units)", site=site, field="memory_mb",
            fix="use cka with --kernel linear or cosine and --form auto (computed a block of "
            "rows at a time), score a subset of the stimuli, or raise --memory-mb")
    return pair.loaded()


def _budget(pair: Paired, params: dict[str, Any]) -> Budget:
    """What holding the paired activity costs: all of it against an explicit ``memory_mb``;
    under auto only what is still in a file (activity already in memory is held anyway)."""
    mb = params["memory_mb"]
    return memory_budget(pair.nbytes if mb > 0 else pair.lazy_nbytes, mb)


def _chunked(measure: Measure, systems: Sequence[System], site: str, pair: Paired,
             params: dict[str, Any], budget: Budget, device: str) -> Score:
    """Linear or cosine CKA a block of rows at a time (no interval; ``attrs`` say why)."""
    if params["null"] > 0:
        raise ParameterError(
            f"{measure.name}: the permutation null needs the paired activity in memory, and "
            f"{budget.reason('it')}", field="null", site=site,
            fix="drop --null, or score a subset of the stimuli for a null")
    dx, dy = int(pair.x.shape[1]), int(pair.y.shape[1])
    sizes = {"debiased": params["debiased"], "itemsize": 4 if params["dtype"] == "float32" else 8}
    memory = "--memory-mb" if budget.explicit else "the memory simbench may use"

    def mib(rows: int) -> float:
        return chunked_memory_bytes(dx, dy, rows, **sizes) / 2**20

    try:
        fits = chunk_rows_for(dx, dy, budget.block_mb, **sizes)
    except EstimatorError:
        raise ParameterError(
            f"{measure.name} (chunked): {memory} = {budget.block_mb:g} MiB does not hold the "
            f"float64 accumulators of {dx} x {dy} units ({mib(0):,.2f} MiB) and a block of rows",
            field="memory_mb", site=site,
            fix=f"pass --memory-mb {math.ceil(mib(256))} or more (blocks of 256 rows)"
            + ("" if budget.explicit else "; or raise SIMBENCH_MEMORY_MB")) from None
    rows = params["chunk_rows"]
    if rows > fits:
        raise ParameterError(
            f"{measure.name} (chunked): chunk_rows = {rows:,} needs {mib(rows):,.1f}"
            f" MiB, more than {memory} ({budget.block_mb:g} MiB)", field="chunk_rows", site=site,
            fix=f"pass --chunk-rows {fits} or fewer (what fits), 0 for the most that fits, or "
            "raise --memory-mb")
    with estimator_errors(site):
        result = chunked_cka(pair.x, pair.y, debiased=params["debiased"], kernel=params["kernel"],
                             chunk_rows=rows or None, memory_mb=budget.block_mb,
                             dtype=params["dtype"], progress=params["progress"], device=device)
    result.attrs["chunked_reason"] = (budget.reason("the paired activity") if params["form"]
                                      == "auto" else "form = chunked was asked for")
    result.attrs["memory_mb"] = budget.block_mb
    result.attrs["activity_source"] = "read from the file" if pair.lazy else "in memory"
    return _scored(measure, systems, site, pair, result, params, 0, device)


class CKA(CorrelativeMeasure):
    """Centred kernel alignment of two systems' activity on the same samples."""

    name = "cka"
    symmetric = True
    higher_is_better = True
    range = (0.0, 1.0)
    citation = CITATION
    description = ("Centred kernel alignment (linear, cosine or RBF kernel; optional debiased "
                   "HSIC); 1 = same representation up to rotation and isotropic scaling.")
    params = (
        Param("kernel", "linear", "linear, cosine or rbf", choices=KERNELS),
        Param("debiased", False, "unbiased HSIC estimator (Song et al. 2012)"),
        Param("rbf_sigma", 1.0, "RBF bandwidth as a fraction of the median pairwise distance",
              low=1e-12),
        Param("form", "auto", "feature (O(n d^2)), gram (O(n^2 d)), chunked (linear/cosine "
              "read a block of rows at a time; no interval) or auto (the cheaper of feature and "
              "gram, chunked when the activity exceeds memory_mb)", choices=MEASURE_FORMS),
        *_common_params(),
        *MEMORY_PARAMS,
        Param("chunk_rows", 0, "chunked form: rows per block (0 = as many as memory_mb holds)",
              low=0),
    )
    #: the activity may be handed over still in its file (read by rows): see the module
    lazy_activity = True

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """CKA at ``site`` with a percentile bootstrap interval over stimuli (and, with
        ``null`` > 0, a permutation null and p-value).

        ``attrs["device"]`` is where the products ran (``cpu``, ``cuda:0``), never ``auto``.
        """
        pair = paired_activity(systems, site, n_stimuli=params["n_stimuli"], seed=seed,
                               intersect=params["intersect"], lazy=True)
        budget = _budget(pair, params)
        form = params["form"]
        if form == "chunked" or (form == "auto" and budget.over
                                 and params["kernel"] in ("linear", "cosine")):
            if params["kernel"] == "rbf":
                raise ParameterError("form chunked computes linear and cosine CKA, not rbf",
                                     field="form", site=site,
                                     fix="use --kernel linear or cosine, or --form auto")
            return _chunked(self, systems, site, pair, params, budget, resolve_device(device))
        what = (f"kernel {params['kernel']} (an [n, n] Gram matrix)" if form == "auto"
                else f"form {form}")
        pair = _in_memory(self.name, pair, params, site, what)
        with estimator_errors(site):
            result = cka(pair.x, pair.y, stimulus=pair.stimulus, kernel=params["kernel"],
                         debiased=params["debiased"], rbf_sigma=params["rbf_sigma"],
                         form=params["form"], max_samples=params["max_samples"],
                         dtype=params["dtype"], n_boot=params["n_boot"], seed=seed,
                         device=resolve_device(device), boot_memory_mb=params["boot_memory_mb"])
        return _scored(self, systems, site, pair, result, params, seed, resolve_device(device),
                       kernel=params["kernel"], debiased=params["debiased"])


class CKAPaper(CorrelativeMeasure):
    """The paper code's "CKA" (:func:`~simbench.estimators.cka.distance_cka`): the centred
    alignment <H Dx H, H Dy H>_F / (||H Dx H||_F ||H Dy H||_F) of the distance matrices of
    z-scored activity. Euclidean distances are conditionally negative definite, so the value lies
    in [0, 1]; with ``metric=sqeuclidean`` it equals linear CKA of the z-scored data. It is a
    different number from ``cka``; use it to match the paper's figures.
    """

    name = "cka_paper"
    symmetric = True
    higher_is_better = True
    range = (0.0, 1.0)
    citation = CITATION + " Variant as computed by the paper's released code."
    description = ("The paper code's CKA: centred alignment of the sample distance matrices of "
                   "z-scored activity (Gram form; subsampled to max_samples).")
    params = (
        Param("metric", "euclidean", "distance between samples: euclidean or sqeuclidean",
              choices=("euclidean", "sqeuclidean")),
        *_common_params(),
        MEMORY_PARAMS[0],
    )
    lazy_activity = True  # a recording too large to load is refused here with what to do

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """Distance-matrix CKA at ``site`` with a percentile bootstrap interval over stimuli."""
        pair = paired_activity(systems, site, n_stimuli=params["n_stimuli"], seed=seed,
                               intersect=params["intersect"], lazy=True)
        pair = _in_memory(self.name, pair, params, site, "the distance matrices")
        with estimator_errors(site):
            result = distance_cka(pair.x, pair.y, stimulus=pair.stimulus, metric=params["metric"],
                                  max_samples=params["max_samples"], dtype=params["dtype"],
                                  n_boot=params["n_boot"], seed=seed,
                                  device=resolve_device(device),
                                  boot_memory_mb=params["boot_memory_mb"])
        return _scored(self, systems, site, pair, result, params, seed, resolve_device(device),
                       kernel="gram", metric=params["metric"])


@hookimpl
def simbench_measures() -> list[Measure]:
    """Register ``cka`` and ``cka_paper``."""
    return [CKA(), CKAPaper()]
