"""Permutation nulls: the fast linear-CKA route against recomputing simbench's CKA from scratch,
whole stimuli moving together, exhaustive small sets, p-values and refusals."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from simbench.calibration import (
    NullError,
    NullResult,
    NullWarning,
    StimulusPermutations,
    gram_cka_null,
    linear_cka_null,
    p_value,
    permutation_null,
    require_permutable,
)
from simbench.errors import ParameterError
from simbench.estimators.cka import cka
from simbench.registry import get_registry


def _related(n: int, p: int = 12, q: int = 9, noise: float = 2.0, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    y = x[:, :q] @ rng.standard_normal((q, q)) + noise * rng.standard_normal((n, q))
    return x, y


def _timed(n_stim: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                           np.ndarray]:
    """Rows (stimulus, time) in shuffled order, as a recording's padding-free rows could be."""
    x, y = _related(n_stim * steps, seed=seed)
    stim = np.repeat(np.arange(n_stim), steps)
    time = np.tile(np.arange(steps), n_stim)
    order = np.random.default_rng(seed + 1).permutation(len(stim))
    return x[order], y[order], stim[order] * 7 + 100, time[order]


@pytest.mark.slow
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("form", ["feature", "gram"])
def test_fast_null_equals_recomputing_cka_on_each_repairing(debiased: bool, form: str) -> None:
    x, y, stim, time = _timed(30, 3)
    fast = linear_cka_null(x, y, stimulus=stim, time=time, n_perm=40, seed=3,
                           debiased=debiased, form=form)
    slow = permutation_null(lambda a, b: cka(a, b, debiased=debiased).value, x, y,
                            stimulus=stim, time=time, n_perm=40, seed=3)
    assert fast.observed == pytest.approx(cka(x, y, debiased=debiased).value, abs=1e-12)
    np.testing.assert_allclose(fast.samples, slow.samples, rtol=0, atol=1e-12)
    assert fast.p_value == slow.p_value
    assert fast.size == 40 and not fast.exhaustive


def test_float32_products_match_float64_closely() -> None:
    x, y = _related(300)
    a = linear_cka_null(x, y, n_perm=30, seed=0, dtype="float32")
    b = linear_cka_null(x, y, n_perm=30, seed=0, dtype="float64")
    np.testing.assert_allclose(a.samples, b.samples, atol=1e-5)


def test_related_data_beat_the_null_and_independent_data_do_not() -> None:
    x, y = _related(200, noise=1.0)
    res = linear_cka_null(x, y, n_perm=199, seed=0)
    assert res.p_value == pytest.approx(1 / 200)
    assert res.observed > res.null_mean + 10 * res.null_sd
    attrs = res.attrs()
    assert attrs["null_size"] == 199 and attrs["p_value"] == res.p_value
    assert "199 uniform random permutations of 200 stimuli" in attrs["null_method"]


def test_p_values_are_calibrated_on_independent_data() -> None:
    """Under the null hypothesis, P(p <= a) <= a: the rejection rate at 0.1 stays near 0.1."""
    rng = np.random.default_rng(11)
    ps = []
    for seed in range(300):
        x = rng.standard_normal((20, 5))
        y = rng.standard_normal((20, 4))
        ps.append(linear_cka_null(x, y, n_perm=49, seed=seed).p_value)
    ps = np.array(ps)
    rate = float(np.mean(ps <= 0.1))
    assert 0.05 <= rate <= 0.15, rate  # binomial(300, 0.1): 0.1 +- 3 sd
    assert ps.min() >= 1 / 50


def test_whole_stimuli_move_together_and_keep_their_time_steps() -> None:
    # stimuli of two lengths: 6 with 3 steps, 5 with 2 steps
    stim = np.concatenate([np.repeat(np.arange(6), 3), np.repeat(np.arange(6, 11), 2)])
    time = np.concatenate([np.tile([0, 1, 2], 6), np.tile([0, 1], 5)])
    order = np.random.default_rng(0).permutation(len(stim))
    stim, time = stim[order], time[order]
    perms = StimulusPermutations(stim, time)
    assert sorted(len(s) for s in perms.strata) == [5, 6]
    moved = 0
    for maps in perms.row_maps(50, seed=2, batch=16):
        for m in maps:
            assert sorted(m.tolist()) == list(range(len(stim)))  # a permutation of rows
            np.testing.assert_array_equal(time[m], time)  # same time step
            for s in np.unique(stim):
                partners = np.unique(stim[m[stim == s]])
                assert len(partners) == 1  # all rows of s go to one stimulus
                assert (stim == partners[0]).sum() == (stim == s).sum()  # of the same length
                moved += int(partners[0] != s)
    assert moved > 400  # most stimuli are re-paired


def test_rows_without_time_pair_in_order_of_appearance() -> None:
    stim = np.array([5, 5, 9, 9])
    maps = next(StimulusPermutations(stim).row_maps(1, seed=0, batch=1))
    np.testing.assert_array_equal(maps[0], [2, 3, 0, 1])  # the only non-identity pairing


def test_small_sets_use_every_permutation_and_say_so() -> None:
    x = np.random.default_rng(0).standard_normal((5, 2))
    y = 2 * x  # the same representation: CKA 1, any other pairing less
    with pytest.warns(NullWarning, match="only 120 distinct pairings; used all 119"):
        res = linear_cka_null(x, y, n_perm=1000, seed=0)
    assert res.exhaustive and res.size == 119
    assert "all 119 non-identity permutations of 5 stimuli" in res.method
    # exact test: the observed pairing is the best of all 120, so p = 1/120
    assert res.p_value == pytest.approx(1 / 120)
    assert len(np.unique(np.round(res.samples, 12))) > 50
    # the same holds for the general route, and asking for exactly 119 enumerates too
    with pytest.warns(NullWarning):
        gen = permutation_null(lambda a, b: cka(a, b).value, x, y, n_perm=119)
    np.testing.assert_allclose(np.sort(gen.samples), np.sort(res.samples), atol=1e-12)


def test_no_warning_when_the_set_is_large_enough() -> None:
    x, y = _related(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = linear_cka_null(x, y, n_perm=100, seed=0)  # 8! = 40320 pairings
    assert not res.exhaustive and res.size == 100


def test_same_seed_same_null_other_seed_other_null() -> None:
    x, y = _related(100)
    a = linear_cka_null(x, y, n_perm=20, seed=4)
    b = linear_cka_null(x, y, n_perm=20, seed=4)
    c = linear_cka_null(x, y, n_perm=20, seed=5)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.allclose(a.samples, c.samples)


def test_a_set_that_cannot_be_repaired_is_refused() -> None:
    x, y = _related(4)
    with pytest.raises(NullError, match="allow no re-pairing"):
        linear_cka_null(x, y, stimulus=[0, 0, 0, 0], n_perm=10)
    # two stimuli of different lengths cannot swap either
    with pytest.raises(NullError, match="allow no re-pairing"):
        linear_cka_null(x, y, stimulus=[0, 0, 0, 1], n_perm=10)
    with pytest.raises(ParameterError, match="at least one permutation"):
        linear_cka_null(x, y, n_perm=0)


def test_measures_that_cannot_permute_are_named() -> None:
    require_permutable(get_registry().measure("cka"))
    require_permutable(get_registry().measure("rsa"))
    with pytest.raises(NullError, match="measure 'mas' cannot be scored on re-paired stimuli"):
        require_permutable(get_registry().measure("mas"))
    x, y = _related(10)
    with pytest.raises(NullError, match="'das'"):
        permutation_null(get_registry().measure("das"), x, y)

    class Declared:
        name = "mine"
        family = "causal"
        permutable = True

    require_permutable(Declared())


def test_p_value_counts_ties_and_orientation() -> None:
    null = np.array([0.1, 0.2, 0.3, 0.3, np.nan])
    assert p_value(0.3, null) == pytest.approx(3 / 5)  # 1 + two ties, over 1 + 4 finite
    assert p_value(0.35, null) == pytest.approx(1 / 5)
    assert p_value(0.15, null, "less") == pytest.approx(2 / 5)
    assert math.isnan(p_value(math.nan, null))
    with pytest.raises(ParameterError, match="alternative"):
        p_value(0.1, null, "two-sided")


def test_auto_form_picks_the_gram_matrices_for_few_samples_and_many_units() -> None:
    x, y = _related(60, p=200, q=150)  # 256 n < p q: the gathers are cheaper
    auto = linear_cka_null(x, y, n_perm=10, seed=0)
    feature = linear_cka_null(x, y, n_perm=10, seed=0, form="feature")
    assert "gram form" in auto.method and "feature form" in feature.method
    np.testing.assert_allclose(auto.samples, feature.samples, atol=1e-12)
    assert "feature form" in linear_cka_null(*_related(600), n_perm=5).method


def test_a_null_drawn_elsewhere_gets_the_same_summaries() -> None:
    """E.g. a causal measure's untrained random subspaces over seeds, or a distance."""
    res = NullResult.from_samples(0.9, [0.2, 0.4, 0.95, 0.3], "IIA of 4 random subspaces")
    assert res.p_value == pytest.approx(2 / 5) and res.size == 4
    assert res.null_mean == pytest.approx(0.4625)
    assert res.attrs()["null_method"] == "IIA of 4 random subspaces"
    dist = NullResult.from_samples(0.1, [0.5, 0.6, 0.05], "shuffled", alternative="less")
    assert dist.p_value == pytest.approx(2 / 4)


def test_cosine_kernel_null_equals_recomputing() -> None:
    x, y, stim, time = _timed(25, 2, seed=4)
    fast = linear_cka_null(x, y, stimulus=stim, time=time, n_perm=20, seed=1, kernel="cosine")
    slow = permutation_null(lambda a, b: cka(a, b, kernel="cosine").value, x, y,
                            stimulus=stim, time=time, n_perm=20, seed=1)
    assert fast.observed == pytest.approx(cka(x, y, kernel="cosine").value, abs=1e-12)
    np.testing.assert_allclose(fast.samples, slow.samples, atol=1e-12)
    with pytest.raises(ParameterError, match="gram_cka_null"):
        linear_cka_null(x, y, kernel="rbf")


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_null_for_any_kernel_equals_permuting_the_matrix(debiased: bool) -> None:
    import torch

    from simbench.estimators.cka import gram_cka

    x, y = _related(40)

    def rbf(z: np.ndarray) -> np.ndarray:
        sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        return np.exp(-sq / (2 * np.median(sq)))

    K, L = rbf(x), rbf(y)
    res = gram_cka_null(K, L, n_perm=30, seed=2, debiased=debiased)
    one = np.zeros(40, dtype=int)
    maps = next(StimulusPermutations(np.arange(40)).row_maps(30, seed=2, batch=30))

    def by_hand(M: np.ndarray) -> float:
        return float(gram_cka(torch.as_tensor(K), torch.as_tensor(M), one,
                              debiased=debiased)[0])

    assert res.observed == pytest.approx(by_hand(L), abs=1e-12)
    np.testing.assert_allclose(res.samples, [by_hand(L[m][:, m]) for m in maps], atol=1e-12)
    assert "kernel CKA" in res.method


def test_a_seed_gives_the_same_permutations_whatever_the_batch() -> None:
    """Stimuli of two lengths (two groups); the batch follows dtype and width, the draws not."""
    stim = np.concatenate([np.repeat(np.arange(8), 2), np.arange(8, 20)])
    perms = StimulusPermutations(stim)
    small = np.concatenate(list(perms.row_maps(30, seed=1, batch=4)))
    large = np.concatenate(list(perms.row_maps(30, seed=1, batch=30)))
    np.testing.assert_array_equal(small, large)
    x, y = _related(len(stim), noise=3.0)
    a = linear_cka_null(x, y, stimulus=stim, n_perm=30, seed=1, dtype="float32")
    b = permutation_null(lambda u, v: cka(u, v).value, x, y, stimulus=stim, n_perm=30, seed=1)
    np.testing.assert_allclose(a.samples, b.samples, atol=1e-5)
