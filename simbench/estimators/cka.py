"""CKA estimators on plain arrays: numpy and torch only, nothing from simbench.

``cka`` (Kornblith et al. 2019) compares two systems' activity on the same samples through
HSIC, normalised: CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), with K and L the two
systems' kernel (Gram) matrices over samples. Kernels: linear, cosine (the linear kernel of
unit-normalised rows) and RBF. HSIC is the biased estimator tr(KHLH) by default, or the
unbiased estimator of Song et al. (2012) (``debiased``), which removes the small-sample bias
that pushes biased CKA towards 1 when units outnumber samples.

``distance_cka`` is the variant the paper's own code computes: z-score every unit, take the
samples' pairwise distance matrices, and align those matrices as kernels.

How it is computed (one engine for both forms and for the bootstrap): every estimator is a
function of a few sums over samples (:class:`Ingredients`, turned into HSIC by :func:`hsic`).
With per-sample weights (1 for the estimate, bootstrap counts for a replicate) these sums are

- feature form, linear and cosine kernels, O(n d^2): weighted sums of X^T X, Y^T Y, X^T Y,
  column sums and (debiased) row-norm moments, kept per bootstrap unit so that a replicate is
  a weighted sum of small matrices, not a new pass over the data;
- Gram form, any kernel, O(n^2 d): matrix-vector products with K, L and K * L.

``form=auto`` picks whichever costs fewer operations. Sums, norms and traces are accumulated in
float64 even when the products run in float32.

Memory: the input arrays are never copied whole. The feature form reads them a block of rows at
a time into one reused buffer of the compute ``dtype`` (so float32 data scored in float64 stay
float32 in memory); the Gram form copies only the rows it keeps (``max_samples``). What the
bootstrap adds (per-unit moments and replicate work in the feature form, weight columns in the
Gram form) is held under ``boot_memory_mb``; past it the feature form uses fewer, larger
bootstrap units, and when even ``MIN_UNITS`` units do not fit it computes no interval and says
so in ``attrs["ci_note"]``.

The permutation null of linear and kernel CKA (drawn by
:func:`simbench.calibration.permutation.linear_cka_null` and ``gram_cka_null``) reuses the same
HSIC over sums: :class:`KernelSums`, :func:`feature_null_cross` / :func:`gram_null_parts` (the
cross term under a re-pairing) and :func:`cka_over_row_maps`, with the exact permutation moments
of :func:`rv_permutation_moments`.

Bad input raises :class:`EstimatorError` (a ``ValueError``) with the parameter to change.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from simbench.estimators.resampling import bootstrap_counts, stimulus_groups, subsample_rows

if TYPE_CHECKING:
    import torch

KERNELS = ("linear", "cosine", "rbf")
FORMS = ("auto", "feature", "gram")
DTYPES = ("float32", "float64")

#: Default memory the bootstrap may use on top of the estimate, in MiB.
BOOT_MEMORY_MB = 512
# Bootstrap units of the feature form: every stimulus while the replicates cost at most
# BOOT_FLOPS (each replicate sums the units' d x d moments); past that, MIN_GROUPS to MAX_UNITS
# random groups of stimuli (fewer when boot_memory_mb holds fewer units' moments).
BOOT_FLOPS = 4 * 10**9
MAX_UNITS = 1024
MIN_GROUPS = 64
MIN_UNITS = 16  # fewer possible units than this: no bootstrap interval (ci_note says why)
CHUNK_BYTES = 1 << 26  # working-set cap of the row buffers and the Gram form's row blocks
GATHER_ROWS = 1024  # rows of random bootstrap groups gathered at a time (a small copy)

# A bootstrap unit of the feature form: a contiguous row range, or the rows of random groups.
_Rows = Union[tuple[int, int], "torch.Tensor"]


class EstimatorError(ValueError):
    """Input the estimators cannot use; ``field`` names the parameter, ``fix`` what to do."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None):
        super().__init__(message)
        self.message, self.field, self.fix = message, field, fix


@dataclasses.dataclass
class CKAResult:
    """The estimate, its bootstrap replicates and how they were computed.

    ``attrs`` records the form, kernel, dtype, the device the products ran on (e.g. ``cpu``,
    ``cuda:0``), the bootstrap units and, when there is no interval, ``ci_note`` saying why.
    """

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
    boot_memory_mb: float = BOOT_MEMORY_MB,
) -> CKAResult:
    """CKA between row-aligned activity ``x`` [n, dx] and ``y`` [n, dy].

    ``stimulus`` gives each row's stimulus (rows of one stimulus are resampled together by the
    bootstrap; default: every row is its own unit). ``max_samples`` caps the rows of the Gram form
    (a seeded subsample; 0 keeps all). ``rbf_sigma`` is the RBF bandwidth as a fraction of the
    median pairwise distance (Kornblith et al.'s ``threshold``). ``dtype`` is the precision of
    the matrix products; ``boot_memory_mb`` bounds what the bootstrap adds (see the module).
    """
    if kernel not in KERNELS:
        raise EstimatorError(f"kernel must be one of {KERNELS}, got {kernel!r}", field="kernel")
    if form not in FORMS:
        raise EstimatorError(f"form must be one of {FORMS}, got {form!r}", field="form")
    cdtype, tx, ty, n = _inputs(x, y, device, dtype, debiased)
    stim = np.arange(n) if stimulus is None else np.unique(stimulus, return_inverse=True)[1]
    dx, dy = tx.shape[1], ty.shape[1]
    if kernel == "rbf" and form == "feature":
        raise EstimatorError("the RBF kernel has no feature-space form", field="form",
                             fix="use --form auto or --form gram")
    chosen = form
    if form == "auto":
        feature_cost = n * (dx * dx + dy * dy + dx * dy)
        gram_cost = n * n * (dx + dy + 3)
        chosen = "gram" if kernel == "rbf" or gram_cost < feature_cost else "feature"
    attrs: dict[str, Any] = {"kernel": kernel, "debiased": debiased, "form": chosen,
                             "dtype": dtype, "units_x": dx, "units_y": dy, "n_rows": n,
                             "device": str(tx.device)}
    boot_bytes = int(boot_memory_mb * 2**20)
    if chosen == "feature":
        values = _feature_cka(tx, ty, stim, cdtype=cdtype, cosine=kernel == "cosine",
                              debiased=debiased, n_boot=n_boot, seed=seed,
                              boot_bytes=boot_bytes, attrs=attrs)
    else:
        K, L, stim = _matrices(tx, ty, stim, cdtype, attrs, max_samples=max_samples, seed=seed,
                               kernel=kernel, rbf_sigma=rbf_sigma)
        del tx, ty
        values = gram_cka(K, L, stim, debiased=debiased, n_boot=n_boot, seed=seed, attrs=attrs,
                          boot_memory_mb=boot_memory_mb)
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
    boot_memory_mb: float = BOOT_MEMORY_MB,
) -> np.ndarray:
    """CKA of two [n, n] kernel matrices: the estimate, then ``n_boot`` bootstrap replicates.

    Replicates resample stimuli with replacement; a replicate is the estimator evaluated on the
    resampled rows, computed through per-row weights without building resampled matrices. The
    weight columns are processed in batches whose working set (about ten [n, batch] float64
    arrays) stays under ``boot_memory_mb``.
    """
    import torch

    K = K.to(torch.float64)
    L = L.to(torch.float64)
    units, inverse = np.unique(np.asarray(stimulus), return_inverse=True)
    counts = _weights(len(units), n_boot, seed)
    if attrs is not None and n_boot > 0:
        attrs["bootstrap_units"] = f"{len(units)} stimuli"
    n = K.shape[0]
    dK, dL = torch.diagonal(K), torch.diagonal(L)
    batch = max(1, int(boot_memory_mb * 2**20) // (10 * 8 * n))
    out = []
    for lo in range(0, counts.shape[0], batch):
        W = torch.as_tensor(counts[lo:lo + batch, inverse].T.copy(), device=K.device)
        KW, LW = K @ W, L @ W

        def ingredients(A: torch.Tensor, B: torch.Tensor, dA: torch.Tensor, dB: torch.Tensor,
                        AW: torch.Tensor, BW: torch.Tensor, W: torch.Tensor = W) -> Ingredients:
            return Ingredients(
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
        out.append(_cka_from(xy, xx, yy, W.sum(0), debiased))
    return np.concatenate(out)


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
    boot_memory_mb: float = BOOT_MEMORY_MB,
) -> CKAResult:
    """The paper code's CKA (see the module): the distance matrices of z-scored ``x`` and ``y``
    aligned as kernels. Bootstrap replicates reuse the full sample's z-scoring."""
    if metric not in ("euclidean", "sqeuclidean"):
        raise EstimatorError(f"metric must be euclidean or sqeuclidean, got {metric!r}",
                             field="metric")
    cdtype, tx, ty, n = _inputs(x, y, device, dtype, False)
    stim = np.arange(n) if stimulus is None else np.asarray(stimulus)
    attrs: dict[str, Any] = {"metric": metric, "form": "gram", "dtype": dtype, "n_rows": n,
                             "units_x": tx.shape[1], "units_y": ty.shape[1],
                             "device": str(tx.device)}
    *mats, stim = _matrices(tx, ty, stim, cdtype, attrs, max_samples=max_samples, seed=seed,
                            metric=metric)
    del tx, ty
    values = gram_cka(mats[0], mats[1], stim, n_boot=n_boot, seed=seed, attrs=attrs,
                      boot_memory_mb=boot_memory_mb)
    return CKAResult(float(values[0]), values[1:], "gram", int(mats[0].shape[0]), attrs)


def bootstrap_unit_bytes(dx: int, dy: int, debiased: bool, itemsize: int = 8
                         ) -> tuple[int, int]:
    """Feature form: bytes of one bootstrap unit's moments, and the bootstrap's fixed work.

    The fixed work is one replicate's sums plus one block of gathered rows (``GATHER_ROWS``
    rows of data stored at ``itemsize`` bytes); ``boot_memory_mb`` holds the units' moments
    and at least the fixed work.
    """
    elems = dx * dx + dy * dy + dx * dy
    unit = 8 * (elems + dx + dy + 1 + (3 + 2 * (dx + dy) if debiased else 0))
    return unit, _replicate_bytes(dx, dy) + GATHER_ROWS * (dx + dy) * itemsize


def _replicate_bytes(dx: int, dy: int) -> int:
    """One bootstrap replicate's work in the feature form: its moments and a d x d square."""
    return 8 * (dx * dx + dy * dy + dx * dy + max(dx * dx, dy * dy, dx * dy) + 4 * (dx + dy))


# ---- the estimator from sums over samples -------------------------------------------------
@dataclasses.dataclass
class Ingredients:
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


def hsic(g: Ingredients, n: torch.Tensor, debiased: bool) -> torch.Tensor:
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


def _cka_from(xy: Ingredients, xx: Ingredients, yy: Ingredients, n: torch.Tensor,
              debiased: bool) -> np.ndarray:
    import torch

    hxy, hxx, hyy = (hsic(g, n, debiased) for g in (xy, xx, yy))
    denom = torch.sqrt(hxx * hyy)
    values = (hxy / denom).cpu().numpy()
    bad = ~(np.isfinite(values) & (denom.cpu().numpy() > 0))
    values[bad] = np.nan
    return values


# ---- feature form ---------------------------------------------------------------------------
def _feature_cka(tx: torch.Tensor, ty: torch.Tensor, stim: np.ndarray, *, cdtype: torch.dtype,
                 cosine: bool, debiased: bool, n_boot: int, seed: int, boot_bytes: int,
                 attrs: dict[str, Any]) -> np.ndarray:
    """Linear-kernel CKA from per-unit sums of products: the estimate, then the replicates."""
    import torch

    dx, dy = tx.shape[1], ty.shape[1]
    n_units: int = 1
    units: list[_Rows] = [(0, tx.shape[0])]
    itemsize = max(tx.element_size(), ty.element_size())
    unit_bytes, fixed_bytes = bootstrap_unit_bytes(dx, dy, debiased, itemsize)
    rep_bytes = _replicate_bytes(dx, dy)
    chunk = max(1, CHUNK_BYTES // rep_bytes)
    if n_boot > 0:
        elems = dx * dx + dy * dy + dx * dy  # float64 entries summed per unit and replicate
        by_cost = min(MAX_UNITS, max(MIN_GROUPS, BOOT_FLOPS // (2 * n_boot * elems)))
        max_units = min(by_cost, (boot_bytes - fixed_bytes) // unit_bytes)
        n_stim = int(np.max(stim)) + 1
        need = min(MIN_UNITS, n_stim)
        if max_units < need:
            want_mb = math.ceil((need * unit_bytes + fixed_bytes) / 2**20)
            attrs["ci_note"] = (
                f"no interval: the bootstrap over {need} units needs {want_mb} MiB of moments "
                f"for {dx} x {dy} units, over boot_memory_mb = {boot_bytes / 2**20:g}; raise "
                f"boot_memory_mb to {want_mb}, or use form=gram (with max_samples)")
            n_boot = 0
        else:
            group, n_units = stimulus_groups(stim, n_stim, max_units, seed)
            units = _unit_rows_of(group, n_units, tx.device)
            spare = boot_bytes - n_units * unit_bytes - (fixed_bytes - rep_bytes)
            chunk = max(1, spare // rep_bytes)
            attrs["bootstrap_units"] = (f"{n_units} stimuli" if n_units == n_stim else
                                        f"{n_units} random groups of {n_stim} stimuli")
    stacks = _unit_moments(tx, ty, units, debiased, cdtype=cdtype, cosine=cosine)
    weights = torch.as_tensor(_weights(n_units, n_boot, seed), device=tx.device)
    out = []
    for lo in range(0, weights.shape[0], chunk):
        w = weights[lo:lo + chunk]
        m = {k: torch.tensordot(w, v, dims=1) for k, v in stacks.items()}
        xy, xx, yy = _feature_ingredients(m, debiased)
        out.append(_cka_from(xy, xx, yy, m["n"], debiased))
        del m, xy, xx, yy
    return np.concatenate(out)


def _unit_rows_of(group: np.ndarray, n_units: int, device: torch.device) -> list[_Rows]:
    """Each unit's rows: a (start, stop) range when they are contiguous, else an index tensor.

    Rows of one stimulus are contiguous (pairing emits them stimulus by stimulus), so the exact
    stimulus bootstrap reads views; random groups of stimuli gather their rows block by block.
    """
    import torch

    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=n_units)
    edges = np.concatenate([[0], np.cumsum(sizes)])
    if np.array_equal(order, np.arange(len(order))):
        return list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    idx = torch.as_tensor(order, device=device)
    return [idx[lo:hi] for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist())]


def _blocks(t: torch.Tensor, rows: _Rows, size: int) -> Iterator[torch.Tensor]:
    """The rows of one unit of ``t``: views of ``size`` rows for a range, else copies of at
    most ``GATHER_ROWS`` gathered rows (so a gather never costs more than the budget holds)."""
    if isinstance(rows, tuple):
        for start in range(rows[0], rows[1], size):
            yield t[start:min(start + size, rows[1])]
    else:
        size = min(size, GATHER_ROWS)
        for start in range(0, len(rows), size):
            yield t.index_select(0, rows[start:start + size])


def _prepared(src: torch.Tensor, buf: torch.Tensor, cosine: bool,
              mean: torch.Tensor | None) -> torch.Tensor:
    """``src`` in the compute dtype (in ``buf``), rows unit-normalised (cosine), then centred."""

    out = buf[:src.shape[0]]
    out.copy_(src)
    if cosine:
        out.div_(_row_norms(out))
    if mean is not None:
        out.sub_(mean)
    return out


#: what a file reader may hold per system beside the rows it returns (HDF5's chunk cache,
#: allocator slack; about 80 MiB measured reading 4,096-unit float32 blocks from netCDF)
_READER_BYTES = 96 << 20
#: bytes of one float64 slice that float64 sums over a float32 block convert at a time (a
#: whole-block ``sum(dtype=float64)`` would make a float64 copy of the block)
_F64_SLICE_BYTES = 1 << 24


def _f64_slices(t: torch.Tensor) -> Iterator[torch.Tensor]:
    """``t``'s rows in float64, a slice of at most ``_F64_SLICE_BYTES`` at a time."""
    import torch

    rows = max(1, _F64_SLICE_BYTES // (_F64 * max(1, t.shape[1])))
    for i in range(0, t.shape[0], rows):
        yield t[i:i + rows].to(torch.float64)


def _sum64(t: torch.Tensor) -> torch.Tensor:
    """Column sums of ``t`` in float64, never holding a float64 copy of more than a slice."""
    import torch

    if t.dtype == torch.float64:
        return t.sum(0)
    return sum((part.sum(0) for part in _f64_slices(t)),
               torch.zeros(t.shape[1], dtype=torch.float64, device=t.device))


def _column_mean(t: torch.Tensor, buf: torch.Tensor, cosine: bool, size: int) -> torch.Tensor:
    """Column means of the prepared rows (float64 sums of blocks), in the compute dtype."""
    import torch

    total = sum((_sum64(_prepared(block, buf, cosine, None))
                 for block in _blocks(t, (0, t.shape[0]), size)),
                torch.zeros(t.shape[1], dtype=torch.float64, device=t.device))
    return (total / t.shape[0]).to(buf.dtype)


def _unit_moments(tx: torch.Tensor, ty: torch.Tensor, units: Sequence[_Rows], debiased: bool,
                  *, cdtype: torch.dtype, cosine: bool) -> dict[str, torch.Tensor]:
    """Per bootstrap unit, the float64 sums the estimator needs, from rows prepared a block at a
    time in one reused buffer per system. Centring keeps the mean corrections (and their
    cancellation) small, which matters in float32; the corrections use the exact column sums of
    the centred rows, so the mean itself need not be exact."""
    import torch

    f64, dev = torch.float64, tx.device
    dx, dy = tx.shape[1], ty.shape[1]
    out = _moment_accumulators(len(units), dx, dy, debiased, dev)
    itemsize = torch.empty((), dtype=cdtype).element_size()
    rows = max(256, CHUNK_BYTES // (2 * itemsize * max(dx, dy)))
    rows = min(rows, tx.shape[0])
    bufx = torch.empty((rows, dx), dtype=cdtype, device=dev)
    bufy = torch.empty((rows, dy), dtype=cdtype, device=dev)
    mux = _column_mean(tx, bufx, cosine, rows)
    muy = _column_mean(ty, bufy, cosine, rows)
    for g, unit in enumerate(units):
        for bx, by in zip(_blocks(tx, unit, rows), _blocks(ty, unit, rows)):
            xs = _prepared(bx, bufx, cosine, mux)
            ys = _prepared(by, bufy, cosine, muy)
            _add_moments(out, g, xs, ys, [(xs.to(f64), ys.to(f64))] if debiased else [])
    return out


def _moment_accumulators(n_units: int, dx: int, dy: int, debiased: bool,
                         device: torch.device) -> dict[str, torch.Tensor]:
    """Zeroed float64 sums per unit: row count, X'X, Y'Y, X'Y, column sums and (debiased)
    the row-norm moments."""
    import torch

    shapes = {"n": (), "sxx": (dx, dx), "syy": (dy, dy), "sxy": (dx, dy), "mx": (dx,),
              "my": (dy,)}
    if debiased:
        shapes.update({"qxx": (), "qyy": (), "qxy": (), "vxx": (dx,), "vyy": (dy,),
                       "vxy": (dx,), "vyx": (dy,)})
    return {k: torch.zeros((n_units, *shape), dtype=torch.float64, device=device)
            for k, shape in shapes.items()}


def _add_moments(m: dict[str, torch.Tensor], g: int, xs: torch.Tensor, ys: torch.Tensor,
                 f64_pairs: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Add one block of prepared rows into unit ``g``'s sums; ``f64_pairs`` holds the same
    rows in float64 (whole or in slices) for the debiased row-norm moments, empty otherwise."""
    m["n"][g] += xs.shape[0]
    m["sxx"][g] += xs.T @ xs
    m["syy"][g] += ys.T @ ys
    m["sxy"][g] += xs.T @ ys
    m["mx"][g] += xs.sum(0)
    m["my"][g] += ys.sum(0)
    for x64, y64 in f64_pairs:
        rx, ry = x64.square().sum(1), y64.square().sum(1)  # squared row norms
        m["qxx"][g] += rx @ rx
        m["qyy"][g] += ry @ ry
        m["qxy"][g] += rx @ ry
        m["vxx"][g] += rx @ x64
        m["vyy"][g] += ry @ y64
        m["vxy"][g] += ry @ x64
        m["vyx"][g] += rx @ y64


def _feature_ingredients(m: dict[str, torch.Tensor], debiased: bool
                         ) -> tuple[Ingredients, Ingredients, Ingredients]:
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
    xy = Ingredients(T=sq(m["sxy"]), D=d_xy, R=bil(mx, m["sxy"], my), SK=nx, SL=ny,
                      dK=tx, dL=ty, E_KL=e_xy, E_LK=e_yx)
    xx = Ingredients(T=sq(m["sxx"]), D=d_xx, R=bil(mx, m["sxx"], mx), SK=nx, SL=nx,
                      dK=tx, dL=tx, E_KL=e_xx, E_LK=e_xx)
    yy = Ingredients(T=sq(m["syy"]), D=d_yy, R=bil(my, m["syy"], my), SK=ny, SL=ny,
                      dK=ty, dL=ty, E_KL=e_yy, E_LK=e_yy)
    return xy, xx, yy


# ---- Gram form ------------------------------------------------------------------------------
def _distance_matrix(t: torch.Tensor, metric: str, cdtype: torch.dtype) -> torch.Tensor:
    """The [n, n] float64 matrix of distances between the rows of ``t`` after z-scoring every
    unit over the rows (constant units dropped), as the paper code's CKA."""
    import torch

    t64 = t.to(torch.float64)
    mean, std = t64.mean(0), t64.std(0)
    live = std > 0
    z = ((t64[:, live] - mean[live]) / std[live]).to(cdtype)
    del t64
    sq = _sq_distances((z @ z.T).to(torch.float64))
    return sq if metric == "sqeuclidean" else sq.sqrt_()


def kernel_matrices(
    x: Any,
    y: Any,
    *,
    kernel: str = "rbf",
    rbf_sigma: float = 1.0,
    metric: str | None = None,
    dtype: str = "float64",
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two [n, n] float64 matrices that :func:`cka` (Gram form, ``kernel``) or, with
    ``metric`` given, :func:`distance_cka` align, built exactly as they build them.

    A permutation null re-pairs rows of one matrix and columns alike, so it needs them once.
    """
    cdtype, tx, ty, n = _inputs(x, y, device, dtype, False)
    return _matrices(tx, ty, np.arange(n), cdtype, {}, kernel=kernel, rbf_sigma=rbf_sigma,
                     metric=metric)[:2]


def _matrices(tx: torch.Tensor, ty: torch.Tensor, stim: np.ndarray, cdtype: torch.dtype,
              attrs: dict[str, Any], *, max_samples: int = 0, seed: int = 0,
              kernel: str = "linear", rbf_sigma: float = 1.0, metric: str | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Both systems' [n, n] float64 matrices (distance matrices with ``metric``, else kernels)
    on the rows the Gram form keeps (a seeded subsample of ``max_samples``), and their stimuli."""
    import torch

    keep = subsample_rows(tx.shape[0], max_samples, seed)
    if keep is not None:
        idx = torch.as_tensor(keep, device=tx.device)
        tx, ty, stim = tx[idx], ty[idx], stim[keep]
        attrs["subsampled_rows"] = len(keep)
    if metric is not None:
        return _distance_matrix(tx, metric, cdtype), _distance_matrix(ty, metric, cdtype), stim
    tx, ty = tx.to(cdtype), ty.to(cdtype)
    if kernel == "cosine":
        tx, ty = unit_rows(tx), unit_rows(ty)
    return _gram(tx, kernel, rbf_sigma, attrs, "x"), _gram(ty, kernel, rbf_sigma, attrs, "y"), stim


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
        raise EstimatorError(f"RBF kernel: system {which} has (almost) all samples identical",
                             field="rbf_sigma", fix="use the linear kernel")
    if rbf_sigma <= 0:
        raise EstimatorError("rbf_sigma must be positive", field="rbf_sigma")
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


def _row_norms(t: torch.Tensor) -> torch.Tensor:
    """[n, 1] row lengths (summed in float64, returned in ``t``'s dtype), 1 for all-zero rows."""
    import torch

    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True, dtype=torch.float64)
    return torch.where(norms > 0, norms, torch.ones_like(norms)).to(t.dtype)


def unit_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (the cosine kernel); all-zero rows stay zero."""
    return t / _row_norms(t)


def min_samples(debiased: bool) -> int:
    """The fewest paired samples CKA is defined on: 4 with debiased HSIC (it divides by
    n(n-3)), else 2."""
    return 4 if debiased else 2


def _compute_dtype(dtype: str) -> torch.dtype:
    import torch

    if dtype not in DTYPES:
        raise EstimatorError(f"dtype must be one of {DTYPES}, got {dtype!r}", field="dtype")
    return getattr(torch, dtype)


def _as_tensor(a: Any, device: str, cdtype: torch.dtype) -> torch.Tensor:
    """``a`` as a tensor on ``device`` without copying float data on the CPU.

    Floating-point data keep their dtype (blocks are converted to the compute dtype as they
    are read); integers and booleans are converted to the compute dtype once.
    """
    import torch

    if not isinstance(a, torch.Tensor):
        a = np.asarray(a)
        with warnings.catch_warnings():  # read-only arrays: nothing here writes into them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            a = torch.as_tensor(a)
    if not a.is_floating_point():
        a = a.to(cdtype)
    return a.to(device)


def _inputs(x: Any, y: Any, device: str, dtype: str, debiased: bool
            ) -> tuple[torch.dtype, torch.Tensor, torch.Tensor, int]:
    """The compute dtype, ``x`` and ``y`` as tensors (checked to be paired rows), and n."""
    cdtype = _compute_dtype(dtype)
    tx, ty = _as_tensor(x, device, cdtype), _as_tensor(y, device, cdtype)
    if tx.ndim != 2 or ty.ndim != 2:
        raise EstimatorError(f"CKA needs [samples, units] arrays, got shapes "
                             f"{tuple(tx.shape)} and {tuple(ty.shape)}")
    if tx.shape[0] != ty.shape[0]:
        raise EstimatorError(f"CKA needs the same samples in both systems, got {tx.shape[0]} "
                             f"and {ty.shape[0]} rows")
    n = int(tx.shape[0])
    need = min_samples(debiased)
    if n < need:
        raise EstimatorError(f"CKA needs at least {need} paired samples, got {n}",
                             fix="record more stimuli")
    return cdtype, tx, ty, n


# ---- permutation nulls: what a re-pairing of the samples changes (see the module) -----------

#: working-set cap of one batch of gathered rows (or Gram entries) in the fast CKA null
NULL_BATCH_BYTES = 1 << 27


class KernelSums:
    """One system's per-sample vectors that CKA's sums need: diag of its kernel matrix (r),
    the kernel matrix times ones (k), and the self sums 1'K1, tr K, ||K||_F^2."""

    def __init__(self, r: Any, k: Any, frob2: Any) -> None:
        self.r, self.k, self.frob2 = r, k, frob2
        self.S, self.d = k.sum(), r.sum()

    def self_hsic(self, n: float, debiased: bool) -> Any:
        rk = self.r @ self.k
        return hsic(Ingredients(T=self.frob2, D=self.r @ self.r, R=self.k @ self.k, SK=self.S,
                                SL=self.S, dK=self.d, dL=self.d, E_KL=rk, E_LK=rk), n, debiased)


def cka_over_row_maps(
    row_maps: Iterable[np.ndarray],
    n_rows: int,
    cross: Callable[[Any], Any],
    a: KernelSums,
    b: KernelSums,
    debiased: bool,
    observed_cross: Any = None,
) -> tuple[float, np.ndarray]:
    """Observed CKA and its value under each re-pairing: ``row_maps`` yields batches [b, n] of
    row maps (row i of one system paired with row m[i] of the other); ``cross(maps)`` gives
    sum_pq K_pq L_{m_p m_q} per row map; ``observed_cross`` (default: ``cross`` of the
    identity) the unpermuted one. Only the cross sums move, the self sums are computed once."""
    import torch

    n = float(n_rows)
    denom = torch.sqrt(a.self_hsic(n, debiased) * b.self_hsic(n, debiased))
    ok = bool(torch.isfinite(denom)) and float(denom) > 0
    device = a.r.device

    def cka_of(maps: Any, t: Any = None) -> np.ndarray:
        g = Ingredients(T=cross(maps) if t is None else t, D=(a.r[None, :] * b.r[maps]).sum(1),
                        R=(a.k[None, :] * b.k[maps]).sum(1), SK=a.S, SL=b.S, dK=a.d, dL=b.d,
                        E_KL=(a.r[None, :] * b.k[maps]).sum(1),
                        E_LK=(a.k[None, :] * b.r[maps]).sum(1))
        out = (hsic(g, n, debiased) / denom).cpu().numpy()
        return np.where(np.isfinite(out) & ok, out, np.nan)

    identity = torch.arange(n_rows, device=device)[None, :]
    obs_t = None if observed_cross is None else observed_cross.reshape(1)
    observed = float(cka_of(identity, obs_t)[0])
    chunks = [cka_of(torch.as_tensor(m, device=device)) for m in row_maps]
    return observed, np.concatenate(chunks)


def gram_null_parts(K: Any, L: Any) -> tuple[KernelSums, KernelSums, Callable[[Any], Any], int]:
    """Both kernel matrices' sums, their cross term under a row map (one flat gather of L's
    permuted entries per map, then a dot product with K: O(n^2)), and the batch size."""
    import torch

    K = K.to(torch.float64)
    L = L.to(torch.float64)
    n = K.shape[0]
    a = KernelSums(torch.diagonal(K).clone(), K.sum(1), (K * K).sum())
    b = KernelSums(torch.diagonal(L).clone(), L.sum(1), (L * L).sum())

    k_flat, l_flat = K.reshape(-1), L.reshape(-1)

    def cross(maps: Any) -> Any:
        # one flat gather of L's permuted entries per map, then a dot product with K
        return torch.stack([k_flat @ l_flat[(m[:, None] * n + m[None, :]).reshape(-1)]
                            for m in maps])

    return a, b, cross, max(1, min(256, NULL_BATCH_BYTES // (8 * n)))


def rv_permutation_moments(n: int, trace: tuple[float, float], trace_sq: tuple[float, float],
                           diag_sq: tuple[float, float]) -> tuple[float, float]:
    """Exact mean and sd of biased linear CKA (the RV coefficient) over all n! re-pairings of
    n samples (Kazi-Aoual et al. 1995; Josse, Pages & Husson 2008, CSDA 53).

    Per system, with W the centred Gram matrix XX' of its n samples: ``trace`` = tr W,
    ``trace_sq`` = tr W^2 (= ||X'X||_F^2, so O(n p^2) from the features), ``diag_sq`` =
    sum_i W_ii^2. With beta = (tr W)^2 / tr W^2 and
    tau = (n-1) / ((n-3)(n-1-beta)) [n(n+1) sum_i W_ii^2 / tr W^2 - (n-1)(beta+2)]:
    E = sqrt(beta_x beta_y) / (n-1),
    Var = 2 (n-1-beta_x)(n-1-beta_y) / ((n+1)(n-1)^2(n-2)) [1 + (n-3) tau_x tau_y / (2n(n-1))].
    NaN where undefined (n < 4, a system without variance, or W proportional to the centring
    matrix). A cross-check of the Monte Carlo null that costs nothing extra.
    """
    if n < 4:
        return math.nan, math.nan
    betas, taus = [], []
    for tr, tr2, d2 in zip(trace, trace_sq, diag_sq):
        if not (tr2 > 0 and math.isfinite(tr2)):
            return math.nan, math.nan
        beta = tr * tr / tr2
        room = n - 1 - beta
        if room <= 1e-12 * n:
            return math.nan, math.nan
        betas.append(beta)
        taus.append((n - 1) / ((n - 3) * room)
                    * (n * (n + 1) * d2 / tr2 - (n - 1) * (beta + 2)))
    mean = math.sqrt(betas[0] * betas[1]) / (n - 1)
    var = (2 * (n - 1 - betas[0]) * (n - 1 - betas[1]) / ((n + 1) * (n - 1) ** 2 * (n - 2))
           * (1 + (n - 3) * taus[0] * taus[1] / (2 * n * (n - 1))))
    return mean, math.sqrt(var) if var >= 0 else math.nan


def feature_null_cross(xc: Any, yc: Any, cdt: Any, batch_bytes: int, most: int
                   ) -> tuple[Callable[[Any], Any], int]:
    """``cross(maps)`` = ||X' P_m Y||_F^2 per row map m, and the batch size (at most ``most``,
    the null's size: no buffer larger than the null needs).

    One product per batch: the narrower system's rows are gathered for the whole batch into a
    reused [n, batch * r] buffer (``index_select`` into it: no allocation, no page faults per
    batch), then [batch * r, n] x [n, s] into a reused product buffer whose rows hold one
    permutation after another, so each permutation's squares are summed (in float64) over one
    contiguous stretch. Gathering the narrower side moves the fewest bytes; which side is
    gathered does not change the value: sum_k x_k y_m(k)' = sum_j x_minv(j) y_j'.
    """
    import torch

    f64 = torch.float64
    n = xc.shape[0]
    gather_x = xc.shape[1] < yc.shape[1]
    fixed, moved = (yc, xc) if gather_x else (xc, yc)
    fixed = fixed.to(cdt).contiguous()  # [n, s]
    moved = moved.to(cdt).contiguous()  # [n, r]
    s, r = fixed.shape[1], moved.shape[1]
    item = moved.element_size()
    batch = max(1, min(256, most, batch_bytes // (n * r * item)))
    g_buf = torch.empty(n * batch * r, dtype=cdt, device=xc.device)
    p_buf = torch.empty(batch * r * s, dtype=cdt, device=xc.device)
    ramp = torch.arange(n, device=xc.device)

    def cross(maps: Any) -> Any:
        b = maps.shape[0]
        if gather_x:  # pair row j of Y with row minv(j) of X
            maps = torch.empty_like(maps).scatter_(1, maps, ramp.expand(b, n))
        g = g_buf[: n * b * r].view(n * b, r)
        torch.index_select(moved, 0, maps.T.reshape(-1), out=g)  # [n, b, r]
        prod = p_buf[: b * r * s].view(b * r, s)
        torch.mm(g.view(n, b * r).T, fixed, out=prod)  # row-block i: permutation i
        if cdt == torch.bfloat16:  # each bf16 entry squared exactly (in float64)
            return torch.linalg.vector_norm(prod.view(b, -1), dim=1, dtype=f64).square()
        return prod.square_().view(b, -1).sum(1, dtype=f64)

    return cross, batch


# ---- out of core: activity read a block of rows at a time ------------------------------------
#: accumulator and buffer bytes per unit pair the chunked form needs beyond its row blocks
_F64 = 8


def chunked_memory_bytes(dx: int, dy: int, chunk_rows: int, *, debiased: bool = False,
                         itemsize: int = 8) -> int:
    """What :func:`chunked_cka` holds at once: float64 accumulators X'X, Y'Y, X'Y (and column
    sums, row-norm moments), the products' temporaries, plus one block of rows of each system
    as read (counted twice: a reader may hold the file's chunks beside the block) and as
    converted. Checked against the measured peak in the chunked-CKA benchmark."""
    acc = _F64 * (dx * dx + dy * dy + dx * dy + 4 * (dx + dy))
    # each product's result before it is added to its float64 accumulator (as computed, then
    # converted), and the float64 slices that sums convert at a time (x and y, and a square)
    slices = 4 * min(_F64_SLICE_BYTES, chunk_rows * max(dx, dy) * _F64)
    temps = (itemsize + _F64) * max(dx * dx, dy * dy, dx * dy) + slices
    # a block as read (float32 or narrower) twice, since readers that assemble a block from
    # the file's chunks (dask) hold the chunks and the block at once; + converted
    block = chunk_rows * (dx + dy) * (2 * 4 + itemsize)
    reader = 2 * min(_READER_BYTES, chunk_rows * max(dx, dy) * 4)
    return acc + temps + block + reader


def _source_chunk_rows(a: Any) -> int | None:
    """Rows per chunk of a dask-backed source (a dask array or an xarray DataArray opened with
    ``chunks=``), when its chunks along rows are regular; None otherwise."""
    chunks = getattr(a, "chunks", None)
    if not chunks or not isinstance(chunks, tuple) or not isinstance(chunks[0], tuple):
        return None
    rows = chunks[0]
    return int(rows[0]) if rows and all(r == rows[0] for r in rows[:-1]) else None


def chunk_rows_for(dx: int, dy: int, memory_mb: float, *, debiased: bool = False,
                   itemsize: int = 8) -> int:
    """The largest block of rows :func:`chunked_cka` can read within ``memory_mb`` MiB.

    Raises :class:`EstimatorError` saying what fits when even the accumulators do not.
    """
    budget = int(memory_mb * 2**20)

    def need(rows: int) -> int:
        return chunked_memory_bytes(dx, dy, rows, debiased=debiased, itemsize=itemsize)

    fixed = need(0)
    if need(1) > budget:
        need_mb = need(256) / 2**20
        raise EstimatorError(
            f"memory_mb = {memory_mb:g} MiB does not hold the accumulators of {dx} x {dy} units "
            f"({fixed / 2**20:.0f} MiB)", field="memory_mb",
            fix=f"allow at least {math.ceil(need_mb)} MiB (256 rows a block)")
    # need() grows with rows (by 10 or more bytes a row): the largest that fits, by bisection
    return bisect.bisect_right(range(1, budget + 1), budget, key=need)


def chunked_cka(
    x: Any,
    y: Any,
    *,
    debiased: bool = False,
    kernel: str = "linear",
    chunk_rows: int | None = None,
    memory_mb: float = 1024,
    dtype: str = "float64",
    progress: bool = False,
    device: str = "cpu",
) -> CKAResult:
    """Linear (or cosine) CKA of row-aligned ``x`` [n, dx] and ``y`` [n, dy] that are never held
    whole: rows are read ``chunk_rows`` at a time (default: as many as ``memory_mb`` allows).

    ``x`` and ``y`` are anything sliced by rows into arrays (numpy memmap, lazy or dask-backed
    ``xarray.DataArray``, h5py or netCDF4 variable). Two passes: column means, then the float64
    sums of :func:`cka`'s feature form over centred blocks, so the two agree to rounding. No
    bootstrap interval (it would need per-unit sums). ``progress`` shows a tqdm bar over blocks.
    """
    import torch

    if kernel not in ("linear", "cosine"):
        raise EstimatorError(f"the chunked form computes linear and cosine CKA, not {kernel!r}",
                             field="kernel", fix="use cka(..., kernel='rbf') on a subsample")
    if len(x.shape) != 2 or len(y.shape) != 2:
        raise EstimatorError(f"chunked CKA takes [samples, units] arrays, got shapes "
                             f"{tuple(x.shape)} and {tuple(y.shape)}", field="x",
                             fix="flatten stimulus and time into samples first")
    n, dx = int(x.shape[0]), int(x.shape[1])
    dy = int(y.shape[1])
    if int(y.shape[0]) != n:
        raise EstimatorError(f"x has {n} rows and y {y.shape[0]}: rows must be paired",
                             field="y", fix="pass the same samples of both systems")
    if n < min_samples(debiased):
        raise EstimatorError(f"{n} samples are too few", field="x")
    cdtype = _compute_dtype(dtype)
    itemsize = torch.empty((), dtype=cdtype).element_size()
    fits = chunk_rows_for(dx, dy, memory_mb, debiased=debiased, itemsize=itemsize)
    if chunk_rows is None:
        chunk_rows = min(fits, n)
        # a multiple of the sources' chunk rows, where known and it fits: a block never reads a
        # chunk it uses only part of (a reader holds whole chunks)
        for c in (_source_chunk_rows(x), _source_chunk_rows(y)):
            if c and chunk_rows >= c:
                chunk_rows = chunk_rows // c * c
    elif chunk_rows > fits:
        raise EstimatorError(
            f"chunk_rows = {chunk_rows} needs "
            f"{chunked_memory_bytes(dx, dy, chunk_rows, debiased=debiased, itemsize=itemsize) / 2**20:.0f}"
            f" MiB, more than memory_mb = {memory_mb:g}", field="chunk_rows",
            fix=f"at most {fits} rows fit in {memory_mb:g} MiB (or raise memory_mb)")
    chunk_rows = max(1, int(chunk_rows))
    dev = torch.device(device)
    cosine = kernel == "cosine"
    starts = range(0, n, chunk_rows)

    def blocks(desc: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        it: Any = starts
        if progress:
            from tqdm.auto import tqdm

            from simbench.runtime import progress_shown

            it = tqdm(starts, desc=desc, unit="block", leave=False, mininterval=0,  # each block
                      disable=not progress_shown())
        for i in it:
            j = min(i + chunk_rows, n)
            bx, by = _as_tensor(x[i:j], device, cdtype), _as_tensor(y[i:j], device, cdtype)
            yield bx, by
            del bx, by  # not held while the next block is read (nor by the caller: see below)

    bufx = torch.empty((chunk_rows, dx), dtype=cdtype, device=dev)
    bufy = torch.empty((chunk_rows, dy), dtype=cdtype, device=dev)
    f64 = torch.float64
    sx = torch.zeros(dx, dtype=f64, device=dev)
    sy = torch.zeros(dy, dtype=f64, device=dev)
    for bx, by in blocks("CKA means"):
        sx += _sum64(_prepared(bx, bufx, cosine, None))
        sy += _sum64(_prepared(by, bufy, cosine, None))
        del bx, by
    mux, muy = (sx / n).to(cdtype), (sy / n).to(cdtype)
    m = _moment_accumulators(1, dx, dy, debiased, dev)
    for bx, by in blocks("CKA sums"):
        xs = _prepared(bx, bufx, cosine, mux)
        ys = _prepared(by, bufy, cosine, muy)
        del bx, by  # copied into the buffers: free before the next block is read
        # debiased: row-norm moments in float64, a slice of rows at a time
        _add_moments(m, 0, xs, ys, zip(_f64_slices(xs), _f64_slices(ys)) if debiased else [])
    nn = torch.full((1,), float(n), dtype=f64, device=dev)
    value = float(_cka_from(*_feature_ingredients(m, debiased), nn, debiased)[0])
    attrs = {"kernel": kernel, "debiased": debiased, "form": "chunked", "dtype": dtype,
             "units_x": dx, "units_y": dy, "n_rows": n, "chunk_rows": chunk_rows,
             "blocks": len(starts), "device": str(dev),
             "ci_note": "no interval: the chunked form keeps no per-unit sums"}
    return CKAResult(value, np.empty(0), "chunked", n, attrs)
