"""The new correlative measures on the validity board: in the shipped spec, and the small-n bias
check measured from each measure's population value on independent data."""

from __future__ import annotations

import math

import pytest

from simbench.bench.spec import load_spec
from simbench.calibration import validity as V
from simbench.calibration.bias import small_n_bias
from simbench.calibration.estimators import measure_estimator

NEW = ("procrustes_angular", "shape_metric", "soft_matching", "svcca", "pwcca", "mutual_knn",
       "cknna", "ridge")


def test_shipped_spec_scores_every_new_correlative_measure_on_every_pair_kind():
    spec = load_spec("validity")
    measures = {m.measure for m in spec.measures.values()}
    assert set(NEW) <= measures and "crossnobis" not in measures
    for group in spec.pair_groups:
        if group.measures is not None and "cka" in group.measures:  # the correlative pair lists
            names = {spec.measures[label].measure for label in group.measures}
            assert set(NEW) <= names, group.name


def test_population_value_on_independent_data():
    assert V.independent_value("procrustes_angular") == pytest.approx(math.pi / 2)
    assert V.independent_value("soft_matching") == pytest.approx(math.sqrt(2))
    assert V.independent_value("svcca") == 0.0 and V.independent_value("cka") == 0.0


def test_bias_check_reads_distances_from_their_population_value():
    """The Procrustes angle between independent systems is biased low at small n (64 units,
    32 samples: fewer samples than units) and reaches pi/2 as n grows."""
    table = small_n_bias({"procrustes": measure_estimator("procrustes_angular"),
                          "svcca": measure_estimator("svcca")},
                         ns=(32, 1024), draws=3, seed=0)
    res = V._bias_check("procrustes", table, math.pi / 2)
    assert res.status == V.FAILED and "population value 1.571" in res.detail
    assert "n=32" in res.detail
    assert table.mean("procrustes", 32) + 0.5 < table.mean("procrustes", 1024) < math.pi / 2
    # SVCCA with n <= d: (nearly) every canonical correlation is 1, far from 0
    assert V._bias_check("svcca", table).status == V.FAILED
    assert table.mean("svcca", 32) > 0.9 > 0.3 > table.mean("svcca", 1024)
