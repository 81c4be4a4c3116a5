"""The Score result and its intervals: serialisable without loss, seeded, honest about NaN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr

import simbench
from simbench.score import Score, binomial_ci, bootstrap_ci, provenance


def _score() -> Score:
    iia = xr.DataArray(np.array([[1.0, 0.5], [0.25, 0.75]]), dims=("source", "target"),
                       coords={"source": ["a", "b"], "target": ["a", "b"]})
    return Score("mas", 0.625, ("a", "b"), site="hidden", ci=(0.5, 0.75), n_samples=40,
                 breakdown={"iia": iia}, attrs={"params": {"k": 4}, "seed": np.int64(3)})


def test_dict_round_trip_is_lossless() -> None:
    score = _score()
    back = Score.from_dict(json.loads(score.to_json()))
    assert back.value == score.value and back.ci == score.ci and back.systems == score.systems
    assert back.n_samples == 40 and back.site == "hidden"
    xr.testing.assert_identical(back.breakdown["iia"], score.breakdown["iia"])
    assert back.attrs == {"params": {"k": 4}, "seed": 3}


def test_non_finite_values_become_null_in_json() -> None:
    score = Score("cka", math.nan, ("a", "b"), ci=(math.nan, math.inf), attrs={"x": math.inf})
    data = json.loads(score.to_json())
    assert data["value"] is None and data["ci"] == [None, None] and data["attrs"]["x"] is None
    back = Score.from_dict(data)
    assert math.isnan(back.value) and math.isnan(back.ci[0]) and math.isnan(back.ci[1])


def test_to_dataset_and_str() -> None:
    ds = _score().to_dataset()
    assert float(ds["value"]) == 0.625
    assert list(ds["ci"].values) == [0.5, 0.75]
    assert ds["iia"].dims == ("source", "target")
    assert json.loads(ds.attrs["systems"]) == ["a", "b"]
    assert str(_score()) == "mas = 0.6250 [0.5000, 0.7500] (n = 40)"


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    x = np.random.default_rng(0).normal(loc=2.0, size=400)

    def mean(idx: np.ndarray) -> float:
        return float(x[idx].mean())

    lo, hi = bootstrap_ci(mean, len(x), n_boot=300, seed=1)
    assert lo < x.mean() < hi and hi - lo < 0.5
    assert bootstrap_ci(mean, len(x), n_boot=300, seed=1) == (lo, hi)
    assert bootstrap_ci(mean, len(x), n_boot=300, seed=2) != (lo, hi)


def test_bootstrap_degenerate_cases_are_nan() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci(lambda i: 1.0, 1))
    assert all(math.isnan(v) for v in bootstrap_ci(lambda i: 1.0, 10, n_boot=0))
    assert all(math.isnan(v) for v in bootstrap_ci(lambda i: math.nan, 10, n_boot=5))


def test_binomial_ci() -> None:
    lo, hi = binomial_ci(90, 100)
    assert 0.0 <= lo < 0.9 < hi <= 1.0
    assert binomial_ci(100, 100)[1] == 1.0
    assert all(math.isnan(v) for v in binomial_ci(0, 0))


def test_provenance_records_versions() -> None:
    info = provenance("cpu")
    assert info["simbench_version"] == simbench.__version__ and info["device"] == "cpu"


def test_simbench_score_is_callable_even_after_importing_the_module(registry: object) -> None:
    """``import simbench.score`` must not shadow the function ``simbench.score(...)``."""
    import simbench.score as module

    assert module.Score is Score
    assert callable(simbench.score)
    with pytest.raises(simbench.SimbenchError, match="unknown measure"):
        simbench.score("no_such_measure", "a.nc", "b.nc", site="hidden")
