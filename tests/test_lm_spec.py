"""Language models in the harness: zoo LM names as systems, content identities, the spec's
``prompts``/``new_tokens``, the ``alike`` expectation, and a spec run end to end on the zoo."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from simbench.api import resolve_system
from simbench.bench.jobs import Job, expand, prepare, system_identity
from simbench.bench.leaderboard import Entry, build, validity
from simbench.bench.spec import load_spec, parse_spec
from simbench.bench.store import Store
from simbench.cli import main
from simbench.errors import SpecError
from simbench.lm.load import model_dir_digest
from simbench.zoo import lm_model_dir
from simbench.zoo.lm_corpus import prompts as zoo_prompts

ROOT = Path(__file__).resolve().parents[1]
FAST_MAS = """[measures.mas]
k = 8
max_steps = 4
eval_every = 2
n_train = 32
n_val = 8
n_test = 16
batch_size = 8
progress = false
"""


def _spec(extra: str = "", *, prompts: str = 'prompts = { generator = "lm_zoo", n = 12, seed = 0 }',
          systems: str = "", measures: str = FAST_MAS + "[measures.cka]\n[measures.rsa]\n") -> str:
    return f"""name = "lmtest"
sites = ["transformer.h.2"]
{prompts}
new_tokens = 4

[systems]
t1 = {{ zoo = "lm_toxic_s1", group = "toxic" }}
t2 = {{ zoo = "lm_toxic_s2", group = "toxic" }}
n1 = {{ zoo = "lm_nontoxic_s1", group = "nontoxic" }}
{systems}
{measures}
[[pairs]]
name = "toxic_toxic"
within = {{ group = "toxic" }}

[[pairs]]
name = "toxic_nontoxic"
between = [{{ group = "toxic" }}, {{ group = "nontoxic" }}]
{extra}"""


def _write(root: Path, text: str, name: str = "spec.toml") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(text)
    return path


# ---- zoo LM names as systems ---------------------------------------------------------------
@pytest.mark.slow
def test_a_zoo_lm_name_resolves_to_its_checked_directory() -> None:
    system = resolve_system("lm_toxic_s1")
    assert getattr(system, "is_language_model", False)
    assert system.system_id == "lm_toxic_s1"
    assert system.path == lm_model_dir("lm_toxic_s1")
    assert "transformer.h.2" in system.sites


def test_the_cli_scores_zoo_lm_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "prompts.txt"
    file.write_text("\n".join(zoo_prompts(8, 1)) + "\n")
    assert main(["score", "cka", "lm_toxic_s1", "lm_nontoxic_s1", "--site", "transformer.h.2",
                 "--prompts", str(file), "--json"]) == 0
    out = capsys.readouterr().out
    import json

    score = json.loads(out)
    assert score["systems"] == ["lm_toxic_s1", "lm_nontoxic_s1"]
    assert 0.5 < score["value"] <= 1.0



def test_the_cli_records_zoo_lm_names(tmp_path: Path) -> None:
    """`simbench record lm_toxic_s1 --prompts FILE` records the zoo model under its name."""
    from simbench.recording import load_recording

    file = tmp_path / "prompts.txt"
    file.write_text("\n".join(zoo_prompts(5, 2)) + "\n")
    out = tmp_path / "toxic.nc"
    assert main(["record", "lm_toxic_s1", "--prompts", str(file), "--out", str(out),
                 "--sites", "transformer.h.2"]) == 0
    rec = load_recording(out)
    assert rec.system_id == "lm_toxic_s1"
    ds = rec.site("transformer.h.2")
    assert ds.sizes["stimulus"] == 5 and ds.sizes["unit"] == 64

# ---- identities ----------------------------------------------------------------------------
def test_model_directories_and_zoo_lm_names_are_identified_by_content(tmp_path: Path) -> None:
    """A directory is hashed like a checkpoint (a copy keeps its identity, a changed byte does
    not), and a zoo LM name is its directory's content."""
    src = lm_model_dir("lm_toxic_s1")
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    digest = model_dir_digest(src)
    assert system_identity(str(copy)) == f"lm:sha256:{digest}"
    assert system_identity("lm_toxic_s1") == f"lm:sha256:{digest}"
    assert system_identity("lm_toxic_s2") != f"lm:sha256:{digest}"
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"n_head": 4', '"n_head":  4'))
    assert system_identity(str(copy)) != f"lm:sha256:{digest}"
    assert system_identity("gru_multi_s1") == "zoo:gru_multi_s1"  # unchanged


def test_a_model_directory_in_a_spec_runs_like_a_zoo_name(tmp_path: Path) -> None:
    """``source = DIR`` and ``model = DIR`` name a language model's directory (relative to the
    spec); its jobs have the same keys as the zoo name's, whose content it has."""
    shutil.copytree(lm_model_dir("lm_toxic_s2"), tmp_path / "mine")
    by_name = expand(load_spec(_write(tmp_path / "a", _spec())))
    text = _spec().replace('{ zoo = "lm_toxic_s2"', '{ source = "../mine"')
    by_dir = prepare(load_spec(_write(tmp_path / "a", text, "dir.toml")))
    assert {j.key for j in by_dir} == {j.key for j in by_name}
    spec = load_spec(_write(tmp_path / "a", text.replace("source =", "model ="), "m.toml"))
    assert spec.systems["t2"].kind == "model"
    assert spec.systems["t2"].source == str((tmp_path / "mine").resolve())


# ---- prompts and new_tokens ----------------------------------------------------------------
def test_prompts_and_new_tokens_reach_the_job_and_its_key(tmp_path: Path) -> None:
    jobs = expand(load_spec(_write(tmp_path, _spec())))
    assert {j.new_tokens for j in jobs} == {4}
    assert {j.prompts for j in jobs} == {tuple(zoo_prompts(12, 0))}
    assert {j.prompts_origin for j in jobs} == {"lm_zoo(n=12, seed=0, held_out=true)"}
    # the same prompts from a file (relative to the spec) or inline: the same keys
    (tmp_path / "p.txt").write_text("\n".join(zoo_prompts(12, 0)) + "\n")
    from_file = expand(load_spec(_write(tmp_path, _spec(prompts='prompts = "p.txt"'), "f.toml")))
    assert [j.key for j in from_file] == [j.key for j in jobs]
    assert from_file[0].prompts_origin == f"file {tmp_path / 'p.txt'}"
    listed = "prompts = [" + ", ".join(f'"{p}"' for p in zoo_prompts(12, 0)) + "]"
    assert [j.key for j in expand(load_spec(_write(tmp_path, _spec(prompts=listed),
                                                     "l.toml")))] == [j.key for j in jobs]
    # other prompts, another length: other keys
    other = expand(load_spec(_write(tmp_path, _spec(prompts='prompts = { generator = "lm_zoo", '
                                                     'n = 12, seed = 1 }'), "o.toml")))
    assert not {j.key for j in other} & {j.key for j in jobs}
    longer = expand(load_spec(_write(tmp_path, _spec().replace("new_tokens = 4",
                                                                 "new_tokens = 5"), "n.toml")))
    assert not {j.key for j in longer} & {j.key for j in jobs}


def test_a_measure_may_set_its_own_prompts(tmp_path: Path) -> None:
    own = FAST_MAS + 'prompts = { generator = "lm_zoo", n = 9, seed = 3 }\nnew_tokens = 2\n'
    jobs = expand(load_spec(_write(tmp_path, _spec(measures=own + "[measures.cka]\n"))))
    mas = [j for j in jobs if j.measure == "mas"]
    cka = [j for j in jobs if j.measure == "cka"]
    assert {(len(j.prompts), j.new_tokens) for j in mas} == {(9, 2)}
    assert {(len(j.prompts), j.new_tokens) for j in cka} == {(12, 4)}


def test_prompts_do_not_touch_jobs_without_a_language_model(tmp_path: Path) -> None:
    """Top-level prompts apply to language models only: a numeric spec's keys stay the same."""
    text = ('name = "n"\nsites = ["hidden"]\n[systems]\na = "gru_multi_s1"\nb = "gru_multi_s2"\n'
            '[measures.cka]\n[[pairs]]\nname = "s"\nwithin = "*"\n')
    plain = expand(load_spec(_write(tmp_path, text)))
    with_prompts = expand(load_spec(_write(tmp_path, 'prompts = ["a b", "c d", "e f"]\n'
                                           "new_tokens = 3\n" + text, "p.toml")))
    assert [j.key for j in with_prompts] == [j.key for j in plain]
    assert with_prompts[0].prompts is None and with_prompts[0].lm_params() == {}


@pytest.mark.parametrize(("line", "field", "words"), [
    ('prompts = "missing.txt"', "prompts", "no prompts file 'missing.txt'"),
    ('prompts = "empty.txt"', "prompts", "holds no prompt"),
    ('prompts = { generator = "lm_zo", n = 5 }', "prompts.generator", "did you mean 'lm_zoo'"),
    ('prompts = { generator = "lm_zoo" }', "prompts.n", "needs n = ..."),
    ('prompts = { generator = "lm_zoo", n = 2 }', "prompts.n", "at least 3"),
    ('prompts = { generator = "lm_zoo", n = 5, sed = 1 }', "prompts.sed", "did you mean 'seed'"),
    ('prompts = { generator = "lm_zoo", n = true }', "prompts.n", "must be an integer"),
    ('prompts = ["a", ""]', "prompts", "non-empty strings"),
    ("prompts = 3", "prompts", "a file path, a list or a generator"),
])
def test_bad_prompts_name_the_spec_line_and_field(tmp_path: Path, line: str, field: str,
                                                  words: str) -> None:
    (tmp_path / "empty.txt").write_text("\n  \n")
    text = _spec(prompts=line)
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, text))
    err = info.value
    assert words in str(err), str(err)
    assert err.field == field
    assert err.file == f"{tmp_path / 'spec.toml'}:{text.splitlines().index(line) + 1}"


def test_bad_new_tokens_and_missing_prompts_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="new_tokens must be an integer >= 1") as info:
        load_spec(_write(tmp_path, _spec().replace("new_tokens = 4", "new_tokens = true")))
    assert info.value.field == "new_tokens"
    with pytest.raises(SpecError) as info:
        prepare(load_spec(_write(tmp_path, _spec(prompts=""), "none.toml")))
    assert "is a language model and measure 'mas' has no prompts" in info.value.message
    assert info.value.field == "measures.mas" and "generator" in (info.value.fix or "")
    with pytest.raises(SpecError, match="is a directory") as info:
        load_spec(_write(tmp_path, _spec(systems=f'd = {{ recording = '
                                         f'"{lm_model_dir("lm_base")}" }}'), "rec.toml"))
    assert "model = DIR" in (info.value.fix or "")


# ---- the alike expectation -----------------------------------------------------------------
def _entries(values: dict[tuple[str, str], float]) -> list[Entry]:
    cats = {("t1", "t2"): "toxic_toxic", ("t1", "n1"): "toxic_nontoxic",
            ("t2", "n1"): "toxic_nontoxic"}
    return [Entry("mas", "mas", "mas", pair, "transformer.h.2", (cats[pair],), v, None, 1)
            for pair, v in values.items()]


META = {"mas": {"family": "causal", "higher_is_better": True, "range": (0.0, 1.0),
                "symmetric": True}}


@pytest.mark.parametrize(("values", "mode", "status"), [
    ({("t1", "t2"): 0.40, ("t1", "n1"): 0.36, ("t2", "n1"): 0.38}, "mean", "ok"),
    ({("t1", "t2"): 0.40, ("t1", "n1"): 0.30, ("t2", "n1"): 0.32}, "mean", "violated"),
    ({("t1", "t2"): 0.40, ("t1", "n1"): 0.44, ("t2", "n1"): 0.30}, "mean", "ok"),
    ({("t1", "t2"): 0.40, ("t1", "n1"): 0.44, ("t2", "n1"): 0.30}, "all", "violated"),
])
def test_alike_holds_when_the_selections_differ_by_at_most_the_margin(
        tmp_path: Path, values: dict, mode: str, status: str) -> None:
    extra = (f'[[expect]]\nfinding = "same"\nalike = ["toxic_toxic", "toxic_nontoxic"]\n'
             f'margin = 0.05\nmode = "{mode}"\n')
    spec = parse_spec(_spec(extra), path=tmp_path / "s.toml", trusted=False)
    (check,) = validity(spec, _entries(values), META)[0].checks
    assert check.status == status, check.detail
    if mode == "mean":
        assert "toxic_toxic 0.400 vs toxic_nontoxic" in check.detail


@pytest.mark.parametrize(("body", "words"), [
    ('alike = ["toxic_toxic", "toxic_nontoxic"]', "needs margin = X > 0"),
    ('alike = ["toxic_toxic", "toxic_nontoxic"]\nmargin = 0', "needs margin = X > 0"),
    ('alike = ["toxic_toxic"]\nmargin = 0.1', "two pair selectors"),
    ('alike = ["toxic_toxic", "nope"]\nmargin = 0.1', "unknown pair category 'nope'"),
    ('alike = ["toxic_toxic", "toxic_nontoxic"]\nhigher = "toxic_toxic"\nlower = "x"\n'
     "margin = 0.1", "an ordering"),
])
def test_bad_alike_entries_are_refused(tmp_path: Path, body: str, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        parse_spec(_spec(f'[[expect]]\nfinding = "f"\n{body}\n'), path=tmp_path / "s.toml",
                   trusted=False)


# ---- the spec end to end -------------------------------------------------------------------
EXPECT = """
[[expect]]
finding = "toxic-toxic above toxic-nontoxic"
higher = "toxic_toxic"
lower = "toxic_nontoxic"

[[expect]]
finding = "toxic-toxic alike toxic-nontoxic"
alike = ["toxic_toxic", "toxic_nontoxic"]
margin = 0.5
"""


@pytest.mark.slow
def test_a_language_model_spec_runs_end_to_end(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """Three zoo LMs, MAS with a step cap, CKA and RSA: every job is stored with its prompts
    and length, a rerun computes nothing, and the boards evaluate the expectations."""
    path = _write(tmp_path, _spec(EXPECT))
    store_path = tmp_path / "r.sqlite"
    assert main(["bench", "run", str(path), "--store", str(store_path), "--no-progress"]) == 0
    assert "ran 9 (9 done, 0 failed)" in capsys.readouterr().out
    with sqlite3.connect(store_path) as db:
        rows = db.execute("SELECT measure, system_a, system_b, status, params, value, score "
                          "FROM results").fetchall()
    assert len(rows) == 9 and {r[3] for r in rows} == {"done"}
    import json

    spec = load_spec(path)
    prompts_id = spec.prompts.identity
    for measure, _a, _b, _status, params, value, score in rows:
        params = json.loads(params)
        assert params["prompts"] == prompts_id and params["new_tokens"] == 4
        attrs = json.loads(score)["attrs"]
        assert attrs["prompts"] == "lm_zoo(n=12, seed=0, held_out=true)"
        if measure == "mas":
            assert attrs["n_prompts"] == 12 and attrs["new_tokens"] == 4
            assert attrs["train"]["steps"] <= 4
            assert 0.0 <= value <= 1.0
        elif measure == "cka":
            assert 0.5 < value <= 1.0  # fine-tunes of one base, on neutral prompts
    assert main(["bench", "run", str(path), "--store", str(store_path), "--no-progress"]) == 0
    assert "9 jobs: 9 already in the store, ran 0" in capsys.readouterr().out
    with Store(store_path, create=False) as store:
        board = build(load_spec(path, trusted=False), store)
    assert (board.done, board.failed, board.total) == (9, 0, 9)
    checks = {(row.variant, c.finding): c for row in board.validity for c in row.checks}
    assert len(checks) == 6 and all(c.status in ("ok", "violated") for c in checks.values())
    cka = {e.systems: e.value for e in board.entries if e.measure == "cka"}
    want = "ok" if cka[("t1", "t2")] > (cka[("t1", "n1")] + cka[("t2", "n1")]) / 2 else "violated"
    assert checks[("cka", "toxic-toxic above toxic-nontoxic")].status == want
    assert checks[("cka", "toxic-toxic alike toxic-nontoxic")].status == "ok"  # margin 0.5


def test_a_board_tells_apart_jobs_that_differ_only_in_prompts(tmp_path: Path) -> None:
    """A stored row records its prompts, so a spec with other prompts matches none of it."""
    path = _write(tmp_path, _spec(measures="[measures.cka]\n"))
    store_path = tmp_path / "r.sqlite"
    assert main(["bench", "run", str(path), "--store", str(store_path), "--no-progress"]) == 0
    other = _write(tmp_path, _spec(measures="[measures.cka]\n",
                                   prompts='prompts = { generator = "lm_zoo", n = 12, seed = 9 }'),
                   "other.toml")
    with Store(store_path, create=False) as store:
        assert build(load_spec(path, trusted=False), store).done == 3
        assert build(load_spec(other, trusted=False), store).done == 0


def test_job_lm_params_are_only_what_is_set() -> None:
    job = Job(key="k", label="m", measure="m", params={}, swept={}, systems=("a",),
              sources=("a",), site="s", task=None, seed=0, code_version="v")
    assert job.lm_params() == {}
    job.prompts_id, job.new_tokens = "sha256:ab", 3
    assert job.lm_params() == {"prompts": "sha256:ab", "new_tokens": 3}


# ---- the shipped run -----------------------------------------------------------------------
def test_the_shipped_lm_toxicity_run_matches_the_spec(capsys: pytest.CaptureFixture) -> None:
    """benchmarks/results/lm_toxicity.sqlite is the measured run of lm_toxicity.toml: CKA and
    RSA on every pair, MAS at the language-model protocol (embedding, token IIA, each score
    with its within-model ceiling) on the pairs the shipped run reached (see the README), and
    `simbench leaderboard lm_toxicity` finds it by the spec's name."""
    import json

    spec = load_spec(ROOT / "benchmarks" / "specs" / "lm_toxicity.toml", trusted=False)
    with Store(ROOT / "benchmarks" / "results" / "lm_toxicity.sqlite", create=False) as store:
        board = build(spec, store)
        rows = [r for r in store.rows(status="done") if r["measure"] == "mas"
                and r["site"] == "embedding"]
    # the counts follow the spec (a partial run and a complete rerun both pass): every pair
    # gets CKA, RSA and MAS once per MAS seed
    per_measure: dict[str, int] = {}
    for job in expand(spec):
        per_measure[job.measure] = per_measure.get(job.measure, 0) + 1
    pairs = per_measure["cka"]
    assert pairs == 27  # 3 within-group pairings of 3 models, 2 between-group ones of 3 x 3
    assert per_measure == {"cka": pairs, "rsa": pairs,
                           "mas": pairs * len(spec.measures["mas"].seeds or spec.seeds)}
    assert board.total == sum(per_measure.values()) and board.failed == 0
    assert 0 < board.done <= board.total
    assert len(board.validity) == 3 and all(len(r.checks) == 5 for r in board.validity)
    by = {}
    for e in board.entries:
        by.setdefault(e.measure, []).append(e)
    assert len(by["cka"]) == len(by["rsa"]) == pairs  # every pair
    mas = by["mas"]
    assert len(mas) >= 5 and {c for e in mas for c in e.categories} >= {
        "toxic_toxic", "nontoxic_nontoxic", "control_control", "toxic_nontoxic",
        "toxic_control"}
    assert all(e.site == "embedding" and e.headline == "token" for e in mas)
    # only lm_toxic_s3's whole-continuation ceiling dips under 0.8, and in a minority of cells
    warned = [e for e in mas if e.warning]
    assert all("lm_toxic_s3" in e.warning for e in warned) and len(warned) <= len(mas) // 3
    for r in rows:  # every MAS score carries the ceiling, and warns exactly when it is low
        attrs = json.loads(r["score"])["attrs"]
        low = min(v["trial"] for v in attrs["ceiling"]["within"].values()) < 0.8
        assert attrs["ceiling"]["ok"] is not low and ("warning" in attrs) is low
        assert attrs["ceiling"]["within_token"] >= 0.95
        assert 0.0 <= attrs["trial_iia"] <= r["value"] <= 1.0  # token >= whole continuation
    assert main(["leaderboard", "lm_toxicity", "--board", "matrices"]) == 0
    out = capsys.readouterr().out
    assert "spec 'lm_toxicity':" in out and "values are token IIA" in out
