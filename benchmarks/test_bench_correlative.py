"""Speed of the correlative measures against the work they cannot avoid, in the same run.

- Linear CKA on n = 100,000 samples x 512 units (float32 and float64) against the three matrix
  products X'X, Y'Y, Y'X through torch's BLAS. Target: at most 1.3x.
- RSA, the paper protocol (10 draws of 1,000 vectors, 128 units, Spearman), against calling
  rsatoolbox directly on the same rows: cosine (rsatoolbox has no cosine RDM, so the direct
  route is scipy's ``pdist`` in an ``RDMs`` object) and correlation (rsatoolbox's ``calc_rdm``).
  Target: within 1.1x.

Run: ``.venv/bin/pytest benchmarks/test_bench_correlative.py --benchmark-enable``; the ratios
are printed at the end (benchmarks/conftest.py). Under ``--benchmark-disable`` each runs once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

N, D = 100_000, 512
RSA_ROWS, RSA_UNITS, RSA_VECTORS, RSA_DRAWS = 10_000, 128, 1000, 10


@pytest.fixture(scope="module", params=["float32", "float64"])
def big(request: Any) -> tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D), dtype=np.float32)
    y = (x[:, ::-1] * 0.5 + rng.standard_normal((N, D), dtype=np.float32)).astype(request.param)
    return request.param, x.astype(request.param), y


def _run(benchmark: Any, fn: Callable[[], Any], rounds: int = 5) -> None:
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)


@pytest.mark.parametrize("what", ["baseline_products", "cka", "cka_boot200"])
def test_linear_cka(benchmark: Any, big: tuple[str, np.ndarray, np.ndarray], what: str) -> None:
    import torch

    from simbench.estimators.cka import cka

    dtype, x, y = big
    benchmark.group = f"linear-cka-{dtype}-{N}x{D}"
    if what == "cka_boot200" and dtype == "float64":
        pytest.skip("bootstrap cost is shown once, on float32")
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def products() -> None:
        tx.T @ tx, ty.T @ ty, ty.T @ tx

    def linear_cka() -> None:
        cka(x, y, dtype=dtype, n_boot=200 if what == "cka_boot200" else 0, seed=0)

    _run(benchmark, products if what.startswith("baseline") else linear_cka,
         rounds=3 if what == "cka_boot200" else 5)


@pytest.fixture(scope="module")
def latents() -> dict[str, Any]:
    from simbench_plugins.rsa import rsa

    rng = np.random.default_rng(1)
    x = rng.standard_normal((RSA_ROWS, RSA_UNITS))
    y = np.tanh(x @ rng.standard_normal((RSA_UNITS, RSA_UNITS)) / 8) + rng.standard_normal(
        (RSA_ROWS, RSA_UNITS))
    rows = rsa(x, y, n_vectors=RSA_VECTORS, n_draws=RSA_DRAWS, seed=0).indices  # rows it draws
    return {"x": x, "y": y, "rows": rows}


@pytest.mark.parametrize("rdm_method", ["cosine", "correlation"])
@pytest.mark.parametrize("what", ["baseline_rsatoolbox", "simbench"])
def test_rsa_paper_protocol(benchmark: Any, latents: dict[str, Any], rdm_method: str,
                            what: str) -> None:
    import rsatoolbox
    from rsatoolbox.rdm import RDMs, compare
    from scipy.spatial.distance import pdist
    from simbench_plugins.rsa import rsa

    benchmark.group = f"rsa-{rdm_method}-spearman-{RSA_DRAWS}x{RSA_VECTORS}x{RSA_UNITS}"
    x, y, rows = latents["x"], latents["y"], latents["rows"]

    def rdm(t: np.ndarray) -> Any:
        if rdm_method == "cosine":
            return RDMs(pdist(t, "cosine")[None], dissimilarity_measure="cosine")
        return rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(t), method=rdm_method)

    def direct() -> list[float]:
        return [float(compare(rdm(x[i]), rdm(y[i]), method="spearman")[0, 0]) for i in rows]

    def ours() -> float:
        return rsa(x, y, rdm_method=rdm_method, compare_method="spearman",
                   n_vectors=RSA_VECTORS, n_draws=RSA_DRAWS, seed=0).value

    assert ours() == pytest.approx(float(np.mean(direct())), abs=1e-10)  # same numbers
    _run(benchmark, direct if what.startswith("baseline") else ours)
