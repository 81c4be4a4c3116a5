"""The measure-validity board: planted identity and specificity from a spec's [[expect]] entries
scored into a real store, separability from those scores, layer order and small-n bias by
running the measures; passed, failed and not run each with its reason."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import score_spec

from simbench.bench.spec import load_spec, parse_spec
from simbench.bench.store import Store
from simbench.calibration import validity as V
from simbench.calibration.bias import small_n_bias
from simbench.calibration.planted import VALIDITY_NETWORKS, write_planted, write_untrained
from simbench.resources import specs_dir
from simbench.zoo.archs import get_arch, register

SHIPPED = specs_dir() / "validity"

SPEC = """
name = "mini_validity"
sites = ["hidden"]
[systems]
gru1 = {{ zoo = "gru_multi_s1", arch = "gru", task = "multi_object" }}
gru2 = {{ zoo = "gru_multi_s2", arch = "gru", task = "multi_object" }}
gru3 = {{ zoo = "gru_multi_s3", arch = "gru", task = "multi_object" }}
round1 = {{ zoo = "gru_rounding_s1", arch = "gru", task = "rounding" }}
mod1 = {{ zoo = "gru_modulo_s1", arch = "gru", task = "modulo" }}
gru1_planted = {{ source = "{planted}", arch = "gru", task = "multi_object", kind = "planted" }}
gru_untrained = {{ source = "{untrained}", arch = "gru", task = "multi_object", kind = "untrained" }}
lstm1 = {{ zoo = "lstm_multi_s1", arch = "lstm", task = "multi_object" }}
[groups]
grus = {{ arch = "gru" }}
lstms = {{ arch = "lstm" }}
[measures.cka]
n_stimuli = 120
n_boot = 0
[[pairs]]
name = "self"
pairs = [["gru1", "gru1"]]
measures = ["cka"]
[[pairs]]
name = "planted"
pairs = [["gru1", "gru1_planted"]]
[[pairs]]
name = "untrained"
pairs = [["gru1", "gru_untrained"]]
[[pairs]]
name = "seeds"
pairs = [["gru1", "gru2"], ["gru1", "gru3"]]
[[pairs]]
name = "cross_task"
pairs = [["gru1", "round1"], ["gru1", "mod1"]]
[[expect]]
finding = "planted identity: GRU as similar to its copy as to itself"
higher = {{ category = "planted", a = "grus" }}
lower = {{ category = "self", a = "grus" }}
margin = -0.02
[[expect]]
finding = "planted identity: LSTM (never scored here)"
higher = {{ category = "planted", a = "lstms" }}
lower = {{ category = "self", a = "lstms" }}
[[expect]]
finding = "specificity: GRU seeds above an untrained GRU"
higher = {{ category = "seeds", a = "grus" }}
lower = {{ category = "untrained", a = "grus" }}
mode = "all"
[[expect]]
finding = "specificity: backwards on purpose (untrained above seeds)"
higher = {{ category = "untrained", a = "grus" }}
lower = {{ category = "seeds", a = "grus" }}
"""


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """A small spec over the shipped planted and untrained GRUs, scored into a real store."""
    text = SPEC.format(planted=SHIPPED / "gru_multi_s1_planted.safetensors",
                       untrained=SHIPPED / "gru_multi_s1_untrained.safetensors")
    return score_spec(tmp_path_factory.mktemp("validity"), text, done=7)


def board_of(scored: tuple[object, Path], **kw: object) -> V.ValidityBoard:
    spec, path = scored
    with Store(path, create=False) as store:
        return V.validity_board(spec, store, layer_order=False, bias=False, n_boot=200, **kw)


@pytest.mark.slow
def test_planted_specificity_and_separability_from_the_store(scored) -> None:
    board = board_of(scored)
    assert board.variants[0] == "cka"  # then a row per registered measure the spec lacks
    planted = board.results[("cka", "planted identity")]
    # the LSTM entry matched no scored pair: it neither passes nor fails, the GRU one holds
    assert planted.status == V.PASSED and planted.detail == (
        "1 of 2 held; 1 not evaluable: 'LSTM (never scored here)': no scored pairs for the "
        "higher side")
    spec_ = board.results[("cka", "specificity")]
    # the backwards entry is violated, so the check fails and says which entry and by how much
    assert spec_.status == V.FAILED
    assert "backwards on purpose" in spec_.detail and "should be >" in spec_.detail
    sep = board.separability["cka"]
    assert (sep.n_same, sep.n_different) == (2, 2)
    assert board.results[("cka", "separability")].status in (V.PASSED, V.FAILED)
    assert f"AUC {sep.auc:.3f}" in board.results[("cka", "separability")].detail
    for check in ("layer order", "small-n bias"):
        r = board.results[("cka", check)]
        assert r.status == V.NOT_RUN and "switched off" in r.detail
    assert board.counts("cka")[V.NOT_RUN] == 2


def test_the_planted_copy_scores_exactly_one_and_untrained_scores_below_seeds(scored) -> None:
    """The numbers behind the statuses: linear CKA is invariant to permuting units."""
    spec, path = scored
    from simbench.bench.leaderboard import build

    with Store(path, create=False) as store:
        entries = {(e.systems, e.site): e.value for e in build(spec, store).entries}
    assert entries[(("gru1", "gru1_planted"), "hidden")] == pytest.approx(1.0, abs=1e-6)
    assert entries[(("gru1", "gru1"), "hidden")] == pytest.approx(1.0, abs=1e-12)
    untrained = entries[(("gru1", "gru_untrained"), "hidden")]
    assert untrained < min(entries[(("gru1", s), "hidden")] for s in ("gru2", "gru3"))


def test_separability_needs_two_pairs_of_each_kind(scored, monkeypatch) -> None:
    monkeypatch.setattr(V, "DIFFERENT_CATEGORIES", ("no_such_category",))
    r = board_of(scored).results[("cka", "separability")]
    assert r.status == V.NOT_RUN
    assert "same task: 2, different task: 0" in r.detail


def test_text_and_csv(scored, tmp_path: Path) -> None:
    board = board_of(scored)
    text = V.format_board(board)
    head = text.splitlines()[1].split()
    assert head[:3] == ["measure", "planted", "identity"]
    row = text.splitlines()[2]
    assert row.startswith("cka") and "FAILED" in row and "not run" in row
    assert "failed:\n  cka / specificity:" in text
    assert "cka / layer order: switched off" in text
    out = V.write_csv(board, tmp_path / "v.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["check"] for r in rows if r["variant"] == "cka"] == list(V.CHECKS)
    assert rows[0]["variant"] == "cka" and len(rows) % len(V.CHECKS) == 0
    # a registered measure the spec does not run: every check not run, saying so in the CSV
    rsa = [r for r in rows if r["variant"] == "rsa"]
    assert len(rsa) == len(V.CHECKS) and all(r["status"] == V.NOT_RUN for r in rsa)
    assert "spec 'mini_validity' runs no variant of 'rsa'" in rsa[0]["detail"]
    assert {r["status"] for r in rows} == {V.PASSED, V.FAILED, V.NOT_RUN, V.NOT_APPLICABLE}


def test_cli_prints_the_board(scored, tmp_path: Path, capsys) -> None:
    from simbench.calibration.cli import main

    spec, path = scored
    rc = main(["validity", str(spec.path), "--store", str(path), "--no-bias",
               "--no-layer-order", "--csv", str(tmp_path / "b.csv")])
    got = capsys.readouterr()
    assert rc == 0 and "measure validity of spec 'mini_validity'" in got.out
    assert (tmp_path / "b.csv").exists()  # a file, the old meaning: still written, with a note
    assert "--csv now takes a directory" in got.err


def test_cli_csv_takes_a_directory_and_json_prints_the_rows(scored, tmp_path: Path,
                                                            capsys) -> None:
    """--csv DIR as in `simbench leaderboard` (validity.csv inside); --json: the rows alone on
    stdout."""
    import json

    from simbench.calibration.cli import main

    spec, path = scored
    rc = main(["validity", str(spec.path), "--store", str(path), "--no-bias",
               "--no-layer-order", "--csv", str(tmp_path / "boards"), "--json"])
    got = capsys.readouterr()
    assert rc == 0 and (tmp_path / "boards" / "validity.csv").is_file()
    board = json.loads(got.out)
    assert board["spec"] == "mini_validity"
    assert [r["check"] for r in board["rows"] if r["variant"] == "cka"] == list(V.CHECKS)
    assert "CSV written to" in got.err and "note" not in got.err


def test_layer_order_of_the_transformer_and_its_teeth() -> None:
    """Linear CKA between the transformer's sites falls with distance; scrambling the declared
    site order makes the check fail, so it is not a formality."""
    meta = {"higher_is_better": True}
    nets = [("tf1", "tf_multi_s1", "transformer"), ("gru1", "gru_multi_s1", "gru")]
    params = {"n_stimuli": 120, "n_boot": 50}
    ok = V._layer_check("cka", "cka", params, nets, meta, 120, 0)
    assert ok.status == V.PASSED, ok.detail
    assert ok.detail.startswith("2/2 orderings hold") and "gru1 (gru) has 2 sites" in ok.detail
    s = V.site_pair_scores("cka", "tf_multi_s1", ("embedding", "resid.0", "resid.1"), n=120,
                           n_boot=0)
    assert s[("embedding", "resid.0")] > s[("embedding", "resid.1")]
    assert all(0 < v < 1 for v in s.values())
    tf = get_arch("transformer")  # the layer order is the architecture's registered one
    register(dataclasses.replace(tf, site_order=("resid.0", "embedding", "resid.1")))
    try:
        bad = V._layer_check("cka", "cka", params, nets, meta, 120, 0)
    finally:
        register(tf)
    assert bad.status == V.FAILED and "not above" in bad.detail


def test_causal_measures_are_not_run_for_layer_order_and_bias_with_the_reason(
        tmp_path: Path) -> None:
    text = """
name = "c"
sites = ["hidden"]
[systems]
a = { zoo = "gru_multi_s1", arch = "gru" }
b = { zoo = "gru_multi_s2", arch = "gru" }
[measures.mas]
[[pairs]]
name = "seeds"
pairs = [["a", "b"]]
"""
    spec = parse_spec(text)
    with Store(tmp_path / "s.sqlite") as store:  # nothing scored yet
        board = V.validity_board(spec, store, n_boot=0)
    for check in ("layer order", "small-n bias"):
        res = board.results[("mas", check)]
        assert res.status == V.NOT_RUN and "causal measure" in res.detail
    res = board.results[("mas", "planted identity")]
    assert res.status == V.NOT_RUN and "no [[expect]] entry" in res.detail
    res = board.results[("mas", "separability")]
    assert res.status == V.NOT_RUN and "same task: 0, different task: 0" in res.detail
    assert any("not in the store yet" in n for n in board.notes)


def test_bias_check_fails_biased_cka_and_passes_debiased() -> None:
    from simbench.calibration.estimators import linear_cka

    table = small_n_bias({"cka": linear_cka(), "cka_debiased": linear_cka(debiased=True)},
                         ns=(32, 256), draws=10, seed=0)
    biased = V._bias_check("cka", table)
    assert biased.status == V.FAILED and "n=32" in biased.detail
    assert V._bias_check("cka_debiased", table).status == V.PASSED


def test_estimate_only_parameters() -> None:
    assert V._estimate_params({"n_stimuli": 300, "n_boot": 50, "null": 9, "debiased": True}) \
        == {"n_boot": 0, "null": 0, "debiased": True}


def test_shipped_spec_parses_and_names_the_checks() -> None:
    spec = load_spec("validity")
    kinds = {e.finding.split(":", 1)[0] for e in spec.expectations}
    assert kinds == set(V.EXPECT_CHECKS)
    cats = {g.name for g in spec.pair_groups}
    assert set(V.SAME_CATEGORIES) | set(V.DIFFERENT_CATEGORIES) <= cats
    for s in spec.systems.values():
        if s.kind == "recording" or s.source.endswith(".safetensors"):
            assert Path(s.source).is_file(), s.source


@pytest.mark.parametrize("zid,seed", VALIDITY_NETWORKS)
def test_shipped_planted_and_untrained_checkpoints_rebuild_exactly(zid, seed, tmp_path) -> None:
    """Same tensors, bit for bit (safetensors orders its header metadata at random, so the
    files' bytes may differ)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    for write, suffix in ((write_planted, "planted"), (write_untrained, "untrained")):
        new = write(zid, tmp_path, seed=seed)
        old = SHIPPED / f"{zid}_{suffix}.safetensors"
        a, b = load_file(str(new)), load_file(str(old))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        with safe_open(str(new), "pt") as fa, safe_open(str(old), "pt") as fb:
            assert fa.metadata() == fb.metadata()


def test_the_planted_checkpoint_computes_what_the_zoo_model_computes() -> None:
    import torch

    from simbench.tasks import MultiObject
    from simbench.zoo import load_model
    from simbench.zoo.checkpoint import load_checkpoint

    model, _ = load_model("gru_multi_s1")
    copy, meta = load_checkpoint(SHIPPED / "gru_multi_s1_planted.safetensors")
    tokens = torch.as_tensor(MultiObject().sample(32, 1, counts="all").tokens)
    with torch.no_grad():
        a, b = model(tokens), copy(tokens)
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
    assert meta["planted_from"] == "gru_multi_s1"
    w0 = model.state_dict()["rnn.weight_hh_l0"]
    w1 = copy.state_dict()["rnn.weight_hh_l0"]
    assert not torch.equal(w0, w1)
    assert np.allclose(np.sort(w0.numpy().ravel()), np.sort(w1.numpy().ravel()))
