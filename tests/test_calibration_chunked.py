"""Out-of-core CKA: activity read from a netCDF file a block of rows at a time (lazily, through
xarray and dask) gives the in-memory estimate; memory budgets that cannot hold it are refused
with what fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from simbench.estimators.cka import (
    EstimatorError,
    chunk_rows_for,
    chunked_cka,
    chunked_memory_bytes,
    cka,
)


@pytest.fixture(scope="module")
def lazy(tmp_path_factory: pytest.TempPathFactory) -> tuple[xr.DataArray, xr.DataArray,
                                                              np.ndarray, np.ndarray]:
    """Two related systems on 3,001 samples in one netCDF file, opened lazily (dask chunks)."""
    rng = np.random.default_rng(0)
    n = 3001
    x = rng.standard_normal((n, 40)).astype(np.float32) + 2.0  # off-centre: the means matter
    y = (x[:, :30] @ rng.standard_normal((30, 30)) + rng.standard_normal((n, 30))).astype(
        np.float32)
    path = Path(tmp_path_factory.mktemp("chunked")) / "acts.nc"
    xr.Dataset({"x": (("sample", "ux"), x), "y": (("sample", "uy"), y)}).to_netcdf(path)
    ds = xr.open_dataset(path, chunks={"sample": 500})
    assert ds["x"].chunks is not None  # really lazy: dask-backed, nothing loaded
    return ds["x"], ds["y"], x, y


@pytest.mark.slow
@pytest.mark.parametrize("kernel,debiased", [("linear", False), ("linear", True),
                                             ("cosine", False)])
def test_chunked_equals_in_memory(lazy, kernel: str, debiased: bool) -> None:
    lx, ly, x, y = lazy
    full = cka(x, y, kernel=kernel, debiased=debiased, form="feature").value
    part = chunked_cka(lx, ly, kernel=kernel, debiased=debiased, chunk_rows=257)
    assert part.value == pytest.approx(full, abs=1e-10)
    assert part.attrs["blocks"] == 12 and part.attrs["form"] == "chunked"
    assert 0.2 < full < 0.99  # related, not identical: the check can fail
    # a block size that divides nothing evenly and one block of everything agree too
    assert chunked_cka(x, y, kernel=kernel, debiased=debiased, chunk_rows=3001).value == \
        pytest.approx(full, abs=1e-10)


def test_float32_products_stay_close(lazy) -> None:
    lx, ly, x, y = lazy
    full = cka(x, y, form="feature").value
    assert chunked_cka(lx, ly, dtype="float32", chunk_rows=600).value == pytest.approx(
        full, abs=1e-5)


def test_progress_bar_counts_the_blocks(lazy, capsys, monkeypatch) -> None:
    monkeypatch.setattr("simbench.runtime.progress_shown", lambda stream=None: True)  # a terminal
    lx, ly, _, _ = lazy
    chunked_cka(lx, ly, chunk_rows=1000, progress=True)
    err = capsys.readouterr().err
    assert "CKA means" in err and "CKA sums" in err and "3/4" in err and "0/4" in err


def test_memory_budget_sets_the_block_and_refuses_what_does_not_fit() -> None:
    rows = chunk_rows_for(4096, 4096, 2048)
    # 1M x 4096 float32 per system: three 4096^2 float64 accumulators (384 MiB) and blocks of
    # a few thousand rows fit in 2 GiB
    assert 5_000 < rows < 40_000
    assert chunked_memory_bytes(4096, 4096, rows) <= 2048 * 2**20
    assert chunked_memory_bytes(4096, 4096, rows + 1) > 2048 * 2**20
    with pytest.raises(EstimatorError, match=r"does not hold the accumulators.*") as exc:
        chunk_rows_for(4096, 4096, 100)
    assert "allow at least" in exc.value.fix
    x = np.zeros((10, 4))
    with pytest.raises(EstimatorError, match="chunk_rows = 100000000 needs") as exc:
        chunked_cka(x, x, chunk_rows=100_000_000, memory_mb=64)
    assert "rows fit in 64 MiB" in exc.value.fix


def test_bad_shapes_are_named() -> None:
    with pytest.raises(EstimatorError, match="rows must be paired"):
        chunked_cka(np.zeros((10, 3)), np.zeros((9, 3)))
    with pytest.raises(EstimatorError, match=r"\[samples, units\]"):
        chunked_cka(np.zeros((10, 3, 2)), np.zeros((10, 3, 2)))
    with pytest.raises(EstimatorError, match="not 'rbf'"):
        chunked_cka(np.zeros((10, 3)), np.zeros((10, 3)), kernel="rbf")


@pytest.mark.slow
@pytest.mark.parametrize("rdm_method", ["cosine", "correlation"])
@pytest.mark.parametrize("compare_method", ["corr", "cosine"])
def test_blocked_rsa_equals_rsatoolbox_on_the_whole_rdms(rdm_method: str,
                                                         compare_method: str) -> None:
    from simbench_plugins.rsa import blocked_rsa, compare_rdms, rdm_vector

    rng = np.random.default_rng(1)
    x = rng.standard_normal((301, 20))
    y = x @ rng.standard_normal((20, 15)) * 0.3 + rng.standard_normal((301, 15))
    full = compare_rdms(rdm_vector(x, rdm_method), rdm_vector(y, rdm_method), rdm_method,
                        compare_method)
    blocked = blocked_rsa(x, y, rdm_method=rdm_method, compare_method=compare_method,
                          block_rows=37)
    assert blocked == pytest.approx(full, abs=1e-10)
    assert 0.05 < full < 0.99


def test_blocked_rsa_refuses_rank_comparisons_and_shows_progress(capsys, monkeypatch) -> None:
    monkeypatch.setattr("simbench.runtime.progress_shown", lambda stream=None: True)  # a terminal
    from simbench_plugins.rsa import blocked_rsa

    from simbench.errors import ParameterError

    x = np.random.default_rng(2).standard_normal((50, 4))
    with pytest.raises(ParameterError, match="needs the ranks of every RDM entry"):
        blocked_rsa(x, x, compare_method="spearman")
    assert blocked_rsa(x, x, block_rows=10, progress=True) == pytest.approx(1.0, abs=1e-12)
    assert "RSA blocks" in capsys.readouterr().err
