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
- :func:`linear_cka_null` is the fast route for linear CKA (biased or debiased HSIC): centring
  commutes with a row permutation and the self-similarity terms do not change, so a permutation
  only changes the cross product X'PY; batches of permutations cost one matrix product each
  (gathered rows), or, when the samples are few and the units many, a gather of one Gram matrix.
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

from simbench.errors import ParameterError, SimbenchError

#: random stream tag of the permutation null (independent of the bootstrap's stream)
NULL_STREAM = 0x9E11
#: ``alternative`` values: which tail counts as "at least as extreme"
ALTERNATIVES = ("greater", "less")
#: working-set cap of one batch of gathered rows (or Gram entries) in the fast CKA null
BATCH_BYTES = 1 << 27
FORMS = ("auto", "feature", "gram")


class NullError(SimbenchError):
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


def null_seed_rng(seed: int) -> np.random.Generator:
    """The null's random stream for ``seed`` (same seed, same permutations)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), NULL_STREAM]))


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
        self.strata: list[np.ndarray] = []
        for members in keys.values():
            lengths = counts[members]
            idx = starts[members][:, None] + np.arange(int(lengths[0]))[None, :]
            self.strata.append(order[idx])
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
        gen = null_seed_rng(seed)
        done = 0
        while done < size:
            b = min(batch, size - done)
            perms = [gen.permuted(np.tile(np.arange(len(s)), (b, 1)), axis=1)
                     for s in self.strata]
            yield self._rows(perms)
            done += b

    def _all_row_maps(self, batch: int) -> Iterator[np.ndarray]:
        per_stratum = [list(itertools.permutations(range(len(s)))) for s in self.strata]
        buf: list[tuple[tuple[int, ...], ...]] = []
        for combo in itertools.product(*per_stratum):
            if all(p == tuple(range(len(p))) for p in combo):
                continue  # the identity is the observed pairing
            buf.append(combo)
            if len(buf) == batch:
                yield self._rows([np.array([c[k] for c in buf]) for k in range(len(combo))])
                buf = []
        if buf:
            yield self._rows([np.array([c[k] for c in buf]) for k in range(len(buf[0]))])

    def describe(self, size: int, exhaustive: bool, seed: int) -> str:
        groups = len(self.strata)
        within = "" if groups == 1 else f", within {groups} groups of equal time steps"
        if exhaustive:
            return (f"all {size} non-identity permutations of {self.n_stimuli} stimuli "
                    f"between the systems{within}")
        return (f"{size} uniform random permutations of {self.n_stimuli} stimuli between the "
                f"systems (whole stimuli{within}; seed {seed})")


def _warn_notes(notes: Sequence[str]) -> None:
    for note in notes:
        warnings.warn(note, NullWarning, stacklevel=3)


# ---- which measures may be permuted -------------------------------------------------------------
def require_permutable(measure: Any) -> None:
    """Raise :class:`NullError` unless simbench may draw a permutation null for ``measure``.

    A measure declares it with a boolean ``permutable`` attribute; without one, correlative
    measures (scores of paired samples) may be permuted and others (e.g. causal measures, which
    intervene on networks rather than compare paired samples) may not.
    """
    name = getattr(measure, "name", None) or getattr(measure, "__name__", repr(measure))
    flag = getattr(measure, "permutable", None)
    if flag is None:
        flag = getattr(measure, "family", None) == "correlative"
    if not flag:
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
    perms = StimulusPermutations(np.arange(len(xa)) if stimulus is None else stimulus, time,
                                 n_rows=len(xa))
    size, exhaustive, notes = perms.plan(n_perm)
    _warn_notes(notes)
    value = float(statistic(xa, ya)) if observed is None else float(observed)
    batch = max(1, min(64, (1 << 24) // max(1, len(xa))))  # row maps are n int64 each
    samples = np.concatenate([[float(statistic(xa, ya[m])) for m in maps]
                              for maps in perms.row_maps(n_perm, seed, batch)])
    return NullResult(value, samples, p_value(value, samples, alternative), alternative,
                      perms.describe(size, exhaustive, seed), exhaustive, tuple(notes))


# ---- the fast route for linear CKA --------------------------------------------------------------
def linear_cka_null(
    x: Any,
    y: Any,
    *,
    stimulus: Any = None,
    time: Any = None,
    n_perm: int = 1000,
    seed: int = 0,
    debiased: bool = False,
    dtype: str = "float64",
    form: str = "auto",
    device: str = "cpu",
) -> NullResult:
    """Permutation null of linear CKA (biased or debiased HSIC) reusing what does not change.

    With centred X [n, p] and Y [n, q] (a row permutation P leaves column means, hence centring,
    unchanged), biased CKA under P is ||X'PY||^2 / (||X'X|| ||Y'Y||): only the cross term moves.
    The debiased estimator needs, besides ||X'PY||^2, inner products of n-vectors (row norms,
    X times the column sums) with permuted ones: O(n) each. The cross term is computed

    - ``feature``: X'[Y gathered by a batch of row maps] as one [p, n] x [n, batch * q] matrix
      product per batch, O(n p q) per permutation;
    - ``gram``: sum(K * L[m][:, m]) with K = XX', L = YY' built once, O(n^2) per permutation;
    - ``auto``: the cheaper of the two.

    Sums are accumulated in float64; ``dtype`` is the precision of the products. The observed
    value is computed by the same formulas (it equals simbench's ``cka`` to rounding).
    """
    import torch

    if form not in FORMS:
        raise ParameterError(f"form must be one of {FORMS}, got {form!r}", field="form")
    if dtype not in ("float32", "float64"):
        raise ParameterError(f"dtype must be float32 or float64, got {dtype!r}", field="dtype")
    tdt = getattr(torch, dtype)
    tx = torch.as_tensor(np.asarray(x)).to(device=device, dtype=tdt)
    ty = torch.as_tensor(np.asarray(y)).to(device=device, dtype=tdt)
    if tx.ndim != 2 or ty.ndim != 2 or tx.shape[0] != ty.shape[0]:
        raise ParameterError(f"CKA needs row-aligned [samples, units] arrays, got shapes "
                             f"{tuple(tx.shape)} and {tuple(ty.shape)}", field="y")
    n, p = tx.shape
    q = ty.shape[1]
    if n < (4 if debiased else 2):
        raise NullError(f"CKA needs at least {4 if debiased else 2} samples, got {n}",
                        field="x", fix="record more stimuli")
    perms = StimulusPermutations(np.arange(n) if stimulus is None else stimulus, time,
                                 n_rows=n)
    size, exhaustive, notes = perms.plan(n_perm)
    _warn_notes(notes)
    if form == "auto":
        # a gathered Gram entry costs about as much as ~8 multiply-adds of a matrix product
        form = "gram" if 8 * n < p * q and n * n * 8 <= BATCH_BYTES else "feature"

    f64 = torch.float64
    xc = tx - tx.to(f64).mean(0).to(tdt)
    yc = ty - ty.to(f64).mean(0).to(tdt)
    x64, y64 = xc.to(f64), yc.to(f64)
    mx, my = x64.sum(0), y64.sum(0)  # ~0; kept so the formulas hold for any rounding
    kx, ly = x64 @ mx, y64 @ my  # (K1), (L1)
    rx, ry = (x64 * x64).sum(1), (y64 * y64).sum(1)  # diag K, diag L
    n_t = torch.tensor(float(n), dtype=f64, device=tx.device)

    def hsic(T: torch.Tensor, D: torch.Tensor, R: torch.Tensor, SK: torch.Tensor,
             SL: torch.Tensor, dK: torch.Tensor, dL: torch.Tensor, E_KL: torch.Tensor,
             E_LK: torch.Tensor) -> torch.Tensor:
        # same estimator as simbench's cka: biased tr(KHLH), or Song et al.'s unbiased HSIC
        if not debiased:
            return T - 2 * R / n_t + SK * SL / (n_t * n_t)
        ones = (SK - dK) * (SL - dL) / ((n_t - 1) * (n_t - 2))
        cross = R - E_KL - E_LK + D
        return (T - D + ones - 2 * cross / (n_t - 2)) / (n_t * (n_t - 3))

    def self_hsic(z: torch.Tensor, r: torch.Tensor, k: torch.Tensor, m: torch.Tensor
                  ) -> torch.Tensor:
        g = z.T @ z
        T = (g.to(f64) ** 2).sum()
        return hsic(T, r @ r, k @ k, m @ m, m @ m, r.sum(), r.sum(), r @ k, r @ k)

    denom = torch.sqrt(self_hsic(xc, rx, kx, mx) * self_hsic(yc, ry, ly, my))
    SK, SL, dK, dL = mx @ mx, my @ my, rx.sum(), ry.sum()

    def cka_of(T: torch.Tensor, maps: torch.Tensor) -> np.ndarray:
        # maps [B, n]; every n-vector of Y is read through the map
        D = (rx[None, :] * ry[maps]).sum(1)
        R = (kx[None, :] * ly[maps]).sum(1)
        E_KL = (rx[None, :] * ly[maps]).sum(1)
        E_LK = (kx[None, :] * ry[maps]).sum(1)
        out = (hsic(T, D, R, SK, SL, dK, dL, E_KL, E_LK) / denom).cpu().numpy()
        return np.where(np.isfinite(out) & (float(denom) > 0), out, np.nan)

    identity = torch.arange(n, device=tx.device)[None, :]
    if form == "feature":
        xt = xc.T.contiguous()
        per_map = n * q * xc.element_size()
        batch = max(1, min(256, BATCH_BYTES // per_map))

        def cross(maps: torch.Tensor) -> torch.Tensor:
            # [n, B, q] gathered directly, so one product serves the whole batch
            g = yc[maps.T.contiguous()].reshape(n, -1)
            prod = (xt @ g).view(p, maps.shape[0], q)
            return prod.square().sum((0, 2), dtype=f64)
    else:
        K = (xc @ xc.T).to(f64)
        L = (yc @ yc.T).to(f64)
        batch = max(1, min(256, BATCH_BYTES // (8 * n * n)))

        def cross(maps: torch.Tensor) -> torch.Tensor:
            return torch.stack([(K * L[m][:, m]).sum() for m in maps])

    observed = float(cka_of(cross(identity), identity)[0])
    chunks = []
    for maps_np in perms.row_maps(n_perm, seed, batch):
        maps = torch.as_tensor(maps_np, device=tx.device)
        chunks.append(cka_of(cross(maps), maps))
    samples = np.concatenate(chunks)
    method = (f"{perms.describe(size, exhaustive, seed)}; linear CKA"
              f"{' (debiased HSIC)' if debiased else ''} recomputed through the cross term "
              f"only ({form} form, {dtype})")
    return NullResult(observed, samples, p_value(observed, samples, "greater"), "greater",
                      method, exhaustive, tuple(notes))


__all__ = ["ALTERNATIVES", "NullError", "NullResult", "NullWarning", "StimulusPermutations",
           "linear_cka_null", "p_value", "permutation_null", "require_permutable"]
