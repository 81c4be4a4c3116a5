"""The task suite: causal models and counterfactuals on hand-written sequences, sampling, scoring
and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from simbench.errors import TaskError
from simbench.registry import task_by_name
from simbench.tasks import (
    Arithmetic,
    Modulo,
    MultiObject,
    Rounding,
    SameObject,
    simbench_tasks,
)

MULTI, SAME, MOD, ROUND, ARITH = MultiObject(), SameObject(), Modulo(), Rounding(), Arithmetic()


def words(task, tokens):
    return [" ".join(row) for row in task.decode(tokens)]


def test_multi_object_n5_causal_model():
    tok = MULTI.encode("BOS D D D D D T R R R R R EOS")
    v = MULTI.causal_model(tok)
    assert v["count"][0].tolist() == [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0, 0]
    assert v["phase"][0].tolist() == [0] * 6 + [1] * 7
    assert MULTI.response_mask(tok)[0].tolist() == [False] * 7 + [True] * 6
    assert MULTI.intervenable_positions(tok)[0].tolist() == (
        [False] + [True] * 5 + [False] + [True] * 5 + [False])


def test_sampled_sequences_follow_f():
    for task, n, want in ((MOD, 7, 3), (ROUND, 5, 6), (ROUND, 4, 3), (MULTI, 5, 5), (MOD, 8, 0),
                          (ROUND, 20, 21), (SAME, 6, 6)):
        stim = task.sample(3, 0, counts=[n])
        for row in task.decode(stim.tokens):
            t = row.index("T")
            assert t == n + 1
            assert row[t + 1:] == [task.decode([[task.response_token]])[0][0]] * want + ["EOS"]
        assert (stim.variables["count"][:, n + 1] == want).all()


def test_modulo_and_rounding_causal_models_by_hand():
    tok = MOD.encode("BOS D D D D D D D T R R R EOS")
    assert MOD.causal_model(tok)["count"][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 3, 2, 1, 0, 0]
    tok = ROUND.encode("BOS D D D D D T R R R R R R EOS")
    assert ROUND.causal_model(tok)["count"][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0, 0]
    tok = SAME.encode("BOS C C C T C C C EOS")
    v = SAME.causal_model(tok)
    assert v["count"][0].tolist() == [0, 1, 2, 3, 3, 2, 1, 0, 0]
    assert v["phase"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]


def test_arithmetic_causal_model_by_hand():
    tok = ARITH.encode("BOS 2 5 + 3 = 8 , - 2 = 6 EOS")
    v = ARITH.causal_model(tok)
    assert v["cumu_val"][0].tolist() == [-1, -1, 5, 5, 5, 5, 8, 8, 8, 8, 8, 6, 6]
    assert v["rem_ops"][0].tolist() == [-1, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0]
    # responses: results, the comma and EOS; inputs: n_ops, v0, ops, operands, '='
    assert np.flatnonzero(ARITH.response_mask(tok)[0]).tolist() == [6, 7, 11, 12]
    assert np.flatnonzero(ARITH.intervenable_positions(tok)[0]).tolist() == list(range(2, 12))


def test_counterfactual_source_demo_into_target_response():
    tgt = MULTI.encode("BOS D D D D D D T R R R R R R EOS")
    src = MULTI.encode("BOS D1 D2 D0 D1 T R R R R EOS")
    # target at its 2nd response (6 -> count 4 left); source after 2 demo tokens (count 2)
    cf, mask = MULTI.counterfactual(tgt, [9], src, [2], "count")
    assert words(MULTI, cf) == ["BOS D0 D0 D0 D0 D0 D0 T R R R R EOS"]
    assert np.flatnonzero(mask[0]).tolist() == [10, 11, 12]


def test_counterfactual_source_response_into_target_demo():
    tgt = MULTI.encode("BOS D D1 D2 D1 T R R R R EOS")
    src = MULTI.encode("BOS D D D D D D D T R R R R R R R EOS")
    # target after 2 demo tokens (2 remaining demo inputs); source with 5 responses still owed
    cf, mask = MULTI.counterfactual(tgt, [2], src, [10], "count")
    # count 5 at position 2, +2 remaining demo tokens = 7 at T, then 7 responses
    assert words(MULTI, cf) == ["BOS D0 D1 D2 D1 T R R R R R R R EOS"]
    assert np.flatnonzero(mask[0]).tolist() == list(range(6, 14))  # not the demo inputs, not T


def test_counterfactual_phase_and_count_swap_and_modulo():
    tgt = MULTI.encode("BOS D D D D T R R R R EOS")
    src = MULTI.encode("BOS D D D T R R R EOS")
    cf, mask = MULTI.counterfactual(tgt, [2], src, [5], ("count", "phase"))  # -> response, 2 left
    assert words(MULTI, cf) == ["BOS D0 D0 R R EOS"]
    assert mask[0].tolist() == [False] * 3 + [True] * 3
    cf, mask = MULTI.counterfactual(src, [6], tgt, [3], ("count", "phase"))  # -> demo phase, 3
    # the target is past its trigger: no demo inputs remain, so T follows at once, then f(3)
    assert words(MULTI, cf) == ["BOS D0 D0 D0 T R R T R R R EOS"]
    assert mask[0].tolist() == [False] * 8 + [True] * 4
    # Modulo: the trigger applies f to the carried count
    tgt = MOD.encode("BOS D D D T R R R EOS")
    cf, _ = MOD.counterfactual(tgt, [1], None, None, "count", source_value=[6])
    assert words(MOD, cf) == ["BOS D0 D0 D0 T EOS"]  # 6 + 2 remaining = 8, 8 mod 4 = 0


def test_arithmetic_counterfactuals_by_hand():
    tgt = ARITH.encode("BOS 2 5 + 3 = 8 , - 2 = 6 EOS")
    src = ARITH.encode("BOS 1 12 - 2 = 10 EOS")
    cf, mask = ARITH.counterfactual(tgt, [2], src, [2], "cumu_val")  # v0 5 -> 12
    assert words(ARITH, cf) == ["BOS 2 5 + 3 = 15 , - 2 = 13 EOS"]
    assert np.flatnonzero(mask[0]).tolist() == [6, 7, 11, 12]
    cf, _ = ARITH.counterfactual(tgt, [6], src, [2], "rem_ops")  # after v1, 1 op left -> 1
    assert words(ARITH, cf) == ["BOS 2 5 + 3 = 8 , - 2 = 6 EOS"]
    cf, mask = ARITH.counterfactual(tgt, [6], None, None, "rem_ops", source_value=[0])
    assert words(ARITH, cf) == ["BOS 2 5 + 3 = 8 EOS"]
    assert mask[0].tolist() == [False] * 7 + [True]
    # a future operation that would leave 0..20 from the new value is flipped
    cf, _ = ARITH.counterfactual(tgt, [6], None, None, "cumu_val", source_value=[1])
    assert words(ARITH, cf) == ["BOS 2 5 + 3 = 8 , + 2 = 3 EOS"]


def test_counterfactual_refuses_bad_positions_and_variables():
    tok = MULTI.encode("BOS D D T R R EOS")
    with pytest.raises(TaskError, match="not intervenable"):
        MULTI.counterfactual(tok, [3], tok, [1], "count")  # T
    with pytest.raises(TaskError, match="not intervenable"):
        MULTI.counterfactual(tok, [1], tok, [6], "count")  # EOS
    with pytest.raises(TaskError, match="count, phase"):
        MULTI.counterfactual(tok, [1], tok, [1], "cumu_val")


def test_sampling_counts_split_and_determinism():
    train = MULTI.sample(2000, 3)
    assert not np.isin(train.counts, MULTI.held_out_counts).any()
    held = MULTI.sample(500, 3, held_out=True)
    assert set(held.counts.tolist()) == set(MULTI.held_out_counts)
    every = MULTI.sample(4000, 3, counts="all")
    assert set(every.counts.tolist()) == set(range(1, 21))
    again = MULTI.sample(2000, 3)
    assert np.array_equal(train.tokens, again.tokens) and len(set(train.ids)) == 2000
    assert not np.array_equal(train.tokens, MULTI.sample(2000, 4).tokens)
    arith = ARITH.sample(300, 1)
    assert not np.isin(arith.counts, ARITH.held_out_counts).any()
    assert (arith.variables["cumu_val"][arith.valid] <= 20).all()
    assert (arith.variables["cumu_val"][arith.valid] >= -1).all()


def test_score_trial_and_token_level():
    cf = MULTI.encode(["BOS D T R R EOS", "BOS D T R R EOS"])
    mask = MULTI.response_mask(cf)
    pred = MULTI.encode(["BOS D T R R EOS", "BOS D T R EOS"])
    trial, token = MULTI.score(pred, cf, mask)
    assert trial.tolist() == [True, False]
    assert token.tolist() == pytest.approx([1.0, 1 / 3])


def test_out_of_vocabulary_tokens_are_named():
    with pytest.raises(TaskError, match="'X'"):
        MULTI.encode("BOS D X T")
    with pytest.raises(TaskError, match="token id 99"):
        MULTI.causal_model(np.array([[1, 4, 99]]))
    with pytest.raises(TaskError, match=r"'\+' .*not used by multi_object"):
        MULTI.causal_model(MULTI.encode("BOS D + T"))


def test_unknown_task_lists_valid_ones():
    with pytest.raises(TaskError, match="multi_object, same_object, modulo, rounding, arithmetic"):
        task_by_name("counting")
    with pytest.raises(TaskError, match="did you mean 'modulo'"):
        task_by_name("modulus")
    assert task_by_name("rounding").name == "rounding" and task_by_name(MULTI) is MULTI
    assert isinstance(task_by_name(Modulo), Modulo)


def test_tasks_are_looked_up_only_through_the_registry():
    """One lookup path: the tasks package keeps no name table of its own."""
    import simbench.tasks

    assert not hasattr(simbench.tasks, "task_by_name")


def test_the_hook_lists_the_built_in_tasks():
    names = [cls.name for cls in simbench_tasks()]
    assert names == ["multi_object", "same_object", "modulo", "rounding", "arithmetic",
                     "continuation"]  # the language models' behavioural task
    assert [len(cls.variables) for cls in simbench_tasks()] == [2] * 5 + [1]
    # importing simbench.tasks costs no torch: test_cka's layer-by-layer import test
