"""The Score result and its intervals: serialisable without loss, seeded, honest about NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import simbench
from simbench.result import Score, provenance
from simbench.stats import binomial_ci, bootstrap_ci


def _score() -> Score:
    iia = xr.DataArray(np.array([[1.0, 0.5], [0.25, 0.75]]), dims=("source", "target"),
                       coords={"source": ["a", "b"], "target": ["a", "b"]})
    return Score(measure="mas", value=0.625, systems=("a", "b"), site="hidden", ci=(0.5, 0.75),
                 n_samples=40, breakdown={"iia": iia},
                 attrs={"params": {"k": 4}, "seed": np.int64(3)})


def test_dict_round_trip_is_lossless() -> None:
    score = _score()
    back = Score.from_dict(json.loads(score.to_json()))
    assert back.value == score.value and back.ci == score.ci and back.systems == score.systems
    assert back.n_samples == 40 and back.site == "hidden"
    xr.testing.assert_identical(back.breakdown["iia"], score.breakdown["iia"])
    assert back.attrs == {"params": {"k": 4}, "seed": 3}


def test_non_finite_values_become_null_in_json() -> None:
    score = Score(measure="cka", value=math.nan, systems=("a", "b"), ci=(math.nan, math.inf),
                  attrs={"x": math.inf})
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


def test_score_fields_are_keyword_only() -> None:
    """The previous release's positional form still builds, with a DeprecationWarning, for one
    release (see tests/test_plugin_api.py)."""
    with pytest.warns(DeprecationWarning, match="pass them by keyword"):
        Score("mas", 0.5, ("a", "b"))  # type: ignore[misc]


def test_a_dropped_interval_says_why_when_printed() -> None:
    """A bootstrap dropped for size must be visible on the printed score, not only in attrs."""
    note = "no bootstrap: 2048x2048 units need too much memory per replicate"
    dropped = Score(measure="cka", value=0.5, systems=("a", "b"), n_samples=10,
                    attrs={"ci_note": note})
    assert str(dropped) == f"cka = 0.5000 (no CI: {note}) (n = 10)"
    nan_ci = Score(measure="cka", value=0.5, systems=("a", "b"), ci=(math.nan, math.nan),
                   attrs={"ci_note": note})
    assert f"(no CI: {note})" in str(nan_ci) and "nan" not in str(nan_ci)
    plain = Score(measure="cka", value=0.5, systems=("a", "b"), ci=None)
    assert str(plain) == "cka = 0.5000 (n = 0)"


def test_open_bounds_never_print_as_none() -> None:
    one_sided = Score(measure="x", value=0.5, systems=("a",), ci=(0.25, math.inf))
    assert str(one_sided) == "x = 0.5000 [0.2500, inf] (n = 0)"
    missing = Score(measure="x", value=0.5, systems=("a",), ci=(0.25, None))  # type: ignore[arg-type]
    assert "None" not in str(missing) and "[0.2500, nan]" in str(missing)


def test_provenance_records_versions() -> None:
    info = provenance("cpu")
    assert info["simbench_version"] == simbench.__version__ and info["device"] == "cpu"
    assert info["cpu"] and info["cpu_cores"] >= 1  # timings are read against their CPU
    import torch

    assert provenance()["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())


def test_the_version_has_one_source(tmp_path: Path) -> None:
    """``simbench.__version__``, ``--version`` and provenance all read pyproject.toml."""
    import tomllib

    from simbench.cli import main
    from simbench.version import _source_version, package_version

    pyproject = Path(simbench.__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    assert package_version() == declared == simbench.__version__
    assert provenance()["simbench_version"] == declared
    with pytest.raises(SystemExit):
        main(["--version"])
    # a source tree whose pyproject says otherwise wins over stale installed metadata
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "simbench"\nversion = "9.8.7"\n')
    assert _source_version(other) == "9.8.7"
    other.write_text('[project]\nname = "someone-else"\nversion = "1.0"\n')
    assert _source_version(other) is None


def test_simbench_score_is_the_function_and_score_the_class(registry: object) -> None:
    """``simbench.score`` is the function and ``simbench.Score`` the result class, whatever
    was imported before (no module of that name shadows the function)."""
    import importlib

    import simbench.api
    import simbench.result

    importlib.import_module("simbench.score")  # the previous release's path: no shadowing
    assert importlib.util.find_spec("simbench.score").origin is None  # no file of that name
    assert simbench.score is simbench.api.score and simbench.Score is Score
    assert simbench.result.Score is Score
    with pytest.raises(simbench.SimbenchError, match="unknown measure"):
        simbench.score("no_such_measure", "a.nc", "b.nc", site="hidden")


@pytest.mark.slow
def test_provenance_records_the_device_actually_used(registry: object, pair_files: object) -> None:
    """``device="auto"`` is resolved once, for every measure family, before the measure runs."""
    from simbench.devices import resolve_device

    a, b = pair_files  # type: ignore[misc]
    result = simbench.score("procrustes", a, b, site="hidden", n_boot=0)
    assert result.attrs["device"] == resolve_device("auto") != "auto"
    assert simbench.score("procrustes", a, b, site="hidden", n_boot=0,
                          device="cpu").attrs["device"] == "cpu"


def test_attrs_set_by_the_measure_win_over_provenance(registry: object,
                                                      pair_files: object) -> None:
    from conftest import ToyPlugin, info

    from simbench.measure import Measure

    class NumpyOnly(Measure):
        name = "toy_numpy"
        family = "correlative"
        access = ("recording", "recording")

        def score(self, systems: object, **kw: object) -> Score:
            return Score(measure=self.name, value=0.5, systems=("a", "b"),
                         attrs={"device": "cpu (numpy)", "seed": 99})

    registry.add_plugin(ToyPlugin(NumpyOnly()), info("numpy_only"))  # type: ignore[attr-defined]
    result = simbench.score("toy_numpy", *pair_files, site="hidden", seed=3)  # type: ignore[misc]
    assert result.attrs["device"] == "cpu (numpy)" and result.attrs["seed"] == 99
    assert result.attrs["plugin"] == "numpy_only-dist:numpy_only"
