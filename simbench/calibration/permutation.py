"""Permutation nulls for correlative measures: is a score above what chance pairing gives?

A correlative measure compares two systems' responses to the *same* stimuli. Under the null
hypothesis that the systems' responses are unrelated, which stimulus of system B is paired with
which stimulus of system A does not matter. So the null distribution of a score is its
distribution over random re-pairings of whole stimuli: row (s, t) of A (stimulus s, time step t)
is paired with row (pi(s), t) of B, all of a stimulus's time steps moving together (time steps of
one stimulus are not independent samples). A stimulus is only ever paired with one that has the
same time steps, so with stimuli of several lengths the permutation runs within each length.

- :class:`StimulusPermutations` draws the permutations (seeded) and turns them into row maps;
  when more permutations are asked for than a small stimulus set has, it enumerates all of them
  (an exact permutation test) and says so.
- :func:`permutation_null` is the general route: any statistic of paired samples, recomputed
  from scratch on every re-pairing.
- :func:`linear_cka_null` and :func:`gram_cka_null` are the fast routes for CKA: a re-pairing
  changes only the cross term (X'PY, or K against L re-paired), batches of permutations cost
  one matrix product or gather each, and large nulls multiply in bfloat16 where the hardware
  does so natively. The sums themselves (HSIC, the cross term under a row map, the RV
  coefficient's exact moments) live with the estimator in :mod:`simbench.estimators.cka`.
- :class:`NullResult` carries the samples, their mean and spread, the p-value
  ``(1 + #{null at least as extreme as observed}) / (1 + N)`` and how the null was drawn.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from simbench.errors import ParameterError
from simbench.estimators.cka import (
    NULL_BATCH_BYTES,
    KernelSums,
    cka_over_row_maps,
    feature_null_cross,
    gram_null_parts,
    min_samples,
    rv_permutation_moments,
    unit_rows,
)
from simbench.seeds import stream

#: random stream tag of the permutation null (independent of the bootstrap's stream)
NULL_STREAM = 0x9E11
#: ``alternative`` values: which tail counts as "at least as extreme"
ALTERNATIVES = ("greater", "less")
FORMS = ("auto", "feature", "gram")
#: precisions of the fast CKA null's products (``dtype``)
DTYPES = ("float32", "float64", "bfloat16")
#: ``null_dtype`` values: the precision of the per-permutation cross products only
NULL_DTYPES = ("auto", "same", *DTYPES)
#: ``null_dtype="auto"`` lowers the precision of the null's products (bfloat16 where native,
#: else float32) from this many multiply-adds on (n p q per permutation): about a second of
#: float32 products on two CPU cores. Below it, speed does not matter and they keep ``dtype``
AUTO_BF16_MIN_MACS = 1e11
#: cost of one gathered Gram entry in multiply-adds of a matrix product (for ``form="auto"``)
GRAM_ENTRY_COST = 256


class NullError(ParameterError):
    """A null distribution that cannot be drawn (measure cannot permute, too few stimuli)."""


class NullWarning(UserWarning):
    """The null was drawn differently from what was asked (e.g. all permutations were used)."""


@dataclasses.dataclass(frozen=True)
class NullResult:
    """A score's null distribution and where the observed score falls in it."""

    observed: float
    samples: np.ndarray
    p_value: float
    alternative: str
    method: str
    exhaustive: bool = False
    notes: tuple[str, ...] = ()
    #: the null's exact mean and sd over all permutations, where known in closed form
    exact_moments: tuple[float, float] | None = None

    @property
    def size(self) -> int:
        """How many null samples were drawn (finite ones)."""
        return int(np.isfinite(self.samples).sum())

    @property
    def null_mean(self) -> float:
        finite = self.samples[np.isfinite(self.samples)]
        return float(finite.mean()) if finite.size else math.nan

    @property
    def null_sd(self) -> float:
        finite = self.samples[np.isfinite(self.samples)]
        return float(finite.std(ddof=1)) if finite.size > 1 else math.nan

    @classmethod
    def from_samples(cls, observed: float, samples: Any, method: str, *,
                     alternative: str = "greater", notes: Sequence[str] = ()) -> NullResult:
        """A null drawn some other way (e.g. a causal measure's untrained random subspaces over
        seeds): the same p-value and summaries from the given samples."""
        arr = np.asarray(samples, dtype=np.float64).ravel()
        return cls(float(observed), arr, p_value(float(observed), arr, alternative),
                   alternative, method, False, tuple(notes))

    def attrs(self) -> dict[str, Any]:
        """The fields a ``Score`` carries about its null (JSON-friendly)."""
        out: dict[str, Any] = {"null_mean": self.null_mean, "null_sd": self.null_sd,
                               "p_value": self.p_value, "null_size": self.size,
                               "null_method": self.method}
        if self.notes:
            out["null_notes"] = "; ".join(self.notes)
        if self.exact_moments is not None:
            out["null_exact_mean"], out["null_exact_sd"] = self.exact_moments
        return out


def p_value(observed: float, samples: np.ndarray, alternative: str = "greater") -> float:
    """``(1 + #{null at least as extreme}) / (1 + N)``: never 0, valid for random draws.

    ``greater``: large scores are evidence of similarity (CKA, RSA); ``less``: small ones are
    (distances). Null values equal to the observed one up to floating-point noise count as at
    least as extreme (conservative: a permutation that reproduces the pairing's value is a tie).
    Non-finite null values are dropped.
    """
    if alternative not in ALTERNATIVES:
        raise ParameterError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}",
                             field="alternative")
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if not math.isfinite(observed):
        return math.nan
    tol = 1e-12 * max(1.0, abs(observed))
    hits = (s >= observed - tol) if alternative == "greater" else (s <= observed + tol)
    return float((1 + int(hits.sum())) / (1 + s.size))


# ---- drawing permutations of stimuli ----------------------------------------------------------
class StimulusPermutations:
    """Permutations of whole stimuli, within groups of stimuli with the same time steps.

    ``stimulus`` [n] names each row's stimulus (any hashable values); ``time`` [n] its time step
    (optional: without it, the k-th row of a stimulus pairs with the k-th row of the stimulus it
    is paired with, so stimuli are grouped by their number of rows). A permutation of stimuli
    becomes a *row map* m: row i of system A is paired with row m[i] of system B.
    """

    def __init__(self, stimulus: Any, time: Any = None, *, n_rows: int | None = None) -> None:
        stim = np.asarray(stimulus)
        if stim.ndim != 1:
            raise ParameterError(f"stimulus must be one label per row, got shape {stim.shape}",
                                 field="stimulus")
        if n_rows is not None and len(stim) != n_rows:
            raise ParameterError(f"stimulus has {len(stim)} labels for {n_rows} rows",
                                 field="stimulus", fix="give one stimulus label per row")
        self.n_rows = len(stim)
        _, inverse = np.unique(stim, return_inverse=True)
        inverse = inverse.ravel()
        if time is None:
            step = np.zeros(self.n_rows, dtype=np.int64)
            order = np.argsort(inverse, kind="stable")  # rows of a stimulus in order of appearance
        else:
            tarr = np.asarray(time)
            if tarr.shape != stim.shape:
                raise ParameterError(f"time has shape {tarr.shape}, stimulus {stim.shape}",
                                     field="time", fix="give one time step per row")
            step = np.unique(tarr, return_inverse=True)[1].ravel()
            order = np.lexsort((step, inverse))
        counts = np.bincount(inverse)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # stratum key: the stimulus's sequence of time steps (or just its row count)
        keys: dict[tuple[int, ...], list[int]] = {}
        for s, (lo, c) in enumerate(zip(starts.tolist(), counts.tolist())):
            key = (c,) if time is None else tuple(step[order[lo:lo + c]].tolist())
            keys.setdefault(key, []).append(s)
        #: per stratum: a [stimuli, rows per stimulus] array of row indices
        self.strata: list[np.ndarray] = [
            order[starts[m][:, None] + np.arange(int(counts[m[0]]))[None, :]]
            for m in keys.values()]
        self.n_stimuli = len(counts)

    @property
    def log_n_distinct(self) -> float:
        """log of the number of distinct permutations (product of the strata's factorials)."""
        return float(sum(math.lgamma(len(s) + 1) for s in self.strata))

    def n_distinct(self, cap: int = 10**7) -> int | None:
        """Number of distinct permutations, or None when above ``cap``."""
        if self.log_n_distinct > math.log(cap) + 1e-9:
            return None
        return math.prod(math.factorial(len(s)) for s in self.strata)

    def _rows(self, perms: Sequence[np.ndarray]) -> np.ndarray:
        """Row maps [N, n] for per-stratum stimulus permutations ``perms[k]`` [N, size_k]."""
        n_maps = perms[0].shape[0] if perms else 0
        out = np.empty((n_maps, self.n_rows), dtype=np.int64)
        for rows, p in zip(self.strata, perms):
            # stimulus j of the stratum (rows[j]) is paired with stimulus p[j] (rows[p[j]])
            out[:, rows.ravel()] = rows[p].reshape(n_maps, -1)
        return out

    def plan(self, n_perm: int) -> tuple[int, bool, list[str]]:
        """(null size, exhaustive, notes) for ``n_perm`` requested permutations."""
        if n_perm < 1:
            raise ParameterError(f"the null needs at least one permutation, got {n_perm}",
                                 field="n_perm")
        total = self.n_distinct(cap=max(n_perm + 1, 2))
        if total is not None and total <= 1:
            raise NullError(f"{self.n_stimuli} stimuli allow no re-pairing: every stimulus is "
                            "the only one with its time steps", field="stimulus",
                            fix="record more stimuli (of equal length) for a permutation null")
        if total is not None and n_perm >= total - 1:
            note = (f"asked for {n_perm} permutations but {self.n_stimuli} stimuli have only "
                    f"{total} distinct pairings; used all {total - 1} non-identity ones "
                    "(an exact permutation test)")
            return total - 1, True, [note]
        return n_perm, False, []

    def row_maps(self, n_perm: int, seed: int, batch: int) -> Iterator[np.ndarray]:
        """Row maps in batches of at most ``batch``: ``n_perm`` seeded uniform draws, or every
        non-identity permutation when that is fewer (see :meth:`plan`)."""
        size, exhaustive, _ = self.plan(n_perm)
        if exhaustive:
            yield from self._all_row_maps(batch)
            return
        # one stream per group of stimuli: the draws do not depend on the batch size (which
        # follows the data's width and dtype), so a seed gives the same permutations everywhere
        root = stream(seed, NULL_STREAM)
        gens = [np.random.default_rng(child) for child in root.spawn(len(self.strata))]
        done = 0
        while done < size:
            b = min(batch, size - done)
            perms = [gen.permuted(np.tile(np.arange(len(s)), (b, 1)), axis=1)
                     for gen, s in zip(gens, self.strata)]
            yield self._rows(perms)
            done += b

    def _all_row_maps(self, batch: int) -> Iterator[np.ndarray]:
        per_stratum = [list(itertools.permutations(range(len(s)))) for s in self.strata]
        combos = (c for c in itertools.product(*per_stratum)  # the identity is the observed one
                  if not all(p == tuple(range(len(p))) for p in c))
        while buf := list(itertools.islice(combos, batch)):
            yield self._rows([np.array([c[k] for c in buf]) for k in range(len(self.strata))])

    def describe(self, size: int, exhaustive: bool, seed: int) -> str:
        groups = len(self.strata)
        within = "" if groups == 1 else f", within {groups} groups of equal time steps"
        if exhaustive:
            return (f"all {size} non-identity permutations of {self.n_stimuli} stimuli "
                    f"between the systems{within}")
        return (f"{size} uniform random permutations of {self.n_stimuli} stimuli between the "
                f"systems (whole stimuli{within}; seed {seed})")


def _planned(stimulus: Any, time: Any, n: int, n_perm: int, seed: int
             ) -> tuple[StimulusPermutations, int, Callable[..., NullResult]]:
    """The permutations of ``n`` rows' stimuli (default: a row each), the null's size (its
    notes warned), and ``result(observed, samples, alternative, how, moments)``: the
    :class:`NullResult`, its method the draw's description followed by ``how``."""
    perms = StimulusPermutations(np.arange(n) if stimulus is None else stimulus, time, n_rows=n)
    size, exhaustive, notes = perms.plan(n_perm)
    for note in notes:
        warnings.warn(note, NullWarning, stacklevel=3)

    def result(observed: float, samples: np.ndarray, alternative: str = "greater",
               how: str = "", moments: tuple[float, float] | None = None) -> NullResult:
        return NullResult(observed, samples, p_value(observed, samples, alternative),
                          alternative, perms.describe(size, exhaustive, seed) + how, exhaustive,
                          tuple(notes), moments)

    return perms, size, result


# ---- which measures may be permuted -------------------------------------------------------------
#: values of a measure's ``null`` attribute
NULL_KINDS = ("permute", "own")
_UNSET = object()


def null_kind(measure: Any) -> str | None:
    """``"permute"``, ``"own"`` or None: how a null may be drawn for ``measure``."""
    kind = getattr(measure, "null", _UNSET)
    if kind is not _UNSET:
        if kind is not None and kind not in NULL_KINDS:
            name = getattr(measure, "name", repr(measure))
            raise ParameterError(f"measure '{name}' declares null = {kind!r}", field="null",
                                 fix=f"declare null as one of {NULL_KINDS} or None")
        return kind
    flag = getattr(measure, "permutable", None)
    if flag is None:
        flag = getattr(measure, "family", None) == "correlative"
    return "permute" if flag else None


def require_permutable(measure: Any) -> None:
    """Raise :class:`NullError` unless simbench may draw a permutation null for ``measure``
    (:func:`null_kind` is ``"permute"``; :mod:`simbench.calibration.scoring` says how a measure
    declares it)."""
    name = getattr(measure, "name", None) or getattr(measure, "__name__", repr(measure))
    kind = null_kind(measure)
    if kind == "own":
        raise NullError(f"measure '{name}' cannot be scored on re-paired stimuli; it draws a "
                        "null of its own", field="null",
                        fix=f"ask '{name}' for its null with its null parameter (--null N)")
    if kind != "permute":
        raise NullError(f"measure '{name}' cannot be scored on re-paired stimuli and provides "
                        "no null of its own", field="null",
                        fix=f"drop the null for '{name}', or give the measure a null of its own")


# ---- the general route ------------------------------------------------------------------------
def permutation_null(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    x: Any,
    y: Any,
    *,
    stimulus: Any = None,
    time: Any = None,
    n_perm: int = 1000,
    seed: int = 0,
    alternative: str = "greater",
    observed: float | None = None,
    name: str | None = None,
) -> NullResult:
    """Null of ``statistic(x, y)`` over re-pairings of whole stimuli (recomputed each time).

    ``x`` [n, dx] and ``y`` [n, dy] are row-aligned; ``stimulus`` and ``time`` label the rows
    (default: every row its own stimulus). ``observed`` skips recomputing the unpermuted value.
    ``statistic`` must be a plain function of the paired rows; pass a measure object instead
    and it is refused with a :class:`NullError` if it cannot be permuted.
    """
    if not callable(statistic) or hasattr(statistic, "score"):
        require_permutable(statistic)
        raise NullError(f"give the statistic of '{name or statistic}' as a function of the "
                        "paired rows (x, y) -> float", field="statistic")
    xa, ya = np.asarray(x), np.asarray(y)
    if xa.shape[0] != ya.shape[0]:
        raise ParameterError(f"x has {xa.shape[0]} rows, y {ya.shape[0]}", field="y",
                             fix="pair the samples first (same stimuli and time steps)")
    perms, _, result = _planned(stimulus, time, len(xa), n_perm, seed)
    value = float(statistic(xa, ya)) if observed is None else float(observed)
    batch = max(1, min(64, (1 << 24) // max(1, len(xa))))  # row maps are n int64 each
    samples = np.concatenate([[float(statistic(xa, ya[m])) for m in maps]
                              for maps in perms.row_maps(n_perm, seed, batch)])
    return result(value, samples, alternative)


# ---- the fast route for CKA --------------------------------------------------------------------
def bf16_native(device: str = "cpu") -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (not by emulation).

    CPUs: AVX-512 BF16 or AMX (x86; read from what torch detected at start-up, so the answer,
    and hence ``null_dtype="auto"``, is the same on every run on one machine); CUDA: compute
    capability 8.0 or above (Ampere on). Anything else: False.
    """
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return False
        return torch.cuda.get_device_capability(dev)[0] >= 8
    if dev.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_null_dtype(null_dtype: str, dtype: str, macs: float, device: str = "cpu") -> str:
    """The precision of the null's per-permutation cross products.

    ``null_dtype``: ``"same"`` (as ``dtype``), an explicit precision, or ``"auto"``: when the
    null's products come to at least :data:`AUTO_BF16_MIN_MACS` multiply-adds (``macs``), the
    fastest precision whose error stays far below the null's Monte Carlo error: bfloat16 where
    the device multiplies it natively (:func:`bf16_native`), else float32; below that size,
    ``dtype``. ``dtype`` is ``"float32"`` or ``"float64"`` here.
    """
    if null_dtype not in NULL_DTYPES:
        raise ParameterError(f"null_dtype must be one of {NULL_DTYPES}, got {null_dtype!r}",
                             field="null_dtype")
    if null_dtype == "same":
        return dtype
    if null_dtype == "auto":
        if macs < AUTO_BF16_MIN_MACS:
            return dtype
        return "bfloat16" if bf16_native(device) else "float32"
    return null_dtype


def linear_cka_null(
    x: Any,
    y: Any,
    *,
    stimulus: Any = None,
    time: Any = None,
    n_perm: int = 1000,
    seed: int = 0,
    kernel: str = "linear",
    debiased: bool = False,
    dtype: str = "float64",
    form: str = "auto",
    device: str = "cpu",
    null_dtype: str = "auto",
) -> NullResult:
    """Permutation null of linear (or cosine) CKA, biased or debiased HSIC, reusing what does
    not change under a re-pairing.

    With centred X [n, p] and Y [n, q] (a row permutation P leaves column means, hence centring,
    unchanged), biased CKA under P is ||X'PY||^2 / (||X'X|| ||Y'Y||): only the cross term moves.
    The debiased estimator needs, besides ||X'PY||^2, inner products of n-vectors (row norms,
    X times the column sums) with permuted ones: O(n) each. The cross term is computed

    - ``feature``: the narrower system's rows gathered by a batch of row maps, then one
      [batch * q, n] x [n, p] matrix product per batch, O(n p q) per permutation;
    - ``gram``: sum(K * L[m][:, m]) with K = XX', L = YY' built once, O(n^2) per permutation;
    - ``auto``: the cheaper of the two (gathers are slow: Gram only for n < p q / 256, with
      its matrices small).

    ``kernel="cosine"`` scales rows to unit length first (that too commutes with re-pairing).
    Sums are accumulated in float64. ``dtype`` is the precision of the products that do not
    move (centring, X'X, Y'Y) and of the observed value, which equals simbench's ``cka`` to
    rounding; ``dtype="bfloat16"`` means float32 there and bfloat16 per-permutation products.

    ``null_dtype`` is the precision of the feature form's per-permutation products X'PY only
    (see :func:`resolve_null_dtype`); ``NullResult.method`` names the precision used.

    Why bfloat16 products are harmless for a null. X and Y are centred in ``dtype`` and
    rounded once to bfloat16 (8 significant bits: relative error <= 2^-9 per entry); the BLAS
    accumulates each entry of X'PY in float32 and rounds it to bfloat16 again. Each entry c of
    X'PY is a sum of n products; its rounding error e is a sum of the same products times
    independent errors of size ~2^-9, so an entry gets relative noise ~2^-9 whatever n (under
    the null, c itself is such a random sum). Over the p q entries of ||X'PY||^2 = sum c^2:

    - the cross term 2 sum c e has random signs: relative error ~2^-8 / sqrt(p q) (with
      p q the number of effectively independent entries: fewer for a steep spectrum);
    - the square sum sum e^2 is a bias of ~+2^-18 relative (2^-17/3 from the inputs, 2^-18/3
      from the output), the only systematic part, and it makes null values larger
      (conservative).

    Against the null's own spread (its sd is ~sqrt(2 / (p q)) of its mean for isotropic
    data) that is ~2^-8.5 ~ 0.3% of the sd per sample, and the same for the debiased
    estimator (it subtracts terms of the size of ||X'PY||^2, so it keeps the absolute error).
    Measured on seeded data with and without an effect, isotropic and with steep spectra
    (n = 2,000-4,000, p, q = 8-128): per-sample error 0.5% of the null's sd (at most 2.2%),
    shift of the null's mean below 0.2% of its sd, i.e. far below the Monte Carlo error of the
    mean (sd / sqrt(N): 3% of the sd at N = 1,000). A p-value changes only when a null sample
    lies within that error of the observed value, by 1/(N + 1) per such sample. The Gram form
    and the observed value never use bfloat16.
    """
    import torch

    if form not in FORMS:
        raise ParameterError(f"form must be one of {FORMS}, got {form!r}", field="form")
    if kernel not in ("linear", "cosine"):
        raise ParameterError(f"the fast null covers the linear and cosine kernels, got "
                             f"{kernel!r}", field="kernel",
                             fix="for other kernels build the Gram matrices and use "
                                 "gram_cka_null")
    if dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {DTYPES}, got {dtype!r}", field="dtype")
    if dtype == "bfloat16":
        dtype, null_dtype = "float32", "bfloat16"
    tdt = getattr(torch, dtype)
    f64 = torch.float64
    tx = torch.as_tensor(np.asarray(x)).to(device=device, dtype=tdt)
    ty = torch.as_tensor(np.asarray(y)).to(device=device, dtype=tdt)
    if tx.ndim != 2 or ty.ndim != 2 or tx.shape[0] != ty.shape[0]:
        raise ParameterError(f"CKA needs row-aligned [samples, units] arrays, got shapes "
                             f"{tuple(tx.shape)} and {tuple(ty.shape)}", field="y")
    n, p = tx.shape
    q = ty.shape[1]
    _check_n(n, debiased)
    perms, size, result = _planned(stimulus, time, n, n_perm, seed)
    if form == "auto":
        # a randomly gathered Gram entry costs about as much as GRAM_ENTRY_COST multiply-adds
        # of a matrix product (measured on CPUs), so the Gram form wins only for few samples
        form = ("gram" if GRAM_ENTRY_COST * n < p * q and n * n * 8 <= NULL_BATCH_BYTES
                else "feature")
    if kernel == "cosine":  # unit rows (all-zero rows stay zero), as simbench's cka
        tx, ty = unit_rows(tx), unit_rows(ty)
    xc = tx - tx.to(f64).mean(0).to(tdt)
    yc = ty - ty.to(f64).mean(0).to(tdt)
    observed_cross = None
    if form == "gram":
        a, b, cross, batch = gram_null_parts(xc @ xc.T, yc @ yc.T)
        precision = dtype
    else:
        x64, y64 = xc.to(f64), yc.to(f64)
        mx, my = x64.sum(0), y64.sum(0)  # ~0; kept so the formulas hold for any rounding
        a = KernelSums((x64 * x64).sum(1), x64 @ mx, (xc.T @ xc).to(f64).square().sum())
        b = KernelSums((y64 * y64).sum(1), y64 @ my, (yc.T @ yc).to(f64).square().sum())
        precision = resolve_null_dtype(null_dtype, dtype, float(n) * p * q * size, device)
        cross, batch = feature_null_cross(xc, yc, getattr(torch, precision), NULL_BATCH_BYTES,
                                      size)
        if precision != dtype:  # the observed value at full precision, as simbench's cka
            observed_cross = (xc.T @ yc).to(f64).square().sum()

    observed, samples = cka_over_row_maps(perms.row_maps(n_perm, seed, batch), n, cross, a, b,
                                          debiased, observed_cross)
    how = (f"; {kernel} CKA{' (debiased HSIC)' if debiased else ''} recomputed through the "
           f"cross term only ({form} form, {precision} products")
    if precision != dtype:
        how += f"; observed value in {dtype}"
    how += ")"
    moments = None
    if not debiased and len(perms.strata) == 1 and perms.strata[0].shape[1] == 1:
        # every row its own stimulus, all re-pairings allowed: the RV coefficient's moments
        moments = rv_permutation_moments(
            n, (float(a.d), float(b.d)), (float(a.frob2), float(b.frob2)),
            (float(a.r @ a.r), float(b.r @ b.r)))
    return result(observed, samples, how=how, moments=moments)


def gram_cka_null(
    K: Any,
    L: Any,
    *,
    stimulus: Any = None,
    time: Any = None,
    n_perm: int = 1000,
    seed: int = 0,
    debiased: bool = False,
    device: str = "cpu",
) -> NullResult:
    """Permutation null of CKA between two [n, n] kernel matrices (any kernel: RBF, or the
    distance matrices of ``cka_paper``), O(n^2) per permutation.

    A re-pairing permutes the rows and columns of one matrix: HSIC(K, P L P'). Kernels whose
    parameters depend on the data (e.g. an RBF bandwidth from the median distance) are
    unchanged by re-pairing, so the matrices are built once. The value equals simbench's
    ``gram_cka`` on the same matrices.
    """
    import torch

    tK = torch.as_tensor(np.asarray(K), device=device)
    tL = torch.as_tensor(np.asarray(L), device=device)
    if tK.ndim != 2 or tK.shape[0] != tK.shape[1] or tK.shape != tL.shape:
        raise ParameterError(f"need two square kernel matrices of the same size, got shapes "
                             f"{tuple(tK.shape)} and {tuple(tL.shape)}", field="L")
    n = int(tK.shape[0])
    _check_n(n, debiased)
    perms, _, result = _planned(stimulus, time, n, n_perm, seed)
    a, b, cross, batch = gram_null_parts(tK, tL)
    observed, samples = cka_over_row_maps(perms.row_maps(n_perm, seed, batch), n, cross, a, b,
                                          debiased)
    return result(observed, samples, how=f"; kernel CKA{' (debiased HSIC)' if debiased else ''}"
                  " recomputed through the cross term only (Gram form, float64)")


def _check_n(n: int, debiased: bool) -> None:
    need = min_samples(debiased)
    if n < need:
        raise NullError(f"CKA needs at least {need} samples, got {n}", field="x",
                        fix="record more stimuli")


__all__ = ["ALTERNATIVES", "AUTO_BF16_MIN_MACS", "NULL_DTYPES", "NullError", "NullResult",
           "NullWarning", "StimulusPermutations", "bf16_native", "gram_cka_null",
           "linear_cka_null", "p_value", "permutation_null", "require_permutable",
           "resolve_null_dtype", "rv_permutation_moments"]
