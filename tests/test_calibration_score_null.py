"""A null beside the score, end to end: ``null = N`` on cka, cka_paper and rsa gives a p-value
that is small where the systems share structure and large where the pairing is chance; the
Score carries it through JSON and the store; measures declare whether they can be permuted."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from recording_helpers import save

import simbench
from simbench.calibration import (
    NullError,
    NullWarning,
    null_kind,
    permutation_null,
    require_null,
)
from simbench.errors import ParameterError
from simbench.registry import get_registry
from simbench.result import Score

N_STIM, N_TIME, N_UNIT = 40, 3, 6


def _activity(seed: int = 0) -> np.ndarray:
    """[stimulus, time, unit] activity with a strong per-stimulus component shared over time
    (so a null that moved time steps independently would come out different)."""
    rng = np.random.default_rng(seed)
    per_stim = rng.standard_normal((N_STIM, 1, N_UNIT)) * 3
    return per_stim + 0.5 * rng.standard_normal((N_STIM, N_TIME, N_UNIT))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    x = _activity()
    rng = np.random.default_rng(5)
    rot = np.linalg.qr(rng.standard_normal((N_UNIT, N_UNIT)))[0]
    related = x @ rot + 0.8 * rng.standard_normal(x.shape)
    shuffled = x[np.random.default_rng(9).permutation(N_STIM)]  # itself, stimuli re-paired
    return {"a": save(tmp_path / "a.nc", "a", x),
            "related": save(tmp_path / "r.nc", "related", related),
            "shuffled": save(tmp_path / "s.nc", "shuffled", shuffled)}


@pytest.mark.slow
@pytest.mark.parametrize("measure, kw", [("cka", {}), ("cka", {"kernel": "rbf"}),
                                          ("cka", {"debiased": True}), ("cka_paper", {}),
                                          ("rsa", {"n_vectors": 60, "n_draws": 2})])
def test_related_beat_the_null_and_a_shuffled_copy_does_not(files, measure, kw) -> None:
    near = simbench.score(measure, files["a"], files["related"], site="hidden", null=99, **kw)
    assert near.p_value == pytest.approx(1 / 100)  # no re-pairing reaches the true one
    assert near.null_size == 99 and "99 uniform random permutations of 40 stimuli" in \
        near.null_method
    assert near.value > near.null_mean + 4 * near.null_sd
    far = simbench.score(measure, files["a"], files["shuffled"], site="hidden", null=99, **kw)
    assert far.p_value > 0.05  # the observed pairing is one draw of the null
    assert abs(far.value - far.null_mean) < 3 * far.null_sd
    no_null = simbench.score(measure, files["a"], files["related"], site="hidden", **kw)
    assert no_null.p_value is None and no_null.value == near.value
    assert "p = 0.01 (null" in str(near) and "99 permutations)" in str(near)


def test_the_null_of_cka_equals_recomputing_cka_on_each_repairing(files) -> None:
    """The plugin's fast null against the measure itself on re-paired recordings' rows."""
    from simbench.estimators.cka import distance_cka
    from simbench.pairing import pair_sites
    from simbench.recording import load_recording

    a, b = (load_recording(files[k]).site("hidden") for k in ("a", "related"))
    pair = pair_sites(a, b)
    s = simbench.score("cka_paper", files["a"], files["related"], site="hidden", null=30,
                       n_boot=0)
    slow = permutation_null(lambda x, y: distance_cka(x, y).value, pair.x, pair.y,
                            stimulus=pair.stimulus, time=pair.time, n_perm=30, seed=0)
    assert s.null_mean == pytest.approx(slow.null_mean, abs=1e-10)
    assert s.null_sd == pytest.approx(slow.null_sd, abs=1e-10)
    assert s.p_value == slow.p_value


def test_two_seeds_of_a_zoo_gru_beat_the_null() -> None:
    s = simbench.score("cka", "gru_multi_s1", "gru_multi_s2", site="hidden", n_stimuli=60,
                       n_boot=0, null=200)
    assert s.p_value == pytest.approx(1 / 201)
    assert s.value > s.null_mean + 5 * s.null_sd
    assert "whole stimuli" in s.null_method and "seed 0" in s.null_method


def test_more_permutations_than_a_small_set_has_uses_all_and_says_so(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    a, b = save(tmp_path / "a.nc", "a", x), save(tmp_path / "b.nc", "b", x * 2 + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = simbench.score("cka", a, b, site="hidden", null=1000, n_boot=0)
    assert s.null_size == 23  # 4! - 1 non-identity pairings
    assert "all 23 non-identity permutations" in s.null_method
    assert "asked for 1000 permutations" in s.attrs["null_note"]
    assert any(issubclass(w.category, NullWarning) for w in caught)
    assert s.p_value == pytest.approx(1 / 24)  # identical up to scale: nothing else reaches 1


def test_measures_declare_their_null() -> None:
    reg = get_registry()
    assert [null_kind(reg.measure(m)) for m in ("cka", "cka_paper", "rsa")] == ["permute"] * 3
    assert reg.measure("cka").param("null").default == 0

    class Legacy:  # a plugin written before the attribute: its family decides
        name, family = "legacy", "correlative"

    class Causal:
        name, family = "mine", "causal"

    class Own:
        name, family, null = "own_null", "causal", "own"

    assert null_kind(Legacy()) == "permute" and null_kind(Own()) == "own"
    assert null_kind(Causal()) is None
    require_null(Causal(), 0)  # no null asked for: fine
    with pytest.raises(ParameterError, match="measure 'mine' cannot be scored on re-paired"):
        require_null(Causal(), 100)
    with pytest.raises(NullError, match="drop --null"):
        require_null(Causal(), 100)

    class Bad:
        name, null = "bad", "sometimes"

    with pytest.raises(ParameterError, match="declares null = 'sometimes'"):
        null_kind(Bad())


def test_score_round_trips_its_null_through_json_and_the_store(tmp_path: Path, files) -> None:
    s = simbench.score("cka", files["a"], files["related"], site="hidden", null=20, n_boot=0)
    back = Score.from_dict(json.loads(s.to_json()))
    assert (back.p_value, back.null_mean, back.null_sd, back.null_size, back.null_method) == \
        (s.p_value, s.null_mean, s.null_sd, s.null_size, s.null_method)
    plain = Score.from_dict(Score(measure="m", value=1.0, systems=("a",)).to_dict())
    assert plain.p_value is None and plain.null_size is None and "p =" not in str(plain)
    assert "p_value" not in Score(measure="m", value=1.0, systems=("a",)).to_dict()
    ds = s.to_dataset()
    assert ds.attrs["p_value"] == s.p_value and ds.attrs["null_size"] == 20

    from simbench.bench.jobs import Job
    from simbench.bench.store import Store

    job = Job(key="k1", label="cka", measure="cka", params={"null": 20}, swept={},
              systems=("a", "related"), sources=(str(files["a"]), str(files["related"])),
              site="hidden", task=None, seed=0, code_version="test", categories=("x",))
    with Store(tmp_path / "s.sqlite") as store:
        store.write(job, {"status": "done", "score": s.to_dict(), "runtime_s": 0.1})
        (row,) = store.rows()
    stored = Score.from_dict(json.loads(row["score"]))
    assert stored.p_value == s.p_value and stored.null_method == s.null_method


# ---- causal measures: untrained random subspaces over seeds ----------------------------------
ALIGN = Path(__file__).resolve().parents[1] / "recordings" / "alignments"
GRUS = ("gru_multi_s1", "gru_multi_s2")
# few held-out counterfactuals and draws: each draw is one free-running evaluation
FAST = dict(n_train=32, n_val=32, n_test=30, pool_size=100, progress=False, device="cpu")


@pytest.mark.slow
def test_a_trained_mas_alignment_beats_random_subspaces_of_the_same_k() -> None:
    trained = simbench.score("mas", *GRUS, site="hidden", k=16, seed=101, null=4,
                             load=str(ALIGN / "mas_gru_gru_hidden.safetensors"), **FAST)
    assert trained.p_value == pytest.approx(1 / 5)  # the smallest 4 draws allow: all below
    assert trained.null_size == 4 and "4 sets of untrained random subspaces of k = 16" in \
        trained.null_method
    assert trained.null_mean < 0.35 and trained.value >= 0.85
    assert "p = 0.2 (null" in str(trained) and "4 draws)" in str(trained)
    control = simbench.score("mas", *GRUS, site="hidden", k=16, seed=101, control=True,
                             null=4, **FAST)
    assert control.null_mean == pytest.approx(trained.null_mean)  # same draws, same data
    assert control.p_value > 0.2  # a random subspace is one draw of its own null
    assert null_kind(get_registry().measure("mas")) == "own"
    assert null_kind(get_registry().measure("das")) == "own"
