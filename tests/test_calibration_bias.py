"""Small-sample bias on independent data: biased linear CKA is pulled up, debiased is not."""

from __future__ import annotations

import numpy as np
import pytest

from simbench.calibration.bias import small_n_bias
from simbench.calibration.estimators import linear_cka
from simbench.errors import ParameterError


@pytest.mark.slow
def test_debiased_cka_stays_near_zero_at_n32_and_biased_cka_does_not() -> None:
    table = small_n_bias({"cka": linear_cka(), "cka --debiased": linear_cka(debiased=True)},
                         ns=(32,), units=64, draws=100, seed=0)
    assert abs(table.mean("cka --debiased", 32)) < 0.02
    assert table.se("cka --debiased", 32) < 0.01  # the check can tell 0.02 from 0
    assert table.mean("cka", 32) > 0.5  # about 0.67 with 64 units per system


def test_bias_shrinks_with_n_and_the_table_prints() -> None:
    table = small_n_bias({"cka": linear_cka()}, ns=(32, 64, 128, 256), units=16, draws=5,
                         seed=1)
    means = [table.mean("cka", n) for n in table.ns]
    assert means == sorted(means, reverse=True) and means[-1] < 0.1 < means[0]
    text = table.format()
    assert "16 and 16 units, 5 draws per n" in text
    assert text.splitlines()[1].split() == ["estimator", "n=32", "n=64", "n=128", "n=256"]
    assert text.splitlines()[2].startswith("cka ") and f"{means[0]:+.3f}" in text
    rows = table.rows()
    assert len(rows) == 4 and rows[0]["n"] == 32 and rows[0]["draws"] == 5


def test_estimators_see_the_same_seeded_data() -> None:
    seen: list[np.ndarray] = []

    def record(x: np.ndarray, y: np.ndarray) -> float:
        seen.append(x.copy())
        return float(x[0, 0])

    a = small_n_bias({"a": record, "b": record}, ns=(8,), units=(3, 2), draws=2, seed=5)
    np.testing.assert_array_equal(seen[0], seen[1])  # same draw for both estimators
    assert not np.array_equal(seen[0], seen[2])  # next draw differs
    b = small_n_bias({"a": record}, ns=(8,), units=(3, 2), draws=2, seed=5)
    np.testing.assert_array_equal(a.values["a"], b.values["a"])


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ParameterError, match="draws"):
        small_n_bias({"a": lambda x, y: 0.0}, draws=1)
    table = small_n_bias({"a": lambda x, y: 0.0}, ns=(8,), draws=2)
    with pytest.raises(ParameterError, match="sample sizes: 8"):
        table.mean("a", 32)


@pytest.mark.slow
def test_registered_measures_run_through_the_public_api() -> None:
    from simbench_plugins.cka import cka

    from simbench.calibration.estimators import correlative_estimators, measure_estimator

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 5))
    assert measure_estimator("cka", debiased=True)(x, y) == pytest.approx(
        cka(x, y, debiased=True).value, abs=1e-12)
    from simbench.calibration.estimators import default_estimators

    names = list(default_estimators())
    assert names[names.index("cka") + 1] == "cka --debiased"
    names = set(correlative_estimators())
    assert {"cka", "cka_paper", "rsa"} <= names and "mas" not in names
    assert "crossnobis" not in names  # needs repeated measurements, not paired rows
    table = small_n_bias(correlative_estimators(), ns=(32,), units=8, draws=3, seed=0)
    assert table.mean("cka", 32) > 0.1  # biased upward at n = 32
    assert table.mean("cka", 32) == pytest.approx(
        small_n_bias({"cka": linear_cka()}, ns=(32,), units=8, draws=3, seed=0).mean("cka", 32))
