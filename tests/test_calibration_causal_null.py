"""The shuffled-counterfactual null of the causal measures: a trained alignment scored on held-out
counterfactuals whose source states are re-paired at random. Real alignments (shipped, trained
by the benchmarks) beat it; a random untrained subspace does not."""

from __future__ import annotations

from pathlib import Path

import pytest

import simbench
from simbench.calibration.permutation import null_kind
from simbench.registry import get_registry

ALIGN = Path(__file__).resolve().parents[1] / "recordings" / "alignments"
GRUS = ("gru_multi_s1", "gru_multi_s2")
FAST = dict(n_train=32, n_val=32, n_test=30, pool_size=100, progress=False, device="cpu")


@pytest.mark.slow
def test_trained_mas_beats_its_shuffled_null_and_a_random_subspace_does_not() -> None:
    trained = simbench.score("mas", *GRUS, site="hidden", k=16, seed=3, null=19,
                             null_draw="shuffled",
                             load=str(ALIGN / "mas_gru_gru_hidden.safetensors"), **FAST)
    assert trained.value >= 0.85
    assert trained.p_value == pytest.approx(1 / 20)  # every draw below: the smallest possible
    assert trained.null_mean < 0.4 and trained.null_size == 19
    assert "re-pairings of held-out interventions" in trained.null_method
    assert "gru_multi_s1->gru_multi_s2, gru_multi_s2->gru_multi_s1" in trained.null_method
    control = simbench.score("mas", *GRUS, site="hidden", k=16, seed=3, null=19,
                             null_draw="shuffled", control=True, **FAST)
    # an untrained subspace carries no source value: shuffling its sources changes nothing
    assert control.value < 0.4
    assert control.p_value > 0.05, (control.value, control.null_mean)
    assert abs(control.value - control.null_mean) < 3 * control.null_sd + 0.05


@pytest.mark.slow
def test_the_shuffled_null_is_seeded_and_leaves_the_engine_as_it_was() -> None:
    """Same seed, same draws; the score itself does not depend on whether a null was drawn."""
    kw = dict(site="hidden", k=16, load=str(ALIGN / "das_gru_k16.safetensors"), **FAST)
    a = simbench.score("das", "gru_multi_s1", seed=5, null=4, null_draw="shuffled", **kw)
    b = simbench.score("das", "gru_multi_s1", seed=5, null=4, null_draw="shuffled", **kw)
    plain = simbench.score("das", "gru_multi_s1", seed=5, **kw)
    assert (a.null_mean, a.null_sd, a.p_value) == (b.null_mean, b.null_sd, b.p_value)
    assert a.value == plain.value and plain.p_value is None
    assert a.value > 0.8 and a.null_mean < a.value - 0.3
    assert "gru_multi_s1->gru_multi_s1" in a.null_method


@pytest.mark.slow
def test_model_stitch_and_clmas_carry_a_shuffled_null() -> None:
    stitch = simbench.score("model_stitch", *GRUS, site="hidden", rank=2, seed=2, null=9,
                            load=str(ALIGN / "stitch_rank2.safetensors"), **FAST)
    assert stitch.value >= 0.85
    assert stitch.p_value == pytest.approx(1 / 10) and stitch.null_mean < 0.5
    clmas = simbench.score("clmas", GRUS[0], site="hidden", inaccessible=GRUS[1], eps=0.89,
                           k=16, seed=2, null=9, record_n=300,
                           load=str(ALIGN / "clmas_eps0.89.safetensors"), **FAST)
    assert clmas.value > clmas.null_mean + 0.3
    assert clmas.p_value == pytest.approx(1 / 10)
    assert "gru_multi_s2->gru_multi_s1" in clmas.null_method
    for name in ("clmas", "model_stitch"):
        assert null_kind(get_registry().measure(name)) == "own"


@pytest.mark.slow
def test_latent_stitch_carries_a_shuffled_null_into_a_network() -> None:
    """The shipped latent stitch between two GRU seeds, scored into the second network: its
    sources re-paired at random score lower; into a recording (an R^2 fit) a null is refused."""
    stitch = simbench.score("latent_stitch", *GRUS, site="hidden", seed=2, null=9,
                            record_n=300, load=str(ALIGN / "latent_stitch.safetensors"), **FAST)
    assert stitch.null_size == 9 and stitch.value > stitch.null_mean + 0.2
    assert stitch.p_value == pytest.approx(1 / 10)
    assert "gru_multi_s1->gru_multi_s2" in stitch.null_method
    plain = simbench.score("latent_stitch", *GRUS, site="hidden", seed=2, record_n=300,
                           load=str(ALIGN / "latent_stitch.safetensors"), **FAST)
    assert plain.value == stitch.value and plain.p_value is None
    assert null_kind(get_registry().measure("latent_stitch")) == "own"
    rec = Path(__file__).resolve().parents[1] / "recordings" / "population_gru_multi.nc"
    with pytest.raises(simbench.SimbenchError, match="has no null") as exc:
        simbench.score("latent_stitch", GRUS[0], str(rec), site="hidden", null=3, **FAST)
    assert "clmas --null" in exc.value.fix


def test_null_draw_is_checked() -> None:
    with pytest.raises(simbench.SimbenchError, match=r"null_draw.*subspaces, shuffled"):
        simbench.score("das", "gru_multi_s1", site="hidden", null=2, null_draw="labels",
                       **FAST)
