"""Separability of same-pair from different-pair scores: ROC-AUC and d' on data with known
answers, orientation, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simbench.calibration.separation import expected_auc_normal, separability
from simbench.errors import ParameterError


def test_auc_by_hand_with_a_tie_and_both_orientations() -> None:
    same, diff = [3.0, 4.0, 5.0], [1.0, 2.0, 3.0]
    # same beats different in 8 of 9 comparisons, and 3 vs 3 is a tie: (8 + 0.5) / 9
    res = separability(same, diff, n_boot=0)
    assert res.auc == pytest.approx(8.5 / 9)
    assert res.auc_ci is None and res.d_prime_ci is None
    assert res.d_prime == pytest.approx(2.0)  # means 4 and 2, both sd 1
    # a distance: lower is more similar, so the same scores now separate the wrong way
    flipped = separability(same, diff, higher_is_better=False, n_boot=0)
    assert flipped.auc == pytest.approx(0.5 / 9)
    assert flipped.d_prime == pytest.approx(-2.0)
    assert "lower scores = more similar" in flipped.method


@pytest.mark.slow
@pytest.mark.parametrize("shift", [0.0, 0.5, 1.5])
def test_normal_scores_recover_the_known_auc_and_d_prime(shift: float) -> None:
    rng = np.random.default_rng(int(shift * 10))
    same = rng.normal(shift, 1.0, 3000)
    diff = rng.normal(0.0, 1.0, 3000)
    res = separability(same, diff, n_boot=500, seed=1)
    truth = expected_auc_normal(shift)
    assert res.auc == pytest.approx(truth, abs=0.025)  # about 3 standard errors
    assert res.d_prime == pytest.approx(shift, abs=0.08)
    # the interval's width is what the Hanley-McNeil standard error predicts
    a, n1, n2 = truth, len(same), len(diff)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2))
    lo, hi = res.auc_ci
    assert lo < res.auc < hi
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.25)
    lo, hi = res.d_prime_ci
    assert lo < res.d_prime < hi and hi - lo < 0.25


@pytest.mark.slow
def test_intervals_cover_the_truth_about_as_often_as_they_claim() -> None:
    rng = np.random.default_rng(3)
    truth = expected_auc_normal(1.0)
    hits = 0
    for k in range(150):
        res = separability(rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 30), n_boot=400,
                           seed=k)
        hits += res.auc_ci[0] <= truth <= res.auc_ci[1]
    assert 0.85 <= hits / 150 <= 0.99


def test_bootstrap_matches_resampling_by_hand_and_is_seeded() -> None:
    rng = np.random.default_rng(5)
    same, diff = rng.normal(1, 1, 25), rng.normal(0, 2, 18)
    a = separability(same, diff, n_boot=300, seed=9)
    b = separability(same, diff, n_boot=300, seed=9)
    c = separability(same, diff, n_boot=300, seed=10)
    assert a == b and a.auc_ci != c.auc_ci
    # the large-set route (ranking every replicate) gives the same replicates
    import simbench.calibration.separation as sep

    old = sep.MAX_COMPARISONS
    sep.MAX_COMPARISONS = 0
    try:
        d = separability(same, diff, n_boot=300, seed=9)
    finally:
        sep.MAX_COMPARISONS = old
    assert d.auc_ci == pytest.approx(a.auc_ci, abs=1e-12)


def test_perfect_separation_and_no_spread() -> None:
    res = separability([0.9, 0.9], [0.1, 0.1], n_boot=50)
    assert res.auc == 1.0 and math.isinf(res.d_prime) and res.d_prime > 0
    assert res.as_dict()["auc_ci"] == [1.0, 1.0]


def test_bad_scores_are_named() -> None:
    with pytest.raises(ParameterError, match="no scores for different pairs"):
        separability([1.0], [])
    with pytest.raises(ParameterError, match="same-pair scores contain NaN"):
        separability([1.0, float("nan")], [0.0])
    with pytest.raises(ParameterError, match="level"):
        separability([1.0], [0.0], level=95)


def test_table_and_plot_of_several_measures(tmp_path) -> None:
    import matplotlib.image

    from simbench.calibration.separation import format_separability, plot_separability

    rng = np.random.default_rng(0)
    results = {
        "cka": separability(rng.normal(0.9, 0.05, 20), rng.normal(0.6, 0.1, 30), seed=0),
        "mas_distance": separability(rng.normal(0.2, 0.1, 20), rng.normal(0.3, 0.1, 30),
                                     higher_is_better=False, seed=0),
    }
    text = format_separability(results).splitlines()
    assert text[0].split()[:2] == ["measure", "AUC"]
    assert text[1].startswith("cka ") and f"{results['cka'].auc:.3f}" in text[1]
    assert text[2].split()[-2:] == ["20", "30"]
    png = plot_separability(results, tmp_path / "sep.png")
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # two panels side by side
    assert image[..., :3].std() > 0.05  # something is drawn
