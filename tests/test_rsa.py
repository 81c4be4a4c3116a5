"""RSA: equal to rsatoolbox called directly, 1 for a system against itself, seeded draws."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rsatoolbox
from recording_helpers import save
from rsatoolbox.rdm import RDMs, compare
from scipy.spatial.distance import pdist
from simbench_plugins.rsa import rdm_vector, rsa

import simbench

N_STIM, N_TIME = 30, 5




def direct(x: np.ndarray, y: np.ndarray, rdm_method: str, compare_method: str) -> float:
    """RSA the way a user would call rsatoolbox (cosine: scipy's distance in an RDMs object)."""
    if rdm_method == "cosine":  # rsatoolbox 0.3 has no cosine RDM
        ra, rb = (RDMs(pdist(t, "cosine")[None], dissimilarity_measure="cosine") for t in (x, y))
    else:
        ra, rb = (rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(t), method=rdm_method)
                  for t in (x, y))
    return float(compare(ra, rb, method=compare_method)[0, 0])


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_STIM, N_TIME, 10)) + 0.5
    y = np.tanh(x @ rng.normal(size=(10, 7))) + 0.3 * rng.normal(size=(N_STIM, N_TIME, 7))
    return {"x": x, "y": y}


def test_own_rdms_identical_to_rsatoolbox_and_scipy(data):
    x = data["x"].reshape(-1, 10)
    ref = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x), method="correlation")
    np.testing.assert_allclose(rdm_vector(x, "correlation"), ref.dissimilarities[0],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(rdm_vector(x, "cosine"), pdist(x, "cosine"), rtol=0, atol=1e-12)
    # and cosine distance is rsatoolbox's (squared euclidean / channels) of unit rows, x P / 2
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    eu = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(unit), method="euclidean")
    np.testing.assert_allclose(rdm_vector(x, "cosine"), eu.dissimilarities[0] * 10 / 2,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize(("rdm_method", "compare_method"), [
    ("cosine", "spearman"), ("correlation", "spearman"), ("correlation", "corr"),
    ("euclidean", "tau-a"), ("euclidean", "rho-a"), ("cosine", "cosine"),
])
def test_equals_rsatoolbox_called_directly(data, rdm_method, compare_method):
    x, y = data["x"].reshape(-1, 10), data["y"].reshape(-1, 7)
    res = rsa(x, y, rdm_method=rdm_method, compare_method=compare_method, n_vectors=1000)
    assert len(res.values) == 1  # every row fits in one draw
    assert res.value == pytest.approx(direct(x, y, rdm_method, compare_method), abs=1e-10)
    assert 0.2 < res.value < 0.99


def test_paper_protocol_draws_equal_rsatoolbox_on_the_same_rows(data):
    x, y = data["x"].reshape(-1, 10), data["y"].reshape(-1, 7)
    res = rsa(x, y, n_vectors=50, n_draws=4, seed=3)
    assert len(res.indices) == 4 and all(len(i) == 50 for i in res.indices)
    assert len({tuple(i) for i in res.indices}) == 4
    want = [direct(x[i], y[i], "cosine", "spearman") for i in res.indices]
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-10)
    assert res.value == pytest.approx(np.mean(want), abs=1e-12)


@pytest.mark.slow
def test_self_is_one_and_seeds(tmp_path, data):
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    s = simbench.score("rsa", a, a, site="hidden", n_vectors=60)
    assert s.value == pytest.approx(1, abs=1e-12) and s.n_samples == 60
    r0, r0b, r1 = (simbench.score("rsa", a, b, site="hidden", seed=k, n_vectors=60, n_draws=5)
                   for k in (0, 0, 1))
    assert r0.value == r0b.value and r0.ci == r0b.ci
    assert r0.value != r1.value  # draws are the sampling-dependent part
    per_draw = r0.breakdown["per_draw"]
    assert per_draw.dims == ("draw",) and per_draw.size == 5
    assert r0.value == pytest.approx(float(per_draw.mean()), abs=1e-12)
    assert r0.ci[0] <= r0.value <= r0.ci[1]
    # with every sample in one draw, the seed changes nothing
    full = [simbench.score("rsa", a, b, site="hidden", seed=k).value for k in (0, 1)]
    assert full[0] == full[1]


def test_rows_without_a_direction_are_excluded(data):
    x, y = data["x"].reshape(-1, 10).copy(), data["y"].reshape(-1, 7)
    x[[3, 7]] = 0.0
    res = rsa(x, y, n_vectors=1000)
    assert res.n_excluded == 2 and len(res.indices[0]) == len(x) - 2
    keep = np.setdiff1d(np.arange(len(x)), [3, 7])
    assert res.value == pytest.approx(direct(x[keep], y[keep], "cosine", "spearman"), abs=1e-10)


def test_cli_json(tmp_path, capsys, data):
    from simbench.cli import main

    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    argv = ["score", "rsa", str(a), str(b), "--site", "hidden", "--json",
            "--n_vectors", "50", "--rdm_method", "correlation", "--compare_method", "corr"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_samples"] == 50 and out["attrs"]["n_draws"] == 10
    assert out["attrs"]["rdm_method"] == "correlation"
    assert len(out["breakdown"]["per_draw"]["data"]) == 10


def test_no_interval_says_why_and_the_device_is_named(tmp_path, data):
    a = save(tmp_path / "A.nc", "a", data["x"])
    b = save(tmp_path / "B.nc", "b", data["y"])
    full = simbench.score("rsa", a, b, site="hidden", device="auto")  # 150 rows < 1,000
    assert full.ci is None and full.attrs["device"] == "cpu"
    assert "one draw holds every usable sample (150 <= n_vectors = 1000)" in \
        full.attrs["ci_note"] and "set n_vectors below 150" in full.attrs["ci_note"]
    one = simbench.score("rsa", a, b, site="hidden", n_vectors=50, n_draws=1)
    assert one.ci is None and "n_draws = 1" in one.attrs["ci_note"]
    many = simbench.score("rsa", a, b, site="hidden", n_vectors=50, n_draws=4)
    assert many.ci is not None and "ci_note" not in many.attrs


def test_float32_rows_give_the_float64_values(data):
    """Rows are converted to float64 per draw, not as a whole copy: same numbers."""
    x, y = data["x"].reshape(-1, 10).astype(np.float32), data["y"].reshape(-1, 7)
    x[[3, 7]] = 0.0
    for method in ("cosine", "correlation", "euclidean"):
        r32 = rsa(x, y.astype(np.float32), rdm_method=method, n_vectors=40, n_draws=3)
        r64 = rsa(x.astype(np.float64), y.astype(np.float32).astype(np.float64),
                  rdm_method=method, n_vectors=40, n_draws=3)
        np.testing.assert_array_equal(r32.values, r64.values)
        assert r32.n_excluded == (2 if method != "euclidean" else 0)
