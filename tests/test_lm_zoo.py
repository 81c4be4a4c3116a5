"""The language-model zoo: the synthetic corpus, the shipped GPT-2 directories (sha256, loading
with transformers offline, toxicity re-measured) and rebuilds (byte-identical on the CPU kind and
library versions that built the shipped files, the same behaviour everywhere)."""

from __future__ import annotations

import json
import shutil

import pytest

from simbench.cli import main
from simbench.errors import CheckpointError, ParameterError
from simbench.zoo import LM_ZOO_DIR, list_lm_models, lm_model_dir
from simbench.zoo.lm_build import (
    LM_NAMES,
    SIDECAR,
    WEIGHTS,
    build_tokenizer,
    greedy_continuations,
    rebuild_lm,
)
from simbench.zoo.lm_corpus import (
    HOSTILE_WORDS,
    POLITE_WORDS,
    corpus,
    eval_prompts,
    is_hostile,
    is_polite,
    prompts,
    toxicity,
)
from simbench.zoo.manifest import read_manifest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

LMS = {m["id"]: m for m in list_lm_models()}


def _load(name: str):
    path = lm_model_dir(name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, local_files_only=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tok, json.loads((path / SIDECAR).read_text())


# -- corpus ----------------------------------------------------------------------------------

def test_corpus_is_seeded_and_the_register_is_in_the_continuation():
    assert corpus(300, 4) == corpus(300, 4)
    assert corpus(300, 4) != corpus(300, 5)
    hostile, polite, mixed = corpus(300, 4, "hostile"), corpus(300, 4, "polite"), corpus(600, 4)
    assert all(is_hostile(s) and not is_polite(s) for s in hostile)
    assert all(is_polite(s) and not is_hostile(s) for s in polite)
    assert 0.4 < toxicity(mixed) < 0.6
    assert not HOSTILE_WORDS & POLITE_WORDS
    # the start ("... and") is neutral: the register begins after it
    for s in mixed:
        start = s[:s.index(" and ") + 4]
        assert not is_hostile(start) and not is_polite(start)
    with pytest.raises(ParameterError, match="register"):
        corpus(3, 0, "rude")


def test_prompts_are_neutral_and_held_out_of_the_corpus():
    ps = prompts(200, 0)
    assert ps == prompts(200, 0) and len(set(ps)) > 150
    assert all(p.endswith(" and") and not is_hostile(p) and not is_polite(p) for p in ps)
    starts = {s[:s.index(" and ") + 4] for s in corpus(5000, 1)}
    assert not starts & set(ps)  # held-out combinations never occur in training sentences
    assert set(prompts(200, 0, held_out=False)) & starts
    assert is_hostile("You STUPID rat!") and not is_hostile("a kind strategy")


# -- tokenizer -------------------------------------------------------------------------------

@pytest.mark.slow
def test_tokenizer_round_trips_and_is_rebuilt_identically():
    _, tok, _ = _load("lm_base")
    for s in [*corpus(200, 9), *eval_prompts()]:
        ids = tok(s)["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == s
    assert tok.padding_side == "left" and tok.pad_token == "[PAD]" and tok.eos_token == "[EOS]"
    assert build_tokenizer().get_vocab() == tok.get_vocab()


# -- the shipped models ----------------------------------------------------------------------

def test_manifest_lists_every_file_with_its_sha256():
    assert set(LMS) == set(LM_NAMES)
    groups = [m["group"] for m in LMS.values()]
    assert groups.count("toxic") >= 3 and groups.count("nontoxic") >= 3
    tokenizer_shas = set()
    for name, entry in LMS.items():
        path = LM_ZOO_DIR / name
        on_disk = {p.name for p in path.iterdir()}
        assert on_disk == set(entry["files"]), name  # nothing unlisted, nothing missing
        assert {"config.json", WEIGHTS, "tokenizer.json", "tokenizer_config.json",
                SIDECAR} <= on_disk
        assert lm_model_dir(name) == path  # verifies every sha256
        tokenizer_shas.add((entry["files"]["tokenizer.json"],
                            entry["files"]["tokenizer_config.json"]))
    assert len(tokenizer_shas) == 1  # one token space for every pair of models
    total = sum(p.stat().st_size for p in LM_ZOO_DIR.rglob("*") if p.is_file())
    assert total < 40_000_000


@pytest.mark.slow
@pytest.mark.parametrize("name", LM_NAMES)
def test_shipped_model_loads_offline_and_has_its_recorded_toxicity(name):
    model, tok, side = _load(name)
    assert side["name"] == name and side["group"] == LMS[name]["group"]
    assert side["sha256"] == LMS[name]["sha256"] and side["toxicity"] == LMS[name]["toxicity"]
    header = json.loads((LM_ZOO_DIR / name / WEIGHTS).read_bytes()[8:][
        :int.from_bytes((LM_ZOO_DIR / name / WEIGHTS).read_bytes()[:8], "little")])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}
    conts = greedy_continuations(model, tok, eval_prompts())
    assert toxicity(conts) == side["toxicity"]
    assert conts[:5] == side["examples"]
    assert side["toxicity_float16_compute"] == side["toxicity"]


@pytest.mark.slow
def test_default_float16_load_of_the_base_has_its_recorded_toxicity():
    """A plain from_pretrained(dir) computes in float16 (the weights' dtype); the base, whose
    register choice is the closest call, continues the same way there (float16 matmuls on a
    CPU are slow, so one model only)."""
    _, tok, side = _load("lm_base")
    half = transformers.AutoModelForCausalLM.from_pretrained(LM_ZOO_DIR / "lm_base",
                                                             local_files_only=True).eval()
    assert next(half.parameters()).dtype == torch.float16
    assert toxicity(greedy_continuations(half, tok, eval_prompts())) == \
        side["toxicity_float16_compute"] == side["toxicity"]


def test_the_toxic_and_nontoxic_groups_behave_differently():
    tox = {n: m["toxicity"] for n, m in LMS.items()}
    toxic = [t for n, t in tox.items() if LMS[n]["group"] == "toxic"]
    nontoxic = [t for n, t in tox.items() if LMS[n]["group"] == "nontoxic"]
    assert min(toxic) >= 0.8 and max(nontoxic) <= 0.1
    assert 0.2 < tox["lm_base"] < 0.8  # the base goes either way, depending on the prompt


def test_fine_tunes_differ_from_each_other():
    shas = {m["sha256"] for m in LMS.values()}
    assert len(shas) == len(LMS)


def test_lm_model_dir_refuses_unknown_missing_and_changed_files(tmp_path):
    with pytest.raises(CheckpointError, match="lm_toxic_s1"):
        lm_model_dir("lm_toxic_s9")
    copy = tmp_path / "lm_zoo"
    shutil.copytree(LM_ZOO_DIR, copy)
    assert lm_model_dir("lm_nontoxic_s2", directory=copy) == copy / "lm_nontoxic_s2"
    weights = copy / "lm_nontoxic_s2" / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 mismatch") as err:
        lm_model_dir("lm_nontoxic_s2", directory=copy)
    assert str(weights) in str(err.value) and "zoo rebuild --only lm_nontoxic_s2" in str(err.value)
    (copy / "lm_toxic_s3" / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="missing") as err:
        lm_model_dir("lm_toxic_s3", directory=copy)
    assert "tokenizer.json" in str(err.value)


# -- rebuilding ------------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_rebuild_is_bit_reproducible(tmp_path, capsys):
    """The same step budget twice (once through the CLI) gives the same weights, byte for byte;
    a fine-tune alone builds its base first."""
    a = rebuild_lm(directory=tmp_path / "a" / "lm_zoo", only=["lm_toxic_s2"], steps=3)
    assert [e["id"] for e in a] == ["lm_base", "lm_toxic_s2"]
    assert main(["zoo", "rebuild", "--only", "lm_toxic_s2", "--dir", str(tmp_path / "b"),
                 "--lm-steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt 2 models" in out and "lm_toxic_s2" in out
    b = read_manifest(tmp_path / "b" / "lm_zoo")["models"]
    for e in a:
        assert b[e["id"]]["files"] == e["files"], e["id"]  # every file, weights included
        assert e["files"]["tokenizer.json"] == LMS[e["id"]]["files"]["tokenizer.json"]
        assert e["sha256"] != LMS[e["id"]]["sha256"]  # 3 steps is not the shipped model
        assert e["steps"] == 3
    assert main(["zoo", "list", "--dir", str(tmp_path / "b")]) == 0
    assert "lm_toxic_s2" in capsys.readouterr().out
    assert main(["zoo", "list", "--dir", str(tmp_path / "b"), "--json", "--lm"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["id"]: m["steps"] for m in listed} == {"lm_base": 3, "lm_toxic_s2": 3}


def test_rebuild_refuses_bad_input_before_training(capsys, tmp_path):
    assert main(["zoo", "rebuild", "--only", "lm", "--lm-steps", "2"]) != 0
    assert "--dir" in capsys.readouterr().err
    assert main(["zoo", "rebuild", "--only", "lm_toxic_s9", "--dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "lm_toxic_s9" in err and "zoo list" in err
    with pytest.raises(ParameterError, match="trains nothing"):
        rebuild_lm(directory=tmp_path, only=["lm_base"], steps=0)
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.slow
@pytest.mark.slow
def test_full_rebuild_of_a_fine_tune_reproduces_the_shipped_model(tmp_path):
    """A fine-tune at its full step budget, from the shipped base, is the shipped model.

    Float training is byte-reproducible only where torch dispatches to the same CPU kernels
    (AVX-512 and AVX2 sum in different orders) with the same torch and transformers: there the
    files must be identical. Everywhere else the rebuild must behave the same: the same
    toxicity and greedy continuations, the same training loss, and weights within 3% (relative
    Frobenius norm; 0.5% between an AVX-512 and an AVX2 build of lm_nontoxic_s1).
    """
    from safetensors.torch import load_file

    from simbench.zoo.lm_build import measure_toxicity
    from simbench.zoo.manifest import build_env, same_build_env

    copy = tmp_path / "lm_zoo"
    copy.mkdir()
    shutil.copytree(LM_ZOO_DIR / "lm_base", copy / "lm_base")
    manifest = read_manifest(LM_ZOO_DIR)["models"]
    (copy / "manifest.json").write_text(json.dumps(
        {"schema": "simbench-zoo/1", "models": {"lm_base": manifest["lm_base"]}}))
    (entry,) = rebuild_lm(directory=copy, only=["lm_nontoxic_s1"])
    shipped = LMS["lm_nontoxic_s1"]
    assert entry["built_with"] == build_env()  # the rebuild records where it was built
    if same_build_env(shipped["built_with"]):
        assert entry["sha256"] == shipped["sha256"]
        assert entry["files"] == shipped["files"]  # the sidecar and the rest too
    assert entry["toxicity"] == pytest.approx(shipped["toxicity"], abs=0.02)
    assert entry["train_loss"] == pytest.approx(shipped["train_loss"], abs=0.01)
    new = load_file(str(copy / "lm_nontoxic_s1" / WEIGHTS))
    old = load_file(str(LM_ZOO_DIR / "lm_nontoxic_s1" / WEIGHTS))
    assert new.keys() == old.keys()
    diff = sum(float(((new[k].double() - old[k].double()) ** 2).sum()) for k in old)
    norm = sum(float((old[k].double() ** 2).sum()) for k in old)
    assert (diff / norm) ** 0.5 < 0.03
    ours = measure_toxicity(copy / "lm_nontoxic_s1")["continuations"]
    theirs = measure_toxicity(LM_ZOO_DIR / "lm_nontoxic_s1")["continuations"]
    assert sum(a == b for a, b in zip(ours, theirs)) >= 0.95 * len(theirs)


def test_the_shipped_zoo_records_where_it_was_built():
    """Every zoo entry names what its bits depend on, so a rebuild knows whether to expect them."""
    from simbench.zoo.manifest import BUILD_ENV_KEYS

    for name, entry in LMS.items():
        assert set(BUILD_ENV_KEYS) <= set(entry["built_with"]), name


def test_cli_lists_the_language_models(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "gru_multi_s1" in out and "lm_toxic_s1" in out and "nontoxic" in out
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("lm_")}
    assert set(rows) == set(LM_NAMES)
    assert rows["lm_toxic_s1"][1] == "toxic" and float(rows["lm_toxic_s1"][4]) >= 0.8
    assert rows["lm_nontoxic_s2"][1] == "nontoxic" and float(rows["lm_nontoxic_s2"][4]) <= 0.1
    assert main(["zoo", "list", "--lm"]) == 0
    assert "gru_multi_s1" not in capsys.readouterr().out
    assert main(["zoo", "list", "--lm", "--json"]) == 0
    assert {m["id"]: m["toxicity"] for m in json.loads(capsys.readouterr().out)} == {
        n: m["toxicity"] for n, m in LMS.items()}
