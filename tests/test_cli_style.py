"""One command-line style (issue 23): kebab-case flags with snake_case still accepted, on/off
measure parameters as switches, ``score MEASURE --help``, ``--json`` where results print, the
renamed ``check-recording``, the same meaning of ``--csv/--png`` everywhere, and every
``simbench ...`` line of the docs parsing with the real parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simbench.cli import main
from simbench.cli.core import parse_measure_args, render_score
from simbench.errors import ParameterError
from simbench.registry import get_registry
from simbench.result import Score

ROOT = Path(__file__).resolve().parents[1]


# ---- measure parameters ------------------------------------------------------------------------
def test_kebab_and_snake_case_name_the_same_parameter(capsys: pytest.CaptureFixture) -> None:
    mas = get_registry().measure("mas")
    kebab = parse_measure_args(mas, ["--max-steps", "50", "--n-train", "16", "--k=4"])
    snake = parse_measure_args(mas, ["--max_steps", "50", "--n_train=16", "--k", "4"])
    assert kebab == snake == {"max_steps": "50", "n_train": "16", "k": "4"}
    assert capsys.readouterr().err == ""  # snake_case is accepted silently


def test_on_off_parameters_are_switches(capsys: pytest.CaptureFixture) -> None:
    cka = get_registry().measure("cka")
    assert parse_measure_args(cka, ["--debiased"]) == {"debiased": "true"}
    assert parse_measure_args(cka, ["--no-debiased", "--kernel", "rbf"]) == {
        "debiased": "false", "kernel": "rbf"}
    assert parse_measure_args(cka, ["--debiased", "--n-boot", "5"]) == {
        "debiased": "true", "n_boot": "5"}
    assert capsys.readouterr().err == ""
    # a sweep of both values is still a value, without a note
    assert parse_measure_args(cka, ["--debiased", "true,false"]) == {"debiased": "true,false"}
    assert capsys.readouterr().err == ""
    # the old form keeps working for one release, with a note naming the new one
    assert parse_measure_args(cka, ["--debiased", "false"]) == {"debiased": "false"}
    err = capsys.readouterr().err
    assert "deprecated" in err and "--no-debiased" in err
    with pytest.raises(ParameterError, match="takes no value"):
        parse_measure_args(cka, ["--no-debiased=true"])


def test_an_unknown_parameter_is_named_in_kebab_case_with_the_closest() -> None:
    cka = get_registry().measure("cka")
    with pytest.raises(ParameterError) as err:
        parse_measure_args(cka, ["--n-bot", "5"])
    assert "--n-bot" in str(err.value) and "did you mean '--n-boot'" in err.value.fix
    with pytest.raises(ParameterError, match="needs a value"):
        parse_measure_args(cka, ["--n-boot"])


def test_score_measure_help_lists_its_parameters(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["score", "clmas", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "parameters of clmas" in out
    assert re.search(r"--eps FLOAT\n\s+.*\(default 0\.89", out)
    assert "--n-boot INT" in out and "--null INT" in out
    assert "--within/--no-within" in out and "(default on" in out
    assert "--control" not in out  # not a clmas parameter
    with pytest.raises(SystemExit):
        main(["score", "--help"])  # without a measure: the command's help alone
    assert "parameters of" not in capsys.readouterr().out


def test_measures_lists_kebab_case_switches(capsys: pytest.CaptureFixture) -> None:
    assert main(["measures"]) == 0
    out = capsys.readouterr().out
    assert "--debiased/--no-debiased" in out and "--n-boot (int" in out
    assert "--n_boot" not in out


# ---- printouts -------------------------------------------------------------------------------
def test_a_null_prints_its_p_value_in_the_terminal() -> None:
    score = Score(measure="cka", value=0.61, systems=("a", "b"), site="hidden", n_samples=100,
                  null_mean=0.12, null_sd=0.03, p_value=0.001, null_size=999,
                  null_method="999 uniform random permutations of whole stimuli")
    text = render_score(score)
    assert re.search(r"^  p = 0\.001\d* \(null 0\.12\d* ± 0\.03\d*, 999 permutations\)", text,
                     re.M), text
    assert "p = " not in render_score(Score(measure="cka", value=0.6, systems=("a", "b"),
                                            n_samples=10))


def test_a_low_within_model_iia_gets_a_hint() -> None:
    low = Score(measure="mas", value=0.3, systems=("a", "b"), n_samples=10,
                attrs={"within_iia": 0.535})
    text = render_score(low)
    assert "low ceiling: within-model IIA is 0.535" in text
    assert "causal model may miss what the network stores" in text
    high = Score(measure="mas", value=0.9, systems=("a", "b"), n_samples=10,
                 attrs={"within_iia": 0.97})
    assert "low ceiling" not in render_score(high)
    control = Score(measure="mas", value=0.1, systems=("a", "b"), n_samples=10,
                    attrs={"within_iia": 0.2, "control": True})
    assert "low ceiling" not in render_score(control)


def test_device_help_names_cuda_n(capsys: pytest.CaptureFixture) -> None:
    for argv in (["score", "--help"], ["bench", "run", "--help"], ["demo", "--help"],
                 ["record", "--help"], ["validity", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "cuda:N" in " ".join(capsys.readouterr().out.split()), argv


# ---- check-recording (was validate) and --json --------------------------------------------------
@pytest.fixture(scope="module")
def gru_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "gru.nc"
    assert main(["record", "gru_multi_s1", "--out", str(out), "--n", "40", "--sites",
                 "hidden"]) == 0
    return out


def test_check_recording_and_its_old_name(gru_rec: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["check-recording", str(gru_rec)]) == 0
    got = capsys.readouterr()
    assert f"{gru_rec}: ok" in got.out and got.err == ""
    assert main(["validate", str(gru_rec), "--json"]) == 0
    got = capsys.readouterr()
    assert "now `simbench check-recording`" in got.err
    (entry,) = json.loads(got.out)
    assert entry["ok"] is True and entry["problems"] == [] and entry["file"] == str(gru_rec)
    bad = gru_rec.with_name("bad.nc")
    bad.write_text("not a recording")
    assert main(["check-recording", str(bad), "--json"]) == 1
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["ok"] is False and entry["problems"]
    # `validate` is not listed beside `validity` any more
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert "check-recording" in listed and not re.search(r"^\s+validate\s", listed, re.M)


def test_leaderboard_and_status_print_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SIMBENCH_STORE", raising=False)
    assert main(["leaderboard", "lm_toxicity", "--json", "--csv", "boards"]) == 0
    got = capsys.readouterr()
    board = json.loads(got.out)  # stdout is the JSON alone
    from simbench.bench.jobs import expand
    from simbench.bench.spec import load_spec

    spec = load_spec(ROOT / "benchmarks" / "specs" / "lm_toxicity.toml", trusted=False)
    # every pair gets CKA, RSA and MAS once per MAS seed (a partial run and a rerun alike)
    assert board["spec"] == "lm_toxicity" and board["jobs"]["total"] == len(expand(spec))
    assert 0 < board["jobs"]["done"] <= board["jobs"]["total"]
    assert {m["variant"] for m in board["matrices"]} == {"cka", "rsa", "mas"}
    assert all(len(m["values"]) == len(m["systems"]) for m in board["matrices"])
    assert "CSV files written to boards" in got.err
    # matrix CSVs: an empty cell where there is no score (the diagonal), never the text nan
    matrix = (tmp_path / "boards" / "matrix_cka_transformer.h.2.csv").read_text()
    assert "nan" not in matrix
    rows = [line.split(",") for line in matrix.splitlines()[1:]]
    assert all(row[i + 1] == "" for i, row in enumerate(rows))
    assert main(["bench", "status", "lm_toxicity", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    # the counts are for the jobs of the spec last run into the store (stale where this code
    # differs from the code that ran): per label, its jobs in the stored job list, and as many
    # done or stale as the store holds finished results of them
    from simbench.bench.runner import label_text
    from simbench.bench.store import Store

    with Store(ROOT / "benchmarks" / "results" / "lm_toxicity.sqlite", create=False) as store:
        jobs = store.spec_jobs("lm_toxicity")
        assert jobs
        finished = {r["key"] for r in store.rows({j["key"] for j in jobs}, status="done")}
    want: dict[str, list[int]] = {}
    for job in jobs:
        counts = want.setdefault(label_text(job["label"], job["measure"]), [0, 0])
        counts[0] += 1
        counts[1] += job["key"] in finished
    got = {p["label"]: [p["jobs"], p["done"] + p["stale"]] for p in status["labels"]}
    assert got == want and sum(n for n, _ in got.values()) > 0
    assert all(p["done"] + p["stale"] + p["failed"] + p["to_run"] == p["jobs"]
               for p in status["labels"])
    assert status["store"].endswith("lm_toxicity.sqlite")


# ---- the docs ----------------------------------------------------------------------------------
def test_shipped_specs_are_self_contained() -> None:
    """The specs installed with simbench cite nothing a user does not have."""
    for spec in sorted((ROOT / "benchmarks" / "specs").glob("*.toml")):
        assert "METHOD.md" not in spec.read_text(), spec.name


def test_the_tasks_help_names_every_built_in_task(capsys: pytest.CaptureFixture) -> None:
    """The description of `simbench tasks` names each built-in task, continuation included
    (so no count in it goes stale)."""
    from simbench.cli.tasks import BUILT_IN

    registry = get_registry()
    built_in = {n for n in registry.tasks if registry.task_plugin_of(n).name == "tasks"}
    assert set(BUILT_IN.split(", ")) | {"continuation"} == built_in
    with pytest.raises(SystemExit):
        main(["tasks", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(name in out for name in built_in)
