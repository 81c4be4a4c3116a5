"""Precision of the fast linear-CKA null: bfloat16 per-permutation products against float32
(statistically harmless), the ``auto`` choice, and the narrower side's gather."""

from __future__ import annotations

import os

import numpy as np
import pytest

from simbench.calibration import linear_cka_null, permutation_null
from simbench.calibration.permutation import (
    AUTO_BF16_MIN_MACS,
    bf16_native,
    resolve_null_dtype,
)
from simbench.errors import ParameterError
from simbench.estimators.cka import cka

N_PERM = 400


def _data(effect: float, steep: bool, seed: int = 0, n: int = 3000, p: int = 64, q: int = 48
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p))
    if steep:  # a decaying spectrum: few effectively independent entries of X'PY
        x = x / np.arange(1, p + 1)
    noise = rng.standard_normal((n, q)) * (np.linspace(0.1, 3.0, q) if steep else 1.0)
    return x, effect * x[:, :q] @ rng.standard_normal((q, q)) / np.sqrt(q) + noise


@pytest.mark.slow
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize(("effect", "steep"), [(0.3, False), (0.0, False), (0.0, True)])
def test_bfloat16_null_agrees_with_the_float32_null(effect: float, steep: bool,
                                                    debiased: bool) -> None:
    """Same permutations: per-sample error, mean, sd and quantiles well inside the null's own
    Monte Carlo error; p-values equal up to 1/(N + 1); the observed value is float32's."""
    x, y = _data(effect, steep)
    ref = linear_cka_null(x, y, n_perm=N_PERM, seed=1, dtype="float32", null_dtype="same",
                          debiased=debiased)
    low = linear_cka_null(x, y, n_perm=N_PERM, seed=1, dtype="bfloat16", debiased=debiased)
    sd = ref.null_sd
    diff = low.samples - ref.samples
    assert np.abs(diff).max() < 0.05 * sd  # measured: <= 0.022 sd
    assert np.abs(diff).std() < 0.02 * sd  # measured: ~0.005 sd
    # the Monte Carlo error of the mean is sd / sqrt(400) = 0.05 sd: 10x above the tolerance
    assert abs(low.null_mean - ref.null_mean) < 0.005 * sd
    assert low.null_sd == pytest.approx(sd, rel=0.005)
    qs = [0.05, 0.5, 0.95, 0.99]
    np.testing.assert_allclose(np.quantile(low.samples, qs), np.quantile(ref.samples, qs),
                               rtol=0, atol=0.03 * sd)
    assert abs(low.p_value - ref.p_value) <= 1 / (N_PERM + 1) + 1e-15
    assert low.observed == pytest.approx(ref.observed, rel=1e-6, abs=1e-9)
    assert low.observed == pytest.approx(cka(x, y, debiased=debiased).value, rel=1e-5,
                                         abs=1e-7)
    assert "bfloat16 products; observed value in float32" in low.method
    assert "float32 products" in ref.method and "observed value in" not in ref.method


def test_a_real_effect_keeps_its_p_value_in_bfloat16() -> None:
    x, y = _data(0.3, False, seed=3)
    low = linear_cka_null(x, y, n_perm=199, seed=0, dtype="float64", null_dtype="bfloat16")
    assert low.p_value == pytest.approx(1 / 200)
    assert low.observed == pytest.approx(cka(x, y).value, abs=1e-12)  # float64 observed
    assert "observed value in float64" in low.method


def test_auto_uses_bfloat16_only_where_native_and_large() -> None:
    native = bf16_native("cpu")
    big, small = AUTO_BF16_MIN_MACS, AUTO_BF16_MIN_MACS / 2
    assert resolve_null_dtype("auto", "float64", big) == ("bfloat16" if native else "float32")
    assert resolve_null_dtype("auto", "float32", big) == ("bfloat16" if native else "float32")
    assert resolve_null_dtype("auto", "float64", small) == "float64"
    assert resolve_null_dtype("auto", "float32", small) == "float32"
    assert resolve_null_dtype("same", "float64", big) == "float64"
    assert resolve_null_dtype("float32", "float64", small) == "float32"
    assert not bf16_native("meta")
    with pytest.raises(ParameterError, match="null_dtype"):
        resolve_null_dtype("half", "float32", big)
    with pytest.raises(ParameterError, match="dtype"):
        linear_cka_null(*_data(0.0, False, n=50), n_perm=5, dtype="float16")


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs Linux CPU flags")
def test_native_bfloat16_follows_the_cpu_flags() -> None:
    with open("/proc/cpuinfo") as fh:
        flags = {f for line in fh if line.startswith("flags") for f in line.split()}
    assert bf16_native("cpu") == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_small_nulls_keep_full_precision_by_default() -> None:
    """Below the size where speed matters, ``auto`` keeps ``dtype``: exact to rounding."""
    x, y = _data(0.3, False, n=200, p=10, q=7)
    res = linear_cka_null(x, y, n_perm=30, seed=2)
    slow = permutation_null(lambda a, b: cka(a, b).value, x, y, n_perm=30, seed=2)
    np.testing.assert_allclose(res.samples, slow.samples, rtol=0, atol=1e-12)
    assert "float64 products" in res.method


@pytest.mark.parametrize("debiased", [False, True])
def test_the_narrower_side_is_gathered_with_the_same_values(debiased: bool) -> None:
    """p < q: rows of X are gathered by the inverse maps; the values are those of re-pairing Y."""
    rng = np.random.default_rng(5)
    stim = np.repeat(np.arange(40), 3)
    x = rng.standard_normal((120, 4))
    y = np.hstack([x, x]) @ rng.standard_normal((8, 30)) + 3 * rng.standard_normal((120, 30))
    fast = linear_cka_null(x, y, stimulus=stim, n_perm=25, seed=7, form="feature",
                           debiased=debiased)
    slow = permutation_null(lambda a, b: cka(a, b, debiased=debiased).value, x, y,
                            stimulus=stim, n_perm=25, seed=7)
    np.testing.assert_allclose(fast.samples, slow.samples, rtol=0, atol=1e-12)
    assert np.ptp(fast.samples) > 0


# ---- exact permutation moments (the RV coefficient's) ---------------------------------------
@pytest.mark.parametrize("form", ["feature", "gram"])
def test_exact_moments_equal_the_full_enumeration(form: str) -> None:
    """n = 7: all 5,040 pairings (the 5,039 the null enumerates plus the observed one)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3)) * [1.0, 3.0, 0.2]
    y = rng.standard_normal((7, 2)) ** 3  # heavy-tailed rows: the diagonal term matters
    with pytest.warns(UserWarning, match="used all 5039"):
        res = linear_cka_null(x, y, n_perm=10_000, form=form)
    every = np.concatenate([[res.observed], res.samples])
    assert res.exact_moments is not None
    mean, sd = res.exact_moments
    assert mean == pytest.approx(every.mean(), rel=1e-12)
    assert sd == pytest.approx(every.std(), rel=1e-12)
    attrs = res.attrs()
    assert attrs["null_exact_mean"] == mean and attrs["null_exact_sd"] == sd


@pytest.mark.parametrize("null_dtype", ["same", "bfloat16"])
def test_a_thousand_permutations_match_the_exact_moments(null_dtype: str) -> None:
    """The Monte Carlo null's mean and sd within their sampling error of the exact ones."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 20)) * np.linspace(0.2, 2.0, 20)
    y = 0.5 * x[:, :15] + rng.standard_t(3, size=(400, 15))
    res = linear_cka_null(x, y, n_perm=1000, seed=0, null_dtype=null_dtype)
    mean, sd = res.exact_moments
    s = res.samples
    kurt = float(np.mean((s - s.mean()) ** 4) / s.var() ** 2)
    assert abs(res.null_mean - mean) < 4 * sd / np.sqrt(len(s))
    assert abs(res.null_sd - sd) < 4 * sd * np.sqrt((kurt - 1) / (4 * len(s)))
    assert res.observed > mean + 10 * sd


def test_exact_moments_only_where_they_apply() -> None:
    """Debiased HSIC, and stimuli of several rows (blocks move together): no closed form."""
    x, y = _data(0.2, False, n=60, p=4, q=3)
    assert linear_cka_null(x, y, n_perm=20, debiased=True).exact_moments is None
    blocks = linear_cka_null(x, y, stimulus=np.repeat(np.arange(30), 2), n_perm=20)
    assert blocks.exact_moments is None and "null_exact_mean" not in blocks.attrs()
    assert linear_cka_null(x, y, n_perm=20, kernel="cosine").exact_moments is not None


def test_a_seed_gives_the_same_bfloat16_null_every_time() -> None:
    x, y = _data(0.2, False, n=500, p=24, q=16)
    a = linear_cka_null(x, y, n_perm=50, seed=9, null_dtype="bfloat16")
    b = linear_cka_null(x, y, n_perm=50, seed=9, null_dtype="bfloat16")
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.method == b.method and "bfloat16 products" in a.method


def test_auto_lowers_the_precision_of_large_nulls_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A threshold lowered to this small null's size: the null's products go to bfloat16 (or
    float32 without native bfloat16), the observed value stays float64."""
    from simbench.calibration import permutation

    x, y = _data(0.3, False, n=300, p=12, q=8)
    before = linear_cka_null(x, y, n_perm=40, seed=3)
    monkeypatch.setattr(permutation, "AUTO_BF16_MIN_MACS", 300 * 12 * 8 * 40)
    after = linear_cka_null(x, y, n_perm=40, seed=3)
    low = "bfloat16" if bf16_native("cpu") else "float32"
    assert "float64 products" in before.method
    assert f"{low} products; observed value in float64" in after.method
    assert after.observed == pytest.approx(before.observed, rel=1e-12)
    np.testing.assert_allclose(after.samples, before.samples, rtol=0, atol=0.05 * before.null_sd)
