"""The language-model protocol of MAS: embedding by default, the step away from both ends,
token IIA as the headline, the within-model ceiling with its warning, the data-driven start,
and the planted identity (a zoo LM against an exact re-parametrization of itself)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

import torch

import simbench
from simbench.bench.leaderboard import WARN_MARK, Entry, Matrix, score_notes
from simbench.bench.render import matrix_text
from simbench.errors import ParameterError
from simbench.lm import load_lm
from simbench.lm.data import MIN_AFTER, MIN_BEFORE, OwnBehaviour, sample_interventions
from simbench.lm.measure import CEILING_WARN, LM_DEFAULTS, ceiling, lm_params
from simbench.lm.reparam import permuted_copy, save_permuted_copy
from simbench.registry import get_registry
from simbench.zoo.lm_build import lm_model_dir
from simbench.zoo.lm_corpus import prompts as zoo_prompts


@pytest.fixture(scope="module")
def toxic_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """lm_toxic_s1 and its exact permuted copy, as model directories."""
    src = lm_model_dir("lm_toxic_s1")
    return src, save_permuted_copy(src, tmp_path_factory.mktemp("perm") / "toxic1_perm",
                                   seed=0)


def test_the_permuted_copy_computes_the_same_logits_with_other_weights(toxic_copy) -> None:
    a = load_lm(toxic_copy[0], prompts=["x"])
    b = load_lm(toxic_copy[1], prompts=["x"])
    from simbench.lm.text import forward, pad_batch

    ids = a.encode(zoo_prompts(16, 3), 8)
    tokens, mask = pad_batch(ids, a.pad, side=a.padding_side)
    with torch.no_grad():
        la, lb = forward(a.module, tokens, mask), forward(b.module, tokens, mask)
    assert (la - lb).abs().max() < 1e-4
    wa, wb = a.module.transformer.wte.weight, b.module.transformer.wte.weight
    assert (wa - wb).abs().max() > 0.1  # every unit moved (a derangement)
    fa = a.module.transformer.h[1].mlp.c_fc.weight
    fb = b.module.transformer.h[1].mlp.c_fc.weight
    assert not torch.allclose(fa, fb)
    with pytest.raises(ParameterError, match="GPT-2"):
        permuted_copy(torch.nn.Linear(2, 2))


def test_fast_kernels_compute_the_same_logits_and_are_put_back(toxic_copy) -> None:
    """The fused GELU and eager attention give the model's logits (to 1e-5) and leave the
    model as it was; the embedding's states by lookup equal those a hooked pass reads."""
    from simbench.lm.kernels import fast_kernels
    from simbench.lm.runner import LMRunner
    from simbench.lm.text import forward, pad_batch

    a = load_lm(toxic_copy[0], prompts=["x"])
    model = a.module.eval()
    tokens, mask = pad_batch(a.encode(zoo_prompts(16, 3), 8), a.pad, side=a.padding_side)
    acts = [block.mlp.act for block in model.transformer.h]
    attn = model.config._attn_implementation
    assert type(acts[0]).__name__ == "NewGELUActivation" and attn != "eager"
    with torch.no_grad():
        ref = forward(model, tokens, mask)
        with fast_kernels(model, "cpu"):
            assert all(isinstance(b.mlp.act, torch.nn.GELU) for b in model.transformer.h)
            assert model.config._attn_implementation == "eager"
            got = forward(model, tokens, mask)
    real = mask.bool()  # (pad positions attend to nothing: each kernel fills them its own way)
    assert (got - ref)[real].abs().max() < 1e-5 and ref.abs().max() > 1
    assert [b.mlp.act for b in model.transformer.h] == acts
    assert model.config._attn_implementation == attn
    runner = LMRunner(a, "embedding")
    looked_up = runner.site_states(tokens, mask)
    runner.embedding_lookup = False
    torch.testing.assert_close(looked_up, runner.site_states(tokens, mask), atol=0, rtol=0)


def test_the_step_is_drawn_away_from_both_ends() -> None:
    rng = np.random.default_rng(0)
    lengths = [14, 20, 21]
    prompts = [[1] * (n - 8) for n in lengths]
    own = OwnBehaviour.build(prompts, [[2] * 8 for _ in lengths], pad=0)
    iv = sample_interventions(own, own, np.arange(3), 2000, rng)
    len_s = own.lengths[iv.src_idx]
    assert int(iv.step.min()) == MIN_BEFORE
    assert bool((iv.step <= len_s - 1 - MIN_AFTER).all())
    assert bool((iv.scored.sum(1) >= MIN_AFTER).all())  # at least two tokens scored
    # every step in range is drawn (uniform), the top one included
    assert int(iv.step.max()) == int((own.lengths - 1 - MIN_AFTER).min()) or \
        int(iv.step.max()) >= 17
    old = sample_interventions(own, own, np.arange(3), 2000, np.random.default_rng(0),
                               min_before=0, min_after=0)
    assert int(old.step.min()) == 0


def test_language_models_take_the_protocol_defaults_unless_given() -> None:
    mas = get_registry().measure("mas")
    params, applied = lm_params(mas, mas.resolve_params({}))
    assert params["init"] == "pca" and all(params[k] == v for k, v in LM_DEFAULTS.items())
    assert applied["init"] == "pca" and "eval_every" not in applied  # generic default kept
    params, applied = lm_params(mas, mas.resolve_params({"batch_size": 16, "n_val": 100}))
    assert params["batch_size"] == 16 and params["n_val"] == 100
    assert "batch_size" not in applied and applied["max_steps"] == LM_DEFAULTS["max_steps"]


def test_the_ceiling_normalises_and_warns_below_the_threshold() -> None:
    res = {(0, 0): {"token": 0.9, "trial": 0.5}, (1, 1): {"token": 0.95, "trial": 0.6},
           (0, 1): {"token": 0.45, "trial": 0.2}, (1, 0): {"token": 0.45, "trial": 0.3}}
    roof = ceiling(["a", "b"], list(res), [(0, 1), (1, 0)], res, "transformer.h.2")
    assert roof["within"]["a"] == {"token": 0.9, "trial": 0.5}
    assert roof["normalised_token"] == pytest.approx(0.45 / 0.925)
    assert roof["normalised_trial"] == pytest.approx((0.2 / 0.55 + 0.3 / 0.55) / 2)
    assert not roof["ok"] and "cannot express identity" in roof["warning"]
    assert f"{CEILING_WARN}" in roof["warning"] and "a, b" in roof["warning"]
    good = {d: {"token": 0.99, "trial": 0.9} for d in res}
    assert ceiling(["a", "b"], list(good), [(0, 1), (1, 0)], good)["ok"]
    # the CLI shows the ceiling and the warning under the score
    from simbench.cli.core import render_score
    from simbench.result import Score

    score = Score(measure="mas", value=0.45, systems=("a", "b"), site="transformer.h.2",
                  attrs={"headline": "token", "trial_iia": 0.25, "trial_ci": [0.2, 0.3],
                         "ceiling": roof, "warning": roof["warning"]})
    text = render_score(score)
    assert "headline: token IIA 0.4500" in text and "a: token 0.900, whole 0.500" in text
    assert "WARNING: within-model" in text and "try site = embedding" in text


def test_boards_mark_warned_cells_and_say_token_iia_is_the_headline() -> None:
    e = Entry("mas", "mas", "mas", ("a", "b"), "transformer.h.2", (), 0.4, None, 1,
              warning="within-model IIA under 0.8", headline="token")
    notes = score_notes([e])
    assert any("token IIA" in n for n in notes) and any(n.startswith(WARN_MARK) for n in notes)
    m = Matrix("mas", "transformer.h.2", ["a", "b"], np.array([[np.nan, 0.4], [0.4, np.nan]]),
               True, (0.0, 1.0), None, [[False, True], [True, False]])
    assert f"0.400{WARN_MARK}" in matrix_text(m)


def test_a_site_is_required_unless_every_system_is_a_language_model() -> None:
    with pytest.raises(ParameterError, match="no site"):
        simbench.score("cka", "recordings/population_gru_multi.nc",
                       "recordings/population_gru_multi.nc")


def test_the_data_driven_start_aligns_a_permuted_copy_exactly(toxic_copy) -> None:
    """Procrustes on the shared prompt tokens recovers the permutation: the copy's subspace
    is the original's with its rows permuted, so both code every prompt alike."""
    from simbench.interventions.engine import EngineConfig, Party, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.lm.engine import LMEngine, init_from_prompts
    from simbench.lm.reparam import permutations
    from simbench.lm.runner import LMRunner
    from simbench.lm.text import greedy_continue
    from simbench.tasks.continuation import CONTINUATION, Continuation

    task = Continuation(zoo_prompts(40, 5), new_tokens=4)
    systems = [load_lm(p, prompts=task.prompts, new_tokens=4) for p in toxic_copy]
    runners = [LMRunner(s, "embedding") for s in systems]
    own = []
    for s in systems:
        ids = s.encode(task.prompts, 4)
        own.append(OwnBehaviour.build(ids, greedy_continue(s.module, ids, 4, pad=s.pad,
                                                           side=s.padding_side), s.pad))
    parties = [Party(s.system_id, task, CONTINUATION, r.width, r)
               for s, r in zip(systems, runners)]
    imap = SubspaceMap([64, 64], 8, seed=0)
    engine = LMEngine(parties, imap, directions_for(2), EngineConfig(
        n_train=16, n_val=8, n_test=8, stepwise=True, pool_size=40), behaviour=own)
    assert init_from_prompts(engine)
    perm = permutations(systems[0].module, 0)["resid"]
    u0, u1 = imap.U(0).detach(), imap.U(1).detach()
    torch.testing.assert_close(u1, u0[perm], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_a_zoo_lm_against_its_permuted_copy_is_identical_to_every_measure(toxic_copy,
                                                                          tmp_path) -> None:
    """The planted identity: CKA = RSA = 1 on recordings, and MAS at the default protocol
    (embedding) aligns the copy as well as the model aligns with itself, near the top."""
    prompts = zoo_prompts(160, 7)
    recs = {}
    for name, path in zip("ab", toxic_copy):
        recs[name] = load_lm(path, prompts=prompts).record(sites=["transformer.h.2"])
    for measure in ("cka", "rsa"):
        s = simbench.score(measure, recs["a"], recs["b"], site="transformer.h.2")
        assert s.value == pytest.approx(1.0, abs=1e-3)
    s = simbench.score("mas", str(toxic_copy[0]), str(toxic_copy[1]), prompts=prompts,
                       stepwise=True, progress=False)
    assert s.site == "embedding" and s.attrs["headline"] == "token"
    roof = s.attrs["ceiling"]
    assert roof["ok"] and "warning" not in s.attrs
    assert s.attrs["within_iia"] >= 0.85
    assert abs(s.attrs["trial_iia"] - s.attrs["within_iia"]) <= 0.05
    assert abs(s.value - s.attrs["within_token_iia"]) <= 0.05
    assert roof["normalised_token"] == pytest.approx(1.0, abs=0.05)
