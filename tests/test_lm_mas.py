"""Stepwise MAS between language models: the cached-prefix path, IIA, bad input, the CLI,
and recordings that CKA and RSA score."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

import torch
from lm_helpers import PROMPTS, WORDS, gpt2, llama, save, tokenizer

import simbench
from simbench.cli import main
from simbench.errors import ParameterError, TaskError
from simbench.lm import load_lm
from simbench.lm.runner import LMRunner
from simbench.recording import load_recording

FAST = {"n_train": 32, "n_val": 16, "n_test": 24, "batch_size": 8, "progress": False}


@pytest.fixture(scope="module")
def lms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm_mas")
    (root / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    return {"gpt_a": save(gpt2(0), tokenizer(), root / "gpt_a"),
            "gpt_b": save(gpt2(1), tokenizer(), root / "gpt_b"),
            "gpt_wide": save(gpt2(2, width=48), tokenizer(), root / "gpt_wide"),
            "llama": save(llama(0), tokenizer("left"), root / "llama"),
            "prompts": root / "prompts.txt"}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "site"), [("gpt_a", "transformer.h.1"),
                                             ("gpt_a", "transformer.h.2"),
                                             ("gpt_a", "embedding"),
                                             ("llama", "model.layers.0")])
def test_cached_prefix_pass_equals_a_full_model_patched_pass(lms: dict[str, Path], name: str,
                                                             site: str) -> None:
    """Running only the layers above the site on cached states gives the logits of a plain
    full-model pass with the same low-rank patch applied by a hook."""
    system = load_lm(lms[name], prompts=PROMPTS)
    ids = system.encode(PROMPTS)
    from simbench.lm.text import pad_batch

    tokens, mask = pad_batch(ids, system.pad)
    g = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(32, 4, generator=g)).Q
    z = torch.randn(*tokens.shape, 4, generator=g)
    patch = (torch.rand(tokens.shape, generator=g) < 0.5) & mask.bool()
    want = mask.bool()

    def fn(h: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return h + (z[b, t] - h @ u) @ u.T

    fast = LMRunner(system, site)
    assert fast.fast
    got = fast.patched(tokens, mask, patch, fn, want, fast.site_states(tokens, mask))
    plain, _ = system.model.run(tokens, edits={site: (patch, fn)}, attention_mask=mask)
    torch.testing.assert_close(got, plain[want], atol=1e-5, rtol=1e-5)
    unpatched, _ = system.model.run(tokens, attention_mask=mask)
    assert (got - unpatched[want]).abs().max() > 1e-3  # the patch changed something


def test_a_model_with_itself_at_full_k_has_iia_one(lms: dict[str, Path]) -> None:
    """Within a model at k = width the interchange puts the source's whole state in: the target
    then continues exactly as the source did (untrained subspaces suffice)."""
    score = simbench.score("mas", str(lms["gpt_a"]), str(lms["gpt_b"]), site="transformer.h.1",
                           prompts=lms["prompts"], new_tokens=4, k=32, control=True, **FAST)
    trial = score.breakdown["iia_trial"].values
    token = score.breakdown["iia_token"].values
    assert trial[0, 0] == trial[1, 1] == 1.0 and token[0, 0] == token[1, 1] == 1.0
    assert score.attrs["within_iia"] == 1.0 and score.attrs["prefix_cache"] is True
    assert score.attrs["n_prompts"] == len(PROMPTS) and score.attrs["new_tokens"] == 4
    assert 0.0 <= score.value < 1.0  # random models continue differently


@pytest.mark.slow
def test_training_is_deterministic_and_widths_may_differ(lms: dict[str, Path]) -> None:
    args = (str(lms["gpt_a"]), str(lms["gpt_wide"]))
    kw = dict(site="transformer.h.1", prompts=str(lms["prompts"]), new_tokens=3, k=4,
              max_steps=6, eval_every=3, seed=3, **FAST)
    one = simbench.score("mas", *args, **kw)
    two = simbench.score("mas", *args, **kw)
    assert one.value == two.value and one.attrs["token_iia"] == two.attrs["token_iia"]
    assert one.attrs["train"]["steps"] > 0 and one.breakdown["iia_trial"].shape == (2, 2)


def test_fast_and_baseline_runners_train_to_the_same_iia(lms: dict[str, Path]) -> None:
    from simbench.lm.measure import score_mas
    from simbench.registry import get_registry

    mas = get_registry().measure("mas")
    systems = [load_lm(lms[n], prompts=PROMPTS, new_tokens=3) for n in ("gpt_a", "gpt_b")]
    params = mas.resolve_params(dict(k=4, max_steps=4, eval_every=2, **FAST))
    fast = score_mas(mas, systems, site="transformer.h.1", seed=0, device="cpu",
                     params={**params, "fast": True})
    slow = score_mas(mas, systems, site="transformer.h.1", seed=0, device="cpu",
                     params={**params, "fast": False})
    assert fast.attrs["prefix_cache"] and not slow.attrs["prefix_cache"]
    assert abs(fast.value - slow.value) <= 0.01
    assert abs(fast.attrs["token_iia"] - slow.attrs["token_iia"]) <= 0.01


def test_different_tokenizers_are_refused(lms: dict[str, Path], tmp_path: Path) -> None:
    other = save(gpt2(0), tokenizer(words=[*WORDS[:-1], "nice"]), tmp_path / "other")
    with pytest.raises(TaskError, match="different tokenizers") as err:
        simbench.score("mas", str(lms["gpt_a"]), str(other), site="transformer.h.1",
                       prompts=PROMPTS, **FAST)
    assert err.value.field == "tokenizer" and "'nice'" in str(err.value)


def test_k_larger_than_the_width_is_refused(lms: dict[str, Path]) -> None:
    with pytest.raises(ParameterError, match="larger than the width") as err:
        simbench.score("mas", str(lms["gpt_a"]), str(lms["gpt_b"]), site="transformer.h.1",
                       prompts=PROMPTS, k=33, **FAST)
    assert err.value.field == "k" and "--k 32" in err.value.fix


def test_the_cli_scores_two_model_directories(lms: dict[str, Path],
                                              capsys: pytest.CaptureFixture) -> None:
    code = main(["score", "mas", str(lms["gpt_a"]), str(lms["gpt_b"]), "--site",
                 "transformer.h.2", "--prompts", str(lms["prompts"]), "--new-tokens", "3",
                 "--stepwise", "--k", "32", "--control", "true", "--n_train", "16",
                 "--n_val", "8", "--n_test", "16", "--progress", "false", "--json"])
    assert code == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["measure"] == "mas" and out["systems"] == ["gpt_a", "gpt_b"]


@pytest.mark.slow
def test_recordings_pair_and_cka_rsa_score_them(lms: dict[str, Path], tmp_path: Path) -> None:
    paths = {}
    for name in ("gpt_a", "gpt_b"):
        paths[name] = tmp_path / f"{name}.nc"
        assert main(["record", str(lms[name]), "--prompts", str(lms["prompts"]), "--out",
                     str(paths[name]), "--sites", "transformer.h.1,embedding"]) == 0
    rec = load_recording(paths["gpt_a"])
    ds = rec.site("transformer.h.1")
    assert ds["activity"].dims == ("stimulus", "time", "unit")
    assert ds["activity"].shape == (len(PROMPTS), 6, 32)
    assert list(ds["token"].values[6]) == ["the", "dog", "sat", "on", "the", "mat"]
    assert int(ds["valid"].values[7].sum()) == 2 and rec.task == "continuation"
    from simbench.tasks.continuation import prompt_id

    assert ds["stimulus_id"].values[0] == prompt_id(PROMPTS[0])
    cka = simbench.score("cka", paths["gpt_a"], paths["gpt_b"], site="transformer.h.1")
    rsa = simbench.score("rsa", paths["gpt_a"], paths["gpt_b"], site="transformer.h.1")
    same = simbench.score("cka", paths["gpt_a"], paths["gpt_a"], site="transformer.h.1")
    assert same.value == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < cka.value < 1.0 and -1.0 <= rsa.value <= 1.0
    direct = simbench.score("cka", str(lms["gpt_a"]), str(lms["gpt_b"]),
                            site="transformer.h.1", prompts=lms["prompts"])
    assert direct.value == pytest.approx(cka.value, abs=1e-6)  # model directories directly
    with pytest.raises(ParameterError, match="language models"):  # prompts need an LM
        simbench.score("cka", paths["gpt_a"], paths["gpt_b"], site="embedding",
                       prompts=PROMPTS)
