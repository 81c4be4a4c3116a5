"""Centred kernel alignment (CKA) and the paper code's distance-matrix variant.

``cka`` (Kornblith et al. 2019) compares two systems' activity on the same samples through
HSIC, normalised: CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), with K and L the two
systems' kernel (Gram) matrices over samples. Kernels: linear, cosine (the linear kernel of
unit-normalised rows) and RBF. HSIC is the biased estimator tr(KHLH) by default, or the
unbiased estimator of Song et al. (2012) (``debiased``), which removes the small-sample bias
that pushes biased CKA towards 1 when units outnumber samples.

``cka_paper`` is the variant the paper's own code computes: z-score every unit, take the
samples' pairwise distance matrices, and align those matrices as kernels (see
:class:`CKAPaper`).

How it is computed (one engine for both forms and for the bootstrap): every estimator is a
function of a few sums over samples (``_Ingredients``). With per-sample weights (1 for the
estimate, bootstrap counts for a replicate) these sums are

- feature form, linear and cosine kernels, O(n d^2): weighted sums of X^T X, Y^T Y, X^T Y,
  column sums and (debiased) row-norm moments, kept per bootstrap unit so that a replicate is
  a weighted sum of small matrices, not a new pass over the data;
- Gram form, any kernel, O(n^2 d): matrix-vector products with K, L and K * L.

``form=auto`` picks whichever costs fewer operations. Sums, norms and traces are accumulated in
float64 even when the products run in float32.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from simbench_plugins._correlative import (
    DTYPES,
    bootstrap_counts,
    make_score,
    paired_activity,
    recentred_interval,
    stimulus_groups,
    subsample_rows,
    torch_device,
)

from simbench import hookimpl
from simbench.errors import ParameterError, SimbenchError
from simbench.measure import Measure, Param

if TYPE_CHECKING:
    import torch

    from simbench.result import Score
    from simbench.systems import System

KERNELS = ("linear", "cosine", "rbf")
FORMS = ("auto", "feature", "gram")
CITATION = ("Kornblith, Norouzi, Lee & Hinton (2019). Similarity of Neural Network "
            "Representations Revisited. ICML. Debiased HSIC: Song et al. (2012), JMLR 13.")

# Per-unit moment stacks of the feature form may use this much memory (float64); beyond it the
# bootstrap units become random groups of stimuli (see _correlative.stimulus_groups).
MOMENT_BUDGET_BYTES = 1 << 30
# Bootstrap units of the feature form: every stimulus while the replicates cost at most
# BOOT_FLOPS (each replicate sums the units' d x d moments); past that, MIN_GROUPS to MAX_UNITS
# random groups of stimuli.
BOOT_FLOPS = 4 * 10**9
MAX_UNITS = 1024
MIN_GROUPS = 64
MIN_UNITS = 16  # fewer possible units than this: no bootstrap interval (attrs say why)
CHUNK_BYTES = 1 << 27  # working-set cap for chunked replicate / row loops


@dataclasses.dataclass
class CKAResult:
    """The estimate, its bootstrap replicates and how they were computed."""

    value: float
    replicates: np.ndarray
    form: str
    n: int
    attrs: dict[str, Any]


# ---- public functions -----------------------------------------------------------------------
def cka(
    x: Any,
    y: Any,
    *,
    kernel: str = "linear",
    debiased: bool = False,
    rbf_sigma: float = 1.0,
    form: str = "auto",
    max_samples: int = 5000,
    dtype: str = "float64",
    stimulus: np.ndarray | None = None,
    n_boot: int = 0,
    seed: int = 0,
    device: str = "cpu",
) -> CKAResult:
    """CKA between row-aligned activity ``x`` [n, dx] and ``y`` [n, dy].

    ``stimulus`` gives each row's stimulus (rows of one stimulus are resampled together by the
    bootstrap; default: every row is its own unit). ``max_samples`` caps the rows of the Gram form
    (a seeded subsample; 0 keeps all). ``rbf_sigma`` is the RBF bandwidth as a fraction of the
    median pairwise distance (Kornblith et al.'s ``threshold``).
    """
    import torch

    if kernel not in KERNELS:
        raise ParameterError(f"kernel must be one of {KERNELS}, got {kernel!r}", field="kernel")
    if form not in FORMS:
        raise ParameterError(f"form must be one of {FORMS}, got {form!r}", field="form")
    if dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {DTYPES}, got {dtype!r}", field="dtype")
    tdtype = getattr(torch, dtype)
    tx = torch.as_tensor(x).to(device=device, dtype=tdtype)
    ty = torch.as_tensor(y).to(device=device, dtype=tdtype)
    n = _check_rows(tx, ty, debiased)
    stim = np.arange(n) if stimulus is None else np.unique(stimulus, return_inverse=True)[1]
    dx, dy = tx.shape[1], ty.shape[1]
    if kernel == "rbf" and form == "feature":
        raise ParameterError("the RBF kernel has no feature-space form", field="form",
                             fix="use --form auto or --form gram")
    chosen = form
    if form == "auto":
        feature_cost = n * (dx * dx + dy * dy + dx * dy)
        gram_cost = n * n * (dx + dy + 3)
        chosen = "gram" if kernel == "rbf" or gram_cost < feature_cost else "feature"
    attrs: dict[str, Any] = {"kernel": kernel, "debiased": debiased, "form": chosen,
                             "dtype": dtype, "units_x": dx, "units_y": dy, "n_rows": n}
    if kernel == "cosine":
        tx, ty = _unit_rows(tx), _unit_rows(ty)
    if chosen == "feature":
        values = _feature_cka(tx, ty, stim, debiased=debiased, n_boot=n_boot, seed=seed,
                              attrs=attrs)
    else:
        keep = subsample_rows(n, max_samples, seed)
        if keep is not None:
            idx = torch.as_tensor(keep, device=tx.device)
            tx, ty, stim = tx[idx], ty[idx], stim[keep]
            attrs["subsampled_rows"] = len(keep)
        K = _gram(tx, kernel, rbf_sigma, attrs, "x")
        L = _gram(ty, kernel, rbf_sigma, attrs, "y")
        values = gram_cka(K, L, stim, debiased=debiased, n_boot=n_boot, seed=seed, attrs=attrs)
    return CKAResult(float(values[0]), values[1:], chosen, int(attrs.get("subsampled_rows", n)),
                     attrs)


def gram_cka(
    K: torch.Tensor,
    L: torch.Tensor,
    stimulus: np.ndarray,
    *,
    debiased: bool = False,
    n_boot: int = 0,
    seed: int = 0,
    attrs: dict[str, Any] | None = None,
) -> np.ndarray:
    """CKA of two [n, n] kernel matrices: the estimate, then ``n_boot`` bootstrap replicates.

    Replicates resample stimuli with replacement; a replicate is the estimator evaluated on the
    resampled rows, computed through per-row weights without building resampled matrices.
    """
    import torch

    K = K.to(torch.float64)
    L = L.to(torch.float64)
    units, inverse = np.unique(np.asarray(stimulus), return_inverse=True)
    counts = _weights(len(units), n_boot, seed)
    W = torch.as_tensor(counts[:, inverse].T.copy(), device=K.device)  # [n, 1 + n_boot]
    if attrs is not None and n_boot > 0:
        attrs["bootstrap_units"] = f"{len(units)} stimuli"
    dK, dL = torch.diagonal(K), torch.diagonal(L)
    KW, LW = K @ W, L @ W
    n_w = W.sum(0)

    def ingredients(A: torch.Tensor, B: torch.Tensor, dA: torch.Tensor, dB: torch.Tensor,
                    AW: torch.Tensor, BW: torch.Tensor) -> _Ingredients:
        return _Ingredients(
            T=_weighted_hadamard_quadratic(A, B, W),
            D=(dA * dB) @ W,
            R=(W * AW * BW).sum(0),
            SK=(W * AW).sum(0), SL=(W * BW).sum(0),
            dK=dA @ W, dL=dB @ W,
            E_KL=(W * dA[:, None] * BW).sum(0), E_LK=(W * dB[:, None] * AW).sum(0),
        )

    xy = ingredients(K, L, dK, dL, KW, LW)
    xx = ingredients(K, K, dK, dK, KW, KW)
    yy = ingredients(L, L, dL, dL, LW, LW)
    return _cka_from(xy, xx, yy, n_w, debiased)


# ---- the estimator from sums over samples -------------------------------------------------
@dataclasses.dataclass
class _Ingredients:
    """Weighted sums over samples p, q (each a tensor with one entry per weighting).

    T = sum_pq K_pq L_pq, D = sum_p K_pp L_pp, R = sum_p (K1)_p (L1)_p, SK = 1'K1, SL = 1'L1,
    dK = tr K, dL = tr L, E_KL = sum_p K_pp (L1)_p, E_LK = sum_p L_pp (K1)_p.
    """

    T: torch.Tensor
    D: torch.Tensor
    R: torch.Tensor
    SK: torch.Tensor
    SL: torch.Tensor
    dK: torch.Tensor
    dL: torch.Tensor
    E_KL: torch.Tensor
    E_LK: torch.Tensor


def _hsic(g: _Ingredients, n: torch.Tensor, debiased: bool) -> torch.Tensor:
    """HSIC up to a factor common to all three HSICs of one CKA (it cancels).

    Biased: tr(KHLH) = T - 2R/n + SK SL / n^2. Unbiased (Song et al. 2012, with K~ = K with
    zero diagonal): [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)).
    """
    if not debiased:
        return g.T - 2 * g.R / n + g.SK * g.SL / (n * n)
    trace = g.T - g.D
    ones = (g.SK - g.dK) * (g.SL - g.dL) / ((n - 1) * (n - 2))
    cross = g.R - g.E_KL - g.E_LK + g.D
    return (trace + ones - 2 * cross / (n - 2)) / (n * (n - 3))


def _cka_from(xy: _Ingredients, xx: _Ingredients, yy: _Ingredients, n: torch.Tensor,
              debiased: bool) -> np.ndarray:
    import torch

    hxy, hxx, hyy = (_hsic(g, n, debiased) for g in (xy, xx, yy))
    denom = torch.sqrt(hxx * hyy)
    values = (hxy / denom).cpu().numpy()
    bad = ~(np.isfinite(values) & (denom.cpu().numpy() > 0))
    values[bad] = np.nan
    return values


# ---- feature form ---------------------------------------------------------------------------
def _feature_cka(tx: torch.Tensor, ty: torch.Tensor, stim: np.ndarray, *, debiased: bool,
                 n_boot: int, seed: int, attrs: dict[str, Any]) -> np.ndarray:
    """Linear-kernel CKA from per-unit sums of products: the estimate, then the replicates."""
    import torch

    dx, dy = tx.shape[1], ty.shape[1]
    n_units, bounds = 1, [(0, tx.shape[0])]
    if n_boot > 0:
        elems = dx * dx + dy * dy + dx * dy  # float64 entries kept per bootstrap unit
        by_cost = min(MAX_UNITS, max(MIN_GROUPS, BOOT_FLOPS // (2 * n_boot * elems)))
        max_units = min(by_cost, MOMENT_BUDGET_BYTES // (8 * (elems + 3 * (dx + dy))))
        n_stim = int(np.max(stim)) + 1
        if max_units < min(MIN_UNITS, n_stim):
            attrs["ci_note"] = (f"no bootstrap: {dx}x{dy} units need too much memory per "
                                "bootstrap unit; use --form gram with --max_samples")
            n_boot = 0
        else:
            group, n_units = stimulus_groups(stim, n_stim, max_units, seed)
            order = np.argsort(group, kind="stable")
            if np.any(order != np.arange(len(order))):  # rows of one unit must be contiguous
                idx = torch.as_tensor(order, device=tx.device)
                tx, ty = tx[idx], ty[idx]
            sizes = np.bincount(group, minlength=n_units)
            edges = np.concatenate([[0], np.cumsum(sizes)])
            bounds = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
            attrs["bootstrap_units"] = (f"{n_units} stimuli" if n_units == n_stim else
                                        f"{n_units} random groups of {n_stim} stimuli")
    stacks = _unit_moments(tx, ty, bounds, debiased)
    weights = torch.as_tensor(_weights(n_units, n_boot, seed), device=tx.device)
    per_rep = 8 * (dx * dx + dy * dy + dx * dy)
    chunk = max(1, CHUNK_BYTES // per_rep)
    out = []
    for lo in range(0, weights.shape[0], chunk):
        w = weights[lo:lo + chunk]
        m = {k: torch.tensordot(w, v, dims=1) for k, v in stacks.items()}
        xy, xx, yy = _feature_ingredients(m, debiased)
        out.append(_cka_from(xy, xx, yy, m["n"], debiased))
    return np.concatenate(out)


def _unit_moments(tx: torch.Tensor, ty: torch.Tensor, bounds: Sequence[tuple[int, int]],
                  debiased: bool) -> dict[str, torch.Tensor]:
    """Per bootstrap unit (contiguous rows), the float64 sums the estimator needs.

    Rows are centred on the way, a block at a time into one reused buffer (no centred copy of
    the data): HSIC is translation invariant, and centred data keep the mean corrections (and
    their cancellation) small, which matters in float32. The corrections use the exact column
    sums of the centred rows, so the mean itself need not be exact. Each block's products are
    added into float64 accumulators.
    """
    import torch

    f64, dev = torch.float64, tx.device
    dx, dy = tx.shape[1], ty.shape[1]
    shapes = {"n": (), "sxx": (dx, dx), "syy": (dy, dy), "sxy": (dx, dy), "mx": (dx,),
              "my": (dy,)}
    if debiased:
        shapes.update({"qxx": (), "qyy": (), "qxy": (), "vxx": (dx,), "vyy": (dy,),
                       "vxy": (dx,), "vyx": (dy,)})
    out = {k: torch.zeros((len(bounds), *shape), dtype=f64, device=dev)
           for k, shape in shapes.items()}
    mux, muy = tx.mean(0), ty.mean(0)
    rows = max(256, CHUNK_BYTES // (2 * tx.element_size() * max(dx, dy)))
    bufx = torch.empty((min(rows, tx.shape[0]), dx), dtype=tx.dtype, device=dev)
    bufy = torch.empty((min(rows, tx.shape[0]), dy), dtype=ty.dtype, device=dev)
    for g, (lo, hi) in enumerate(bounds):
        out["n"][g] = hi - lo
        for start in range(lo, hi, rows):
            c = min(rows, hi - start)
            xs = torch.sub(tx[start:start + c], mux, out=bufx[:c])
            ys = torch.sub(ty[start:start + c], muy, out=bufy[:c])
            out["sxx"][g] += xs.T @ xs
            out["syy"][g] += ys.T @ ys
            out["sxy"][g] += xs.T @ ys
            out["mx"][g] += xs.sum(0)
            out["my"][g] += ys.sum(0)
            if debiased:
                x64, y64 = xs.to(f64), ys.to(f64)
                rx, ry = (x64 * x64).sum(1), (y64 * y64).sum(1)  # squared row norms
                out["qxx"][g] += rx @ rx
                out["qyy"][g] += ry @ ry
                out["qxy"][g] += rx @ ry
                out["vxx"][g] += rx @ x64
                out["vyy"][g] += ry @ y64
                out["vxy"][g] += ry @ x64
                out["vyx"][g] += rx @ y64
    return out


def _feature_ingredients(m: dict[str, torch.Tensor], debiased: bool
                         ) -> tuple[_Ingredients, _Ingredients, _Ingredients]:
    """The Gram-form sums of the linear kernel, written with feature-space moments.

    K = XX': sum_pq K_pq L_pq = ||X'Y||^2, (K1)_p = x_p . mx, K_pp = ||x_p||^2, so e.g.
    R = mx' X'Y my and E_KL = sum_p ||x_p||^2 y_p . my = vyx . my.
    """
    import torch

    def bil(a: torch.Tensor, S: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,bij,bj->b", a, S, b)

    def sq(S: torch.Tensor) -> torch.Tensor:
        return (S * S).sum((-2, -1))

    mx, my = m["mx"], m["my"]
    tx = torch.diagonal(m["sxx"], dim1=-2, dim2=-1).sum(-1)
    ty = torch.diagonal(m["syy"], dim1=-2, dim2=-1).sum(-1)
    nx, ny = (mx * mx).sum(-1), (my * my).sum(-1)
    zero = torch.zeros_like(tx)
    if debiased:
        e_xy, e_yx = (m["vyx"] * my).sum(-1), (m["vxy"] * mx).sum(-1)
        e_xx, e_yy = (m["vxx"] * mx).sum(-1), (m["vyy"] * my).sum(-1)
        d_xy, d_xx, d_yy = m["qxy"], m["qxx"], m["qyy"]
    else:
        e_xy = e_yx = e_xx = e_yy = d_xy = d_xx = d_yy = zero
    xy = _Ingredients(T=sq(m["sxy"]), D=d_xy, R=bil(mx, m["sxy"], my), SK=nx, SL=ny,
                      dK=tx, dL=ty, E_KL=e_xy, E_LK=e_yx)
    xx = _Ingredients(T=sq(m["sxx"]), D=d_xx, R=bil(mx, m["sxx"], mx), SK=nx, SL=nx,
                      dK=tx, dL=tx, E_KL=e_xx, E_LK=e_xx)
    yy = _Ingredients(T=sq(m["syy"]), D=d_yy, R=bil(my, m["syy"], my), SK=ny, SL=ny,
                      dK=ty, dL=ty, E_KL=e_yy, E_LK=e_yy)
    return xy, xx, yy


# ---- Gram form ------------------------------------------------------------------------------
def _gram(t: torch.Tensor, kernel: str, rbf_sigma: float, attrs: dict[str, Any],
          which: str) -> torch.Tensor:
    """The [n, n] float64 kernel matrix of rows ``t`` (cosine rows are already unit length)."""
    import torch

    t = t - t.mean(0)
    G = (t @ t.T).to(torch.float64)
    if kernel in ("linear", "cosine"):
        return G
    sq = _sq_distances(G)
    median = float(np.median(sq.cpu().numpy()))  # all n^2 entries, as Kornblith et al.'s code
    if not median > 0:
        raise SimbenchError(f"RBF kernel: system {which} has (almost) all samples identical",
                            field="rbf_sigma", fix="use the linear kernel")
    if rbf_sigma <= 0:
        raise ParameterError("rbf_sigma must be positive", field="rbf_sigma")
    attrs[f"rbf_median_sq_distance_{which}"] = median
    return torch.exp_(sq.mul_(-1.0 / (2.0 * rbf_sigma**2 * median)))


def _sq_distances(G: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances from a float64 Gram matrix (clamped at 0, zero diagonal)."""
    import torch

    r = torch.diagonal(G)
    sq = (r[:, None] + r[None, :]).sub_(G, alpha=2.0).clamp_(min=0.0)
    sq.fill_diagonal_(0.0)
    return sq


def _weighted_hadamard_quadratic(A: torch.Tensor, B: torch.Tensor, W: torch.Tensor
                                 ) -> torch.Tensor:
    """Per column w of W: w' (A * B) w, with A * B built a block of rows at a time."""
    import torch

    n = A.shape[0]
    rows = max(1, CHUNK_BYTES // (8 * n))
    out = torch.zeros(W.shape[1], dtype=torch.float64, device=A.device)
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        out += (((A[lo:hi] * B[lo:hi]) @ W) * W[lo:hi]).sum(0)
    return out


# ---- small helpers --------------------------------------------------------------------------
def _weights(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """Row 0: all ones (the estimate); then one row of bootstrap counts per replicate."""
    ones = np.ones((1, n_units))
    if n_boot <= 0 or n_units < 2:
        return ones
    return np.concatenate([ones, bootstrap_counts(n_units, n_boot, seed)])


def _unit_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (the cosine kernel); all-zero rows stay zero."""
    import torch

    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True, dtype=torch.float64)
    return t / torch.where(norms > 0, norms, torch.ones_like(norms)).to(t.dtype)


def _check_rows(tx: torch.Tensor, ty: torch.Tensor, debiased: bool) -> int:
    if tx.ndim != 2 or ty.ndim != 2:
        raise SimbenchError(f"CKA needs [samples, units] arrays, got shapes {tuple(tx.shape)} "
                            f"and {tuple(ty.shape)}")
    if tx.shape[0] != ty.shape[0]:
        raise SimbenchError(f"CKA needs the same samples in both systems, got {tx.shape[0]} "
                            f"and {ty.shape[0]} rows")
    n = int(tx.shape[0])
    need = 4 if debiased else 2
    if n < need:
        raise SimbenchError(f"CKA needs at least {need} paired samples, got {n}",
                            fix="record more stimuli")
    return n


def _interval(result: CKAResult) -> tuple[float, float] | None:
    return recentred_interval(result.value, result.replicates)


def _score_attrs(result: CKAResult, n_boot: int) -> dict[str, Any]:
    attrs = dict(result.attrs)
    reps = result.replicates[np.isfinite(result.replicates)]
    if len(reps) > 1:
        attrs["ci_method"] = (f"95% percentile bootstrap over stimuli ({len(reps)} replicates), "
                              "recentred on the estimate (duplicated samples inflate CKA)")
        attrs["bootstrap_shift"] = float(np.median(reps) - result.value)
    else:
        attrs["ci_method"] = "none"
    return attrs


def _common_params() -> tuple[Param, ...]:
    return (
        Param("n_stimuli", 1000, "stimuli a network (TorchSystem) records; recordings use "
              "all theirs", low=1),
        Param("max_samples", 5000, "Gram form: at most this many samples (seeded subsample; "
              "0 = all); memory grows as its square", low=0),
        Param("n_boot", 200, "bootstrap replicates over stimuli for the confidence interval "
              "(0 = none)", low=0),
        Param("intersect", False, "use only the stimuli both systems share"),
        Param("dtype", "float64", "precision of the matrix products (sums are always float64)",
              choices=DTYPES),
    )


# ---- the measures ---------------------------------------------------------------------------
class CKA(Measure):
    """Centred kernel alignment of two systems' activity on the same samples."""

    name = "cka"
    family = "correlative"
    access = ("recording", "recording")
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
        Param("form", "auto", "feature (O(n d^2)), gram (O(n^2 d)) or auto (cheaper one)",
              choices=FORMS),
        *_common_params(),
    )

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """CKA at ``site`` with a percentile bootstrap interval over stimuli."""
        pair = paired_activity(systems, site, n_stimuli=params["n_stimuli"], seed=seed,
                               intersect=params["intersect"], dtype=params["dtype"])
        result = cka(pair.x, pair.y, stimulus=pair.stimulus, kernel=params["kernel"],
                     debiased=params["debiased"], rbf_sigma=params["rbf_sigma"],
                     form=params["form"], max_samples=params["max_samples"],
                     dtype=params["dtype"], n_boot=params["n_boot"], seed=seed,
                     device=torch_device(device))
        _require_finite(result, systems, site)
        return make_score(self.name, systems, site, value=result.value,
                          ci=_interval(result), n_samples=result.n,
                          attrs=_score_attrs(result, params["n_boot"]))


class CKAPaper(Measure):
    """The paper code's "CKA": alignment of the distance matrices of z-scored activity.

    Our reading of that code: z-score every unit over the samples (constant units are dropped),
    compute each system's [n, n] matrix of pairwise distances between samples, and take the
    centred-kernel alignment of the two matrices used as kernels,
    <H Dx H, H Dy H>_F / (||H Dx H||_F ||H Dy H||_F). Euclidean distances are conditionally
    negative definite, so H D H is negative semidefinite and the value lies in [0, 1]. With
    squared Euclidean distances (``metric=sqeuclidean``) it equals linear CKA of the z-scored
    data. It is a different number from ``cka``; use it to match the paper's figures.
    """

    name = "cka_paper"
    family = "correlative"
    access = ("recording", "recording")
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
    )

    def score(self, systems: Sequence[System], *, site: str, task: str | None, seed: int,
              device: str, **params: Any) -> Score:
        """Distance-matrix CKA at ``site`` with a percentile bootstrap interval over stimuli."""
        pair = paired_activity(systems, site, n_stimuli=params["n_stimuli"], seed=seed,
                               intersect=params["intersect"], dtype=params["dtype"])
        result = distance_cka(pair.x, pair.y, stimulus=pair.stimulus, metric=params["metric"],
                              max_samples=params["max_samples"], dtype=params["dtype"],
                              n_boot=params["n_boot"], seed=seed, device=torch_device(device))
        _require_finite(result, systems, site)
        return make_score(self.name, systems, site, value=result.value,
                          ci=_interval(result), n_samples=result.n,
                          attrs=_score_attrs(result, params["n_boot"]))


def distance_cka(
    x: Any,
    y: Any,
    *,
    metric: str = "euclidean",
    max_samples: int = 5000,
    dtype: str = "float64",
    stimulus: np.ndarray | None = None,
    n_boot: int = 0,
    seed: int = 0,
    device: str = "cpu",
) -> CKAResult:
    """``cka_paper``: CKA of the distance matrices of z-scored ``x`` and ``y`` (see CKAPaper).

    The z-scoring uses the full sample's means and deviations; bootstrap replicates reuse them.
    """
    import torch

    tdtype = getattr(torch, dtype)
    tx = torch.as_tensor(x).to(device=device, dtype=tdtype)
    ty = torch.as_tensor(y).to(device=device, dtype=tdtype)
    n = _check_rows(tx, ty, False)
    stim = np.arange(n) if stimulus is None else np.asarray(stimulus)
    keep = subsample_rows(n, max_samples, seed)
    attrs: dict[str, Any] = {"metric": metric, "form": "gram", "dtype": dtype, "n_rows": n,
                             "units_x": tx.shape[1], "units_y": ty.shape[1]}
    if keep is not None:
        idx = torch.as_tensor(keep, device=tx.device)
        tx, ty, stim = tx[idx], ty[idx], stim[keep]
        attrs["subsampled_rows"] = len(keep)
    mats = []
    for t in (tx, ty):
        t64 = t.to(torch.float64)
        mean, std = t64.mean(0), t64.std(0)
        live = std > 0
        z = ((t64[:, live] - mean[live]) / std[live]).to(tdtype)
        sq = _sq_distances((z @ z.T).to(torch.float64))
        mats.append(sq if metric == "sqeuclidean" else sq.sqrt_())
    values = gram_cka(mats[0], mats[1], stim, n_boot=n_boot, seed=seed, attrs=attrs)
    return CKAResult(float(values[0]), values[1:], "gram", int(mats[0].shape[0]), attrs)


def _require_finite(result: CKAResult, systems: Sequence[System], site: str) -> None:
    if not math.isfinite(result.value):
        names = " and ".join(f"'{s.system_id}'" for s in systems)
        raise SimbenchError(f"CKA of {names} is undefined: one system's activity does not vary "
                            "over the samples (or too few samples for the debiased estimator)",
                            site=site, field="activity",
                            fix="check the recording, or compare another site")


@hookimpl
def simbench_measures() -> list[Measure]:
    """Register ``cka`` and ``cka_paper``."""
    return [CKA(), CKAPaper()]
