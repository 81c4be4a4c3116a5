"""Representational similarity analysis (RSA) through rsatoolbox.

Each draw samples the same rows (samples) of both systems, builds one representational
dissimilarity matrix (RDM) per system and compares the two RDMs with rsatoolbox. The default is
the paper's protocol: 1,000 sampled latent vectors, cosine-distance RDMs, Spearman correlation,
averaged over 10 seeded draws.

RDMs: rsatoolbox 0.3 has no cosine distance, and its correlation distance multiplies with
``einsum`` (no BLAS). For those two we compute the RDM with one BLAS product (cosine distance =
1 - cosine similarity, as ``scipy.spatial.distance.pdist(metric="cosine")``; correlation exactly
as rsatoolbox defines it) and hand it to ``rsatoolbox.rdm.RDMs``; the tests show the numbers
equal rsatoolbox's own to 1e-10. Every other method goes through ``rsatoolbox.rdm.calc_rdm``.
Comparison always goes through ``rsatoolbox.rdm.compare``.

Confidence interval: the 2.5 and 97.5 percentiles of the per-draw values, i.e. the spread over
the random subsets of samples (each draw is one application of the paper's protocol). With one
draw there is none, and ``attrs["ci_note"]`` says why.

Memory: a draw converts only its rows to float64, and a recording too large to load stays in
its file (each draw reads its rows). When a draw's RDMs would exceed ``memory_mb``, each draw
goes through :func:`blocked_rsa`, which never holds an RDM (``attrs["rdm_form"] = "blocked"``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from simbench import hookimpl
from simbench.calibration.scoring import null_param, with_null
from simbench.errors import ParameterError, SimbenchError
from simbench.estimators.correlative import (
    MEMORY_PARAMS,
    PAIRING_PARAMS,
    Budget,
    CorrelativeMeasure,
    interval_attrs,
    make_score,
    memory_budget,
    paired_activity,
)
from simbench.estimators.resampling import DRAWS
from simbench.measure import Measure, Param
from simbench.pairing import LazyRows
from simbench.seeds import rng
from simbench.stats import percentile_interval

if TYPE_CHECKING:
    from simbench.result import Score
    from simbench.systems import System

# RDM methods: ours (BLAS) and rsatoolbox's calc_rdm methods that need no cross-validation.
OWN_RDMS = ("cosine", "correlation")
RDM_METHODS = (*OWN_RDMS, "euclidean", "mahalanobis", "poisson")
COMPARE_METHODS = ("spearman", "corr", "cosine", "kendall", "tau-b", "tau-a", "rho-a",
                   "corr_cov", "cosine_cov", "bures", "bures_metric", "neg_riem_dist")
CITATION = ("Kriegeskorte, Mur & Bandettini (2008). Representational similarity analysis. "
            "Front. Syst. Neurosci.; rsatoolbox (Schütt et al. 2023, eLife).")


@dataclasses.dataclass
class RSAResult:
    """Per-draw RSA values and the rows each draw used."""

    values: np.ndarray  # [n_draws]
    indices: list[np.ndarray]  # rows of each draw (same rows in both systems)
    n_excluded: int  # rows left out because a distance is undefined for them

    @property
    def value(self) -> float:
        return float(np.mean(self.values))


def rdm_vector(x: np.ndarray, method: str) -> np.ndarray:
    """The condensed (upper-triangle, row-major) RDM of the rows of ``x``, as rsatoolbox's.

    ``cosine`` and ``correlation`` are computed here with one BLAS product; the rest call
    ``rsatoolbox.rdm.calc_rdm``.
    """
    from scipy.spatial.distance import squareform

    x = np.asarray(x, dtype=np.float64)
    if method in OWN_RDMS:
        if method == "correlation":  # rsatoolbox: remove each pattern's mean, then cosine
            x = x - x.mean(axis=1, keepdims=True)
        x = x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
        return 1.0 - squareform(x @ x.T, checks=False)
    import rsatoolbox

    if method not in RDM_METHODS:
        raise ParameterError(f"unknown RDM method {method!r}", field="rdm_method",
                             fix=f"use one of {', '.join(RDM_METHODS)}")
    rdm = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x), method=method)
    return rdm.dissimilarities[0]


def compare_rdms(a: np.ndarray, b: np.ndarray, rdm_method: str, compare_method: str) -> float:
    """Compare two condensed RDMs with ``rsatoolbox.rdm.compare`` (as ``RDMs`` objects)."""
    from rsatoolbox.rdm import RDMs, compare

    ra = RDMs(a[None, :], dissimilarity_measure=rdm_method)
    rb = RDMs(b[None, :], dissimilarity_measure=rdm_method)
    return float(compare(ra, rb, method=compare_method)[0, 0])


def rsa(
    x: np.ndarray,
    y: np.ndarray,
    *,
    rdm_method: str = "cosine",
    compare_method: str = "spearman",
    n_vectors: int = 1000,
    n_draws: int = 10,
    seed: int = 0,
    x_rdms: Any = None,
    block_rows: int | None = None,
    progress: bool = False,
) -> RSAResult:
    """RSA between row-aligned ``x`` [n, dx] and ``y`` [n, dy], one value per draw.

    Each draw takes ``n_vectors`` rows without replacement (the same rows in both systems).
    Rows for which the distance is undefined in either system (zero norm for cosine, zero
    variance over units for correlation) are excluded first. When every usable row fits in one
    draw, all draws would be the same, so there is one draw. ``x`` and ``y`` may be
    :class:`~simbench.pairing.LazyRows` (each draw reads its rows). ``block_rows`` set: each
    draw is computed by :func:`blocked_rsa` with blocks of that many rows (no RDM held).
    """
    x = x if isinstance(x, LazyRows) else np.asarray(x)
    y = y if isinstance(y, LazyRows) else np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise SimbenchError(f"RSA needs the same samples in both systems, got {x.shape[0]} and "
                            f"{y.shape[0]} rows")
    pool = np.arange(x.shape[0])
    if rdm_method in OWN_RDMS:  # rows with a direction: non-zero norm in both systems
        usable = np.ones(len(pool), dtype=bool)
        for t in (x, y):
            for lo, _, norms in _direction_blocks(t, rdm_method):
                usable[lo:lo + len(norms)] &= norms > 0
        pool = pool[usable]
    if len(pool) < 3:
        raise SimbenchError(f"RSA needs at least 3 usable samples, got {len(pool)} "
                            f"({x.shape[0] - len(pool)} excluded by the {rdm_method} distance)",
                            fix="record more stimuli, or use --rdm-method euclidean")
    k = min(n_vectors, len(pool))
    gen = rng(seed, DRAWS)
    draws = 1 if k == len(pool) else n_draws
    indices = [np.sort(gen.choice(pool, size=k, replace=False)) if k < len(pool) else pool
               for _ in range(draws)]
    if block_rows is not None:
        values = np.array([blocked_rsa(x[i], y[i], rdm_method=rdm_method,
                                       compare_method=compare_method, block_rows=block_rows,
                                       progress=progress) for i in indices])
    else:
        x_rdm = rdm_vector if x_rdms is None else x_rdms
        values = np.array([compare_rdms(x_rdm(x[i], rdm_method), rdm_vector(y[i], rdm_method),
                                        rdm_method, compare_method) for i in indices])
    return RSAResult(values, indices, int(x.shape[0] - len(pool)))


def rsa_null(x: np.ndarray, y: np.ndarray, *, stimulus: np.ndarray, time: np.ndarray | None,
             n_perm: int, seed: int, **kw: Any) -> Any:
    """Permutation null of :func:`rsa`: the whole protocol (same draws of rows, same seed)
    recomputed with whole stimuli re-paired between the systems; the first system's rows, hence
    its RDMs, are the same on every re-pairing, so they are remembered by the rows' bytes."""
    from simbench.calibration import permutation_null

    cache: dict[tuple[bytes, str], np.ndarray] = {}

    def cached(rows: np.ndarray, method: str) -> np.ndarray:
        key = (np.ascontiguousarray(rows).tobytes(), method)
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[key] = rdm_vector(rows, method)
        return cache[key]

    return permutation_null(lambda a, b: rsa(a, b, seed=seed, x_rdms=cached, **kw).value,
                            x, y, stimulus=stimulus, time=time, n_perm=n_perm, seed=seed)


#: comparisons :func:`blocked_rsa` computes from running sums (no whole RDM held)
BLOCKED_COMPARE = ("corr", "cosine")


def blocked_rsa(x: Any, y: Any, *, rdm_method: str = "cosine", compare_method: str = "corr",
                block_rows: int = 512, progress: bool = False) -> float:
    """RSA over *every* row of ``x`` and ``y`` (e.g. 10,000 stimuli) without holding an RDM.

    Both RDMs are built ``block_rows`` rows at a time (one BLAS product per block and system)
    and only running float64 sums of their upper-triangle entries are kept, so the memory is
    two normalised copies of the activity plus two [block_rows, n] blocks, not two n x n
    matrices (at n = 10,000 one float64 RDM is 800 MB). Comparisons that are functions of such
    sums: Pearson (``corr``) and ``cosine``, equal to ``rsatoolbox.rdm.compare`` on the full
    RDMs to rounding. Spearman and Kendall need every entry's rank, hence a whole RDM: use
    :func:`rsa` with ``n_vectors`` draws for those. ``progress`` shows a tqdm bar over blocks.
    """
    if rdm_method not in OWN_RDMS:
        raise ParameterError(f"blocked RSA builds {' and '.join(OWN_RDMS)} RDMs, not "
                             f"{rdm_method!r}", field="rdm_method",
                             fix="use rdm_method cosine or correlation")
    if compare_method not in BLOCKED_COMPARE:
        raise ParameterError(f"compare_method {compare_method!r} needs the ranks of every RDM "
                             "entry, so a whole RDM: it cannot be computed block by block",
                             field="compare_method",
                             fix="use corr or cosine, or rsa() with n_vectors draws")
    n = int(x.shape[0])
    if int(y.shape[0]) != n or n < 3:
        raise SimbenchError(f"blocked RSA needs the same 3 or more samples in both systems, got "
                            f"{x.shape[0]} and {y.shape[0]} rows")

    def unit_rows(t: Any) -> np.ndarray:
        out = np.empty(t.shape, dtype=np.float64)
        for lo, b, norms in _direction_blocks(t, rdm_method):
            if not np.all(norms > 0):
                raise SimbenchError(f"the {rdm_method} distance is undefined for rows with no "
                                    "direction (zero norm)", fix="drop those samples first")
            out[lo:lo + len(b)] = b / norms[:, None]
        return out

    ux, uy = unit_rows(x), unit_rows(y)
    sums = np.zeros(5)  # a, b, a^2, b^2, ab over the upper triangle
    starts: Any = range(0, n - 1, block_rows)
    if progress:
        from tqdm.auto import tqdm

        from simbench.runtime import progress_shown

        starts = tqdm(starts, desc="RSA blocks", unit="block", leave=False,
                      disable=not progress_shown())
    for lo in starts:
        hi = min(lo + block_rows, n - 1)
        # rows lo..hi-1 against the columns after them: entries (i, j), j > i
        a = 1.0 - ux[lo:hi] @ ux[lo + 1:].T
        b = 1.0 - uy[lo:hi] @ uy[lo + 1:].T
        keep = np.arange(lo + 1, n)[None, :] > np.arange(lo, hi)[:, None]
        a, b = a[keep], b[keep]
        sums += (a.sum(), b.sum(), a @ a, b @ b, a @ b)
    m = n * (n - 1) / 2
    sa, sb, saa, sbb, sab = sums
    if compare_method == "cosine":
        return float(sab / np.sqrt(saa * sbb))
    cov = sab - sa * sb / m
    return float(cov / np.sqrt((saa - sa * sa / m) * (sbb - sb * sb / m)))


def rdm_memory_bytes(k: int) -> int:
    """What one in-memory draw of ``k`` rows holds at its peak: the [k, k] float64 product and
    about four condensed RDMs (both systems' and the comparison's working copies)."""
    return 24 * k * k


def blocked_memory_bytes(k: int, dx: int, dy: int, block_rows: int) -> int:
    """What :func:`blocked_rsa` holds on ``k`` rows: the rows gathered as float64 and their
    unit-normalised copies, plus per row of a block two [1, k] products, their selected
    entries and the mask (33 bytes per entry)."""
    return 16 * k * (dx + dy) + 33 * k * block_rows


def _direction_blocks(t: Any, rdm_method: str) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(first row, rows in float64 less their mean for ``correlation``, their norms) a block of
    4,096 rows at a time: a row's distance is defined when its norm is not zero."""
    for lo in range(0, t.shape[0], 4096):
        b = np.asarray(t[lo:lo + 4096], dtype=np.float64)
        if rdm_method == "correlation":
            b = b - b.mean(axis=1, keepdims=True)
        yield lo, b, np.sqrt(np.einsum("ij,ij->i", b, b))


class RSA(CorrelativeMeasure):
    """RSA: correlation of two systems' representational dissimilarity matrices."""

    name = "rsa"
    symmetric = True
    higher_is_better = True
    range = (-1.0, 1.0)
    citation = CITATION
    description = ("Representational similarity analysis through rsatoolbox; default: the "
                   "paper's protocol (1,000 sampled vectors, cosine RDMs, Spearman, mean of 10 "
                   "draws). CI: spread of the per-draw values.")
    params = (
        Param("rdm_method", "cosine", "RDM dissimilarity: " + ", ".join(RDM_METHODS),
              choices=RDM_METHODS),
        Param("compare_method", "spearman", "rsatoolbox comparison: " +
              ", ".join(COMPARE_METHODS), choices=COMPARE_METHODS),
        Param("n_vectors", 1000, "samples per draw (same rows in both systems)", low=3),
        Param("n_draws", 10, "random draws averaged", low=1),
        *PAIRING_PARAMS,
        null_param("permutations of whole stimuli between the two systems (each recomputes "
                   "every draw's second RDM)"),
        *MEMORY_PARAMS,
    )
    #: the activity may be handed over still in its file (each draw reads its rows)
    lazy_activity = True

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """Mean RSA over the draws, with the draws' 95% percentile spread as the interval (and,
        with ``null`` > 0, a permutation null and p-value)."""
        import xarray as xr

        pair = paired_activity(systems, site, n_stimuli=params["n_stimuli"], seed=seed,
                               intersect=params["intersect"], lazy=True)
        k = min(params["n_vectors"], int(pair.x.shape[0]))
        dx, dy = int(pair.x.shape[1]), int(pair.y.shape[1])
        budget = memory_budget(rdm_memory_bytes(k) + (8 * k * (dx + dy) if pair.lazy else 0),
                               params["memory_mb"])
        block_rows = self._block_rows(site, k, dx, dy, params, budget) if budget.over else None
        if params["null"] > 0:  # the null re-pairs whole arrays: the pair loaded, when it fits
            held = memory_budget(pair.lazy_nbytes, params["memory_mb"])
            if held.over:
                raise ParameterError(f"rsa: the permutation null needs the paired activity in "
                                     f"memory, and {held.reason('it')}", field="null", site=site,
                                     fix="drop --null, or score a subset of the stimuli")
            pair = pair.loaded()
        result = rsa(pair.x, pair.y, rdm_method=params["rdm_method"],
                     compare_method=params["compare_method"], n_vectors=params["n_vectors"],
                     n_draws=params["n_draws"], seed=seed, block_rows=block_rows,
                     progress=params["progress"])
        draws = len(result.values)
        per_draw = xr.DataArray(result.values, dims=["draw"], coords={"draw": np.arange(draws)},
                                name="per_draw")
        attrs = {"rdm_method": params["rdm_method"], "compare_method": params["compare_method"],
                 "n_vectors": len(result.indices[0]), "n_draws": draws,
                 "n_rows": int(pair.x.shape[0]), "n_stimuli": pair.n_stimuli,
                 "n_excluded": result.n_excluded,
                 "rdm_source": ("simbench (BLAS), checked against rsatoolbox"
                                if params["rdm_method"] in OWN_RDMS else "rsatoolbox.calc_rdm"),
                 "device": "cpu"}
        if block_rows is not None:
            attrs.update(rdm_form="blocked", block_rows=block_rows,
                         blocked_reason=budget.reason(f"one draw's RDMs over {k:,} samples"),
                         rdm_source="simbench blocked sums (no RDM held), equal to "
                         "rsatoolbox.rdm.compare on the whole RDMs")
        ci = percentile_interval(result.values)
        usable = int(pair.x.shape[0]) - result.n_excluded
        attrs.update(interval_attrs(ci, "2.5-97.5 percentile of the per-draw values",
                                    n_boot=draws, n_units=usable,
                                    n_finite=int(np.isfinite(result.values).sum()),
                                    boot="n_draws", unit="samples"))
        if ci is None and draws == 1 and params["n_draws"] > 1:
            attrs["ci_note"] = (f"no interval: one draw holds every usable sample ({usable}"
                                f" <= n_vectors = {params['n_vectors']}); set n_vectors "
                                f"below {usable} for several draws")
        score = make_score(self.name, systems, site, value=result.value, ci=ci,
                           n_samples=len(result.indices[0]), breakdown={"per_draw": per_draw},
                           attrs=attrs)
        if params["null"] > 0:
            null = rsa_null(pair.x, pair.y, stimulus=pair.stimulus, time=pair.time,
                            n_perm=params["null"], seed=seed, rdm_method=params["rdm_method"],
                            compare_method=params["compare_method"],
                            n_vectors=params["n_vectors"], n_draws=params["n_draws"])
            score = with_null(score, null)
        return score

    def _block_rows(self, site: str, k: int, dx: int, dy: int, params: dict[str, Any],
                    budget: Budget) -> int:
        """Rows per block of :func:`blocked_rsa` within the budget, or a ParameterError saying
        why the RDMs cannot be summed block by block, or what memory would do."""
        size = f"{k:,} samples per draw: one draw's RDMs take {rdm_memory_bytes(k) / 2**20:,.0f} MiB"
        if params["rdm_method"] not in OWN_RDMS or params["compare_method"] not in BLOCKED_COMPARE:
            bad = ("rdm_method", params["rdm_method"]) if params["rdm_method"] not in OWN_RDMS \
                else ("compare_method", params["compare_method"])
            raise ParameterError(
                f"rsa: {size}, over the budget ({budget.reason('they')}), and {bad[0]} "
                f"{bad[1]!r} needs whole RDMs", field=bad[0], site=site,
                fix="use --rdm-method cosine or correlation with --compare-method corr or "
                "cosine (summed block by block), a smaller --n-vectors, or raise --memory-mb")
        if params["null"] > 0:
            raise ParameterError(f"rsa: the permutation null recomputes whole RDMs and {size}, "
                                 f"over the budget ({budget.reason('they')})", field="null",
                                 site=site, fix="drop --null or use a smaller --n-vectors")
        limit = int(budget.block_mb * 2**20)
        rows = (limit - blocked_memory_bytes(k, dx, dy, 0)) // (33 * k)
        if rows < 1:
            need = blocked_memory_bytes(k, dx, dy, 64) / 2**20
            memory = "--memory-mb" if budget.explicit else "the memory simbench may use"
            raise ParameterError(
                f"rsa (blocked): {memory} = {budget.block_mb:g} MiB does not hold the "
                f"{k:,} x ({dx} + {dy}) rows of one draw as float64 and a block of RDM rows",
                field="memory_mb", site=site,
                fix=f"pass --memory-mb {math.ceil(need)} or more (blocks of 64 rows), or a "
                "smaller --n-vectors")
        return int(min(rows, k))


@hookimpl
def simbench_measures() -> list[Measure]:
    """Register ``rsa``."""
    return [RSA()]
