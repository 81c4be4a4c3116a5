"""Speed of the linear-CKA permutation null against the bootstrap and a naive null, in one run.

Data: n = 10,000 samples (each its own stimulus) x 512 units per system, float32 products.

- ``null1000``: :func:`simbench.calibration.linear_cka_null`, 1,000 permutations of stimuli; only
  the cross term X'PY is recomputed, a batch of permutations per matrix product (float32).
- ``null1000_bf16``: the same null with bfloat16 per-permutation products (float32 accumulation
  in the BLAS, float64 sums; the observed value in float32): what ``null_dtype="auto"`` picks at
  this size on a machine that multiplies bfloat16 natively (AVX-512 BF16, AMX, CUDA >= 8.0).
- ``baseline_boot100`` (group ``...-vs-simbench-boot``): simbench's own bootstrap, ``cka(...,
  n_boot=100)`` (per-group moments: stimuli are dealt into random groups once n is large, so a
  replicate is a weighted sum of small matrices).
- ``boot100_exact``: the straightforward exact stimulus bootstrap: resample rows, re-centre, three
  products X'X, Y'Y, X'Y per replicate.
- ``naive``: recompute CKA from scratch (simbench's ``cka``) on every re-paired copy of Y;
  ``N_NAIVE`` permutations, extrapolated to 1,000 in the printed summary.

Target: the null of 1,000 permutations within 3x the time of 100 bootstrap resamples. Run:
``.venv/bin/pytest benchmarks/test_bench_null.py --benchmark-enable -s``; ratios to each group's
baseline print at the end (benchmarks/conftest.py) and the per-permutation summary with ``-s``.
``SIMBENCH_NULL_N`` / ``SIMBENCH_NULL_D`` shrink the data for a quick check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

N = int(os.environ.get("SIMBENCH_NULL_N", 10_000))
D = int(os.environ.get("SIMBENCH_NULL_D", 512))
N_PERM, N_BOOT, N_NAIVE = 1000, 100, 50
GROUP = f"cka-null-{N}x{D}-float32"
TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D), dtype=np.float32)
    y = (x[:, ::-1] * 0.5 + rng.standard_normal((N, D), dtype=np.float32)).astype(np.float32)
    return x, y


def exact_bootstrap(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Linear CKA on ``n_boot`` resamples of the rows (each row its own stimulus), recomputed
    the straightforward way: gather, re-centre, three products. Sums in float64."""
    import torch

    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    out = np.empty(n_boot)
    for b in range(n_boot):
        idx = torch.randint(0, len(x), (len(x),), generator=gen)
        xb, yb = tx[idx], ty[idx]
        xb = xb - xb.mean(0)
        yb = yb - yb.mean(0)
        xy = (xb.T @ yb).double().square().sum()
        xx = (xb.T @ xb).double().square().sum()
        yy = (yb.T @ yb).double().square().sum()
        out[b] = float(xy / (xx * yy).sqrt())
    return out


def naive_null(x: np.ndarray, y: np.ndarray, n_perm: int, seed: int) -> np.ndarray:
    """CKA recomputed from scratch by simbench's ``cka`` on every re-paired copy of Y."""
    from simbench_plugins.cka import cka

    gen = np.random.default_rng(seed)
    return np.array([cka(x, y[gen.permutation(len(y))], dtype="float32").value
                     for _ in range(n_perm)])


def _run(benchmark: Any, name: str, fn: Callable[[], Any]) -> Any:
    def timed() -> Any:
        t0 = time.perf_counter()
        out = fn()
        TIMES[name] = min(TIMES.get(name, np.inf), time.perf_counter() - t0)
        return out

    return benchmark.pedantic(timed, rounds=1, warmup_rounds=0, iterations=1)


def _check_exact_moments(res: Any, label: str) -> None:
    """The Monte Carlo null's mean against the exact permutation mean (RV moments)."""
    mean, sd = res.exact_moments
    assert abs(res.null_mean - mean) < 5 * sd / np.sqrt(N_PERM)
    print(f"\n  {label}: null mean {res.null_mean:.6g} (exact {mean:.6g}), sd "
          f"{res.null_sd:.4g} (exact {sd:.4g})")


def test_baseline_boot100(benchmark: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    from simbench_plugins.cka import cka

    x, y = data
    benchmark.group = GROUP
    res = _run(benchmark, "boot100 (simbench)",
               lambda: cka(x, y, dtype="float32", n_boot=N_BOOT, seed=0))
    assert np.isfinite(res.replicates).sum() == N_BOOT


def test_boot100_exact(benchmark: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    benchmark.group = GROUP
    reps = _run(benchmark, "boot100 (exact)", lambda: exact_bootstrap(x, y, N_BOOT, 0))
    assert np.isfinite(reps).all()


def test_null1000(benchmark: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    from simbench.calibration import linear_cka_null

    x, y = data
    benchmark.group = GROUP
    res = _run(benchmark, "null1000", lambda: linear_cka_null(
        x, y, n_perm=N_PERM, seed=0, dtype="float32", null_dtype="same"))
    assert res.size == N_PERM and res.p_value == pytest.approx(1 / (N_PERM + 1))
    assert "float32 products" in res.method
    _check_exact_moments(res, "null1000")


def test_null1000_bf16(benchmark: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    from simbench.calibration import linear_cka_null

    x, y = data
    benchmark.group = GROUP
    res = _run(benchmark, "null1000_bf16", lambda: linear_cka_null(
        x, y, n_perm=N_PERM, seed=0, dtype="bfloat16"))
    assert res.size == N_PERM and res.p_value == pytest.approx(1 / (N_PERM + 1))
    assert "bfloat16 products" in res.method
    _check_exact_moments(res, "null1000_bf16")


def test_naive(benchmark: Any, data: tuple[np.ndarray, np.ndarray]) -> None:
    from simbench.calibration import linear_cka_null

    x, y = data
    benchmark.group = GROUP
    naive = _run(benchmark, f"naive{N_NAIVE}", lambda: naive_null(x, y, N_NAIVE, 0))
    fast = linear_cka_null(x, y, n_perm=N_NAIVE, seed=0, dtype="float32", null_dtype="same")
    # both are nulls of the same statistic: same centre and spread within sampling error
    assert abs(np.mean(naive) - fast.null_mean) < 4 * fast.null_sd / np.sqrt(N_NAIVE) + 1e-6


def test_summary() -> None:
    """Per-permutation costs and the ratios the target is about (printed with -s)."""
    if "null1000" not in TIMES or f"naive{N_NAIVE}" not in TIMES:
        pytest.skip("run the whole module")
    per_naive = TIMES[f"naive{N_NAIVE}"] / N_NAIVE
    with open("/proc/loadavg") as fh:
        load = fh.read().split()[:3]
    lines = [f"load average {' '.join(load)}; n = {N}, d = {D}, float32 data"]
    for name, t in TIMES.items():
        lines.append(f"  {name:<20} {t:8.2f} s")
    lines.append(f"  naive null, 1000 permutations (extrapolated): {per_naive * N_PERM:8.2f} s")
    nulls = [name for name in ("null1000", "null1000_bf16") if name in TIMES]
    for null in nulls:
        for boot in ("boot100 (simbench)", "boot100 (exact)"):
            if boot in TIMES:
                lines.append(f"  {null} / {boot}: {TIMES[null] / TIMES[boot]:.2f}x "
                             "(target < 3x)")
        per_fast = TIMES[null] / N_PERM
        lines.append(f"  naive / {null} per permutation: {per_naive / per_fast:.2f}x")
    if len(nulls) == 2:
        lines.append(f"  null1000 / null1000_bf16: {TIMES['null1000'] / TIMES['null1000_bf16']:.2f}x")
    print("\n".join(lines))
    for null in nulls:  # the fast null must beat recomputing CKA
        assert TIMES[null] / N_PERM < per_naive
