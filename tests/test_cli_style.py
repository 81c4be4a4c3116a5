"""One command-line style (issue 23): kebab-case flags with snake_case still accepted, on/off
measure parameters as switches, ``score MEASURE --help``, ``--json`` where results print, the
renamed ``check-recording``, the same meaning of ``--csv/--png`` everywhere, and every
``simbench ...`` line of the docs parsing with the real parser."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from simbench.cli import build_parser, main
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
    assert board["spec"] == "lm_toxicity" and board["jobs"]["total"] == 45
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
    # done, or stale when this code differs from the code that computed the shipped run
    assert {p["label"]: (p["jobs"], p["done"] + p["stale"]) for p in status["labels"]} == {
        m: (15, 15) for m in ("mas", "cka", "rsa")}
    assert status["store"].endswith("lm_toxicity.sqlite")


# ---- the docs ----------------------------------------------------------------------------------
def doc_files() -> list[Path]:
    """README.md and every page under docs/ (when there is one)."""
    docs = ROOT / "docs"
    return [ROOT / "README.md", *(sorted(docs.rglob("*.md")) if docs.is_dir() else [])]


def doc_commands(path: Path) -> list[tuple[int, str]]:
    """(line, command) of every ``simbench ...`` line in a fenced code block of ``path``;
    synopsis lines (``[OPTIONAL]``, ``X...``, ``A|B``) are left out, comments dropped."""
    out = []
    fenced = False
    pending = ""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        text = pending + line.strip()
        pending = ""
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        text = text.removeprefix("$ ")
        if not text.startswith("simbench "):
            continue
        text = text.split(" #", 1)[0].strip()
        if re.search(r"\[|\.\.\.|\||<", text):
            continue
        out.append((n, text))
    return out


#: flags the docs may show that are not simbench's: other tools' (dask worker) and the
#: placeholder of "--name value"
FOREIGN_FLAGS = {"--preload", "--nthreads", "--nworkers", "--name"}


def all_flags() -> set[str]:
    """Every flag of every simbench command, and every measure parameter's spellings."""
    import argparse

    def walk(parser: argparse.ArgumentParser) -> set[str]:
        out = set()
        for action in parser._actions:
            out.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    out |= walk(sub)
        return out

    known = walk(build_parser())
    for measure in get_registry().measures.values():
        for p in measure.params:
            for name in (p.name, p.name.replace("_", "-")):
                known |= {f"--{name}", f"--no-{name}"}
    return known


def test_every_flag_the_docs_name_exists() -> None:
    """A flag in an inline code span of the docs (``--n-boot``, ```--max-steps 500```) is a
    flag of a simbench command or a parameter of an installed measure."""
    known = all_flags() | FOREIGN_FLAGS
    unknown = []
    for path in doc_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for span in re.findall(r"`([^`]+)`", line):
                unknown += [f"{path.relative_to(ROOT)}:{n}: {flag}"
                            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*)", span)
                            if flag not in known]
    assert not unknown, "\n".join(unknown)


def test_every_simbench_command_in_the_docs_parses() -> None:
    """Parse only (nothing runs): the command line, and for ``score`` each measure parameter
    against the installed measure (a measure the docs define themselves, e.g. a plugin
    tutorial's, is skipped)."""
    parser = build_parser()
    registry = get_registry()
    problems = []
    seen = 0
    for path in doc_files():
        for line, command in doc_commands(path):
            seen += 1
            where = f"{path.relative_to(ROOT)}:{line}: {command}"
            try:
                args, extra = parser.parse_known_args(shlex.split(command)[1:])
            except SystemExit:
                problems.append(f"{where}: does not parse")
                continue
            if extra and not getattr(args, "accepts_extra", False):
                problems.append(f"{where}: unknown {' '.join(extra)}")
            elif args.command == "score" and args.measure in registry.measures:
                try:
                    parse_measure_args(registry.measure(args.measure), extra)
                except ParameterError as exc:
                    problems.append(f"{where}: {exc}")
    assert seen, "no simbench command found in the docs"
    assert not problems, "\n".join(problems)


def test_the_docs_test_catches_a_wrong_parameter(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n```\nsimbench score cka a.nc b.nc --site hidden --n-bot 5  # x\n"
                    "simbench score MEASURE SYSTEM... --site SITE\n```\nsimbench prose\n")
    assert doc_commands(page) == [(3, "simbench score cka a.nc b.nc --site hidden --n-bot 5")]
    args, extra = build_parser().parse_known_args(shlex.split(doc_commands(page)[0][1])[1:])
    with pytest.raises(ParameterError):
        parse_measure_args(get_registry().measure(args.measure), extra)


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
