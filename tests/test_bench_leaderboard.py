"""Leaderboards on a store filled with known values: orderings, bounds, distances, matrices,
rankings, and the renderers (CSV, PNG, a valid self-contained HTML page)."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from bench_helpers import fresh_registry, make_recordings, schema1_copy, spec_text, write_spec

from simbench.bench import render
from simbench.bench.jobs import expand
from simbench.bench.leaderboard import build
from simbench.bench.meta import record_measures
from simbench.bench.spec import load_spec
from simbench.bench.store import Store
from simbench.cli import main
from simbench.result import Score

MEASURES = """
[measures.good]
measure = "bench_const"
[measures.bad]
measure = "bench_const"
value = 0.25
[measures.dist]
measure = "bench_distance"
"""

EXPECT = """
[[expect]]
finding = "e1 seeds above gru_vs_tf"
site = "hidden"
higher = "seeds"
lower = "gru_vs_tf"

[[expect]]
finding = "e2 within-task above cross-task"
higher = "seeds"
lower = "cross_task"

[[expect]]
finding = "e3 seeds near ceiling"
pairs = "seeds"
above = 0.8

[[expect]]
finding = "e4 gru vs transformer low"
pairs = "gru_vs_tf"
site = "hidden"
below = 0.5
measures = ["good", "bad"]

[[expect]]
finding = "e5 same arch and task above different arch"
site = "hidden"
higher = { same = ["arch", "task"] }
lower = { differ = ["arch"] }

[[expect]]
finding = "e6 every seed pair above every cross-task pair"
site = "embedding"
higher = "seeds"
lower = "cross_task"
mode = "all"
"""

KNOWN = {  # label -> category -> value
    "good": {"seeds": 0.9, "gru_vs_tf": 0.2, "cross_task": 0.5},
    "bad": {"seeds": 0.3, "gru_vs_tf": 0.8, "cross_task": 0.5},
    "dist": {"seeds": 0.1, "gru_vs_tf": 0.7, "cross_task": 0.4},
}


def known_value(job) -> float:  # type: ignore[no-untyped-def]
    if job.label == "good" and job.site == "embedding" and job.systems == ("gru1", "gru_round"):
        return 0.95  # the mean ordering holds at embedding, but not every pair ordering
    base = KNOWN[job.label][job.categories[0]]
    return base + (0.01 if job.seed else -0.01)  # seeds 0 and 1 average to the base value


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    fresh_registry(monkeypatch)
    make_recordings(tmp_path)
    spec_path = write_spec(tmp_path, spec_text(measures=MEASURES, extra=EXPECT, seeds="[0, 1]"))
    spec = load_spec(spec_path)
    jobs = expand(spec)
    store_path = tmp_path / "s.sqlite"
    with Store(store_path) as store:
        store.record_spec(spec.name, str(spec_path), spec.text)
        record_measures(spec, store)  # as a run does
        for job in jobs:
            v = known_value(job)
            score = Score(measure=job.measure, value=v, systems=job.systems, site=job.site,
                          ci=(v - 0.05, v + 0.05), n_samples=10)
            store.write(job, {"status": "done", "score": score.to_dict(), "runtime_s": 0.01})
    return spec_path, store_path


def _board(spec_path: Path, store_path: Path, target: str | None = None):  # type: ignore[no-untyped-def]
    with Store(store_path, create=False) as store:
        return build(load_spec(spec_path), store, target=target)


def test_validity_fractions_and_violations(filled: tuple[Path, Path]) -> None:
    board = _board(*filled)
    rows = {r.variant: r for r in board.validity}
    assert [r.variant for r in board.validity] == ["dist", "good", "bad"]
    assert (rows["dist"].passed, rows["dist"].total) == (7, 7)  # e4 does not apply to it
    assert (rows["good"].passed, rows["good"].total) == (7, 8)
    assert (rows["bad"].passed, rows["bad"].total) == (0, 8)
    (violated,) = rows["good"].violated
    assert violated.finding.startswith("e6") and violated.detail == "6/9 pair orderings hold"
    e1 = next(c for c in rows["bad"].checks if c.finding.startswith("e1"))
    assert e1.status == "violated"
    assert e1.detail == "seeds 0.300 should be > gru_vs_tf 0.800"
    dist_e1 = next(c for c in rows["dist"].checks if c.finding.startswith("e1"))
    assert dist_e1.status == "ok" and "should be <" in dist_e1.detail
    assert board.done == board.total == 3 * 9 * 2 * 2 and board.failed == 0


def test_matrices_are_mirrored_and_seed_averaged(filled: tuple[Path, Path]) -> None:
    board = _board(*filled)
    m = next(x for x in board.matrices if x.variant == "good" and x.site == "hidden")
    assert m.systems == ["gru1", "gru2", "gru3", "tf1", "gru_round"]
    i = {a: k for k, a in enumerate(m.systems)}
    assert m.values[i["gru1"], i["gru2"]] == pytest.approx(0.9)
    assert m.values[i["gru2"], i["gru1"]] == pytest.approx(0.9)
    assert m.values[i["tf1"], i["gru3"]] == pytest.approx(0.2)
    assert math.isnan(m.values[i["tf1"], i["gru_round"]]) and math.isnan(m.values[0, 0])


def test_ranking_against_a_target_respects_direction(filled: tuple[Path, Path]) -> None:
    board = _board(*filled, target="gru1")
    good = next(r for r in board.rankings if r.variant == "good" and r.site == "hidden")
    assert [row[1] for row in good.rows] == ["gru2", "gru3", "gru_round", "tf1"]
    assert good.rows[0][3] == pytest.approx((0.85, 0.95)) and good.rows[0][4] == 2
    dist = next(r for r in board.rankings if r.variant == "dist" and r.site == "hidden")
    assert [row[1] for row in dist.rows][-1] == "tf1"  # the largest distance ranks last
    assert [row[2] for row in dist.rows] == sorted(row[2] for row in dist.rows)


def test_failed_and_missing_jobs_are_reported(filled: tuple[Path, Path]) -> None:
    spec_path, store_path = filled
    spec = load_spec(spec_path)
    extra = spec_text(measures=MEASURES + '[measures.more]\nmeasure = "bench_linear"\n',
                      extra=EXPECT, seeds="[0, 1]")
    spec_path.write_text(extra)
    spec = load_spec(spec_path)
    job = next(j for j in expand(spec) if j.label == "more")
    with Store(store_path) as store:
        record_measures(spec, store)
        store.write(job, {"status": "failed", "error": "RuntimeError: nope"})
        board = build(spec, store)
    assert board.failed == 1 and board.done == 108 and board.total == 108 + 36
    assert "1 failed" in render.coverage_text(board)
    assert board.failures[0]["error"] == "RuntimeError: nope"


class _Checker(HTMLParser):
    """Fails on mis-nested tags; collects images and links."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith("data:"):
                self.external.append(str(a[key]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()


@pytest.mark.slow
def test_html_page_is_valid_and_self_contained(filled: tuple[Path, Path], tmp_path: Path) -> None:
    import matplotlib.image

    board = _board(*filled, target="gru1")
    page = render.html_page(board)
    assert page.startswith("<!DOCTYPE html>")
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == [] and not checker.external
    assert {"html", "head", "body", "table", "img", "h2"} <= checker.tags
    n_figs = 1 + len(board.matrices) + len(board.rankings)
    assert len(checker.images) == n_figs == 1 + 6 + 6
    for src in checker.images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(io.BytesIO(data)).ndim == 3
    for text in ("Measure validity", "Similarity matrices", "Against gru1", "e6 every seed"):
        assert text in page


@pytest.mark.skipif(not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()),
                    reason="Chromium is not installed: no headless-browser check")
@pytest.mark.slow
def test_html_page_renders_in_a_headless_browser(filled: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    page = render.write_html(_board(*filled, target="gru1"), tmp_path / "board.html")
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                    f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                   check=True, capture_output=True, timeout=60)
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_csv_and_png_files(filled: tuple[Path, Path], tmp_path: Path) -> None:
    board = _board(*filled, target="gru1")
    files = render.write_csv(board, tmp_path / "csv")
    names = {f.name for f in files}
    assert {"validity.csv", "checks.csv", "entries.csv",
            "matrix_good_hidden.csv", "target_gru1_dist_embedding.csv"} <= names
    with (tmp_path / "csv" / "validity.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["measure"], r["right"], r["applicable"]) for r in rows] == [
        ("dist", "7", "7"), ("good", "7", "8"), ("bad", "0", "8")]
    pngs = render.write_png(board, tmp_path / "png")
    assert len(pngs) == 13 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_terminal_text(filled: tuple[Path, Path]) -> None:
    out = render.text(_board(*filled, target="gru1"))
    assert re.search(r"dist\s+correlative\s+7/7\s+100%", out)
    assert re.search(r"bad\s+correlative\s+0/8\s+0%", out)
    assert "bad violates:" in out and "good at 'hidden' against 'gru1'" in out


def test_cli_leaderboard_from_the_store_alone(filled: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _spec_path, store_path = filled
    assert main(["leaderboard", "--store", str(store_path), "--target", "gru2",
                 "--csv", str(tmp_path / "csv")]) == 0
    out = capsys.readouterr().out
    assert "Measure validity" in out and "against 'gru2'" in out
    assert (tmp_path / "csv" / "validity.csv").exists()
    assert main(["leaderboard", "--store", str(store_path), "--target", "nobody"]) == 2
    assert "target 'nobody' is not a system" in capsys.readouterr().err


def test_the_shipped_paper_run_matches_the_spec_and_the_paper() -> None:
    """benchmarks/results/paper.sqlite is the measured run of benchmarks/specs/paper.toml: every
    job of the spec is in it (a changed spec must be rerun), and its validity board shows what
    the paper found: MAS keeps every finding where CKA and RSA lose some."""
    root = Path(__file__).resolve().parents[1]
    spec = load_spec(root / "benchmarks" / "specs" / "paper.toml")
    with Store(root / "benchmarks" / "results" / "paper.sqlite", create=False) as store:
        board = build(spec, store)
    assert (board.done, board.failed, board.total) == (158, 0, 158)
    # every row carries the metadata of the measure that computed it: nothing assumed
    assert board.notes == [] and {m["origin"] for m in board.meta.values()} == {"stored"}
    score = {row.variant: (row.passed, row.total) for row in board.validity}
    assert score["mas"] == (6, 6) and score["mas_stepwise"] == (1, 1)
    for variant in ("cka", "cka_paper", "rsa"):
        passed, total = score[variant]
        assert 0 < passed < total, variant
    assert score["mas_k[k=1]"] == (0, 1) and score["mas_k[k=4]"] == (2, 2)


# ---- a store or spec from someone else is data, not code ---------------------------------------
def _evil_plugins(root: Path) -> tuple[list[Path], Path, str]:
    """A plugin file and a plugin module that each leave a marker file when imported (named
    after ``root``, so no earlier test has imported them into this process already)."""
    markers = [root / "file_plugin_ran.txt", root / "module_plugin_ran.txt"]
    tag = re.sub(r"\W", "_", root.name)
    (root / f"evil_{tag}.py").write_text(
        f"from pathlib import Path\nPath({str(markers[0])!r}).write_text('ran')\n")
    moddir = root / "mods"
    moddir.mkdir(exist_ok=True)
    (moddir / f"sb_evil_{tag}.py").write_text(
        f"from pathlib import Path\nPath({str(markers[1])!r}).write_text('ran')\n")
    from bench_helpers import PLUGIN

    line = f'plugins = ["{PLUGIN}", "evil_{tag}.py", "sb_evil_{tag}", "os"]'
    return markers, moddir, line


def _leaderboard_process(args: list[str], moddir: Path, cwd: Path
                         ) -> subprocess.CompletedProcess[str]:
    """`simbench leaderboard ...` in a fresh interpreter that could import the evil module."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SIMBENCH_STORE"}
    env["PYTHONPATH"] = str(moddir)
    code = "import sys; from simbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "leaderboard", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_viewing_a_store_imports_no_plugin_it_names(filled: tuple[Path, Path],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose spec names a .py plugin, a module and "os" draws from its rows and stored
    metadata alone: nothing is imported, and the boards are right (a distance stays a
    distance, which only the stored metadata says)."""
    spec_path, store_path = filled
    markers, moddir, line = _evil_plugins(tmp_path)
    text = re.sub(r"^plugins = .*$", line, spec_path.read_text(), flags=re.M)
    with Store(store_path) as store:
        store.record_spec("test", str(spec_path), text)
    evil_spec = write_spec(tmp_path, text, "evil_spec.toml")
    for args in (["--store", str(store_path)], [str(evil_spec), "--store", str(store_path)]):
        proc = _leaderboard_process([*args, "--csv", str(tmp_path / "csv")], moddir, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert not any(m.exists() for m in markers), args
        out = proc.stdout
        assert "spec 'test': 108/108 jobs scored" in out
        assert re.search(r"dist\s+correlative\s+7/7\s+100%", out)
        assert "dist at 'hidden' (lower = more similar)" in out and "note:" not in out
    # in this process too: the (fresh) registry gets no plugin, "os" included
    registry = fresh_registry(monkeypatch)
    assert main(["leaderboard", "--store", str(store_path), "--board", "validity"]) == 0
    assert registry.plugins == [] and not any(m.exists() for m in markers)  # type: ignore[attr-defined]
    # the same spec, parsed to run it, does import them: the markers above could appear
    monkeypatch.syspath_prepend(str(moddir))
    load_spec(evil_spec)
    assert all(m.exists() for m in markers)


@pytest.mark.slow
def test_a_spec_that_names_plugins_still_runs_and_its_store_views_safely(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fresh_registry(monkeypatch)
    monkeypatch.delenv("SIMBENCH_STORE", raising=False)
    make_recordings(tmp_path)
    markers, moddir, line = _evil_plugins(tmp_path)
    monkeypatch.syspath_prepend(str(moddir))
    spec = write_spec(tmp_path, re.sub(r"^plugins = .*$", line, spec_text(), flags=re.M))
    store = tmp_path / "run.sqlite"
    assert main(["bench", "run", str(spec), "--store", str(store), "--no-progress"]) == 0
    assert "ran 18 (18 done, 0 failed)" in capsys.readouterr().out
    assert all(m.exists() for m in markers)  # running trusts the spec: its plugins ran
    for m in markers:
        m.unlink()
    proc = _leaderboard_process(["--store", str(store)], moddir, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "spec 'test': 18/18 jobs scored" in proc.stdout
    assert "lin at 'hidden'" in proc.stdout
    assert not any(m.exists() for m in markers)


def test_a_store_without_metadata_says_what_it_assumed(filled: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """Stores written before measure metadata was kept (the shipped paper store) still draw:
    simbench's own measures from its built-in registry, others on stated assumptions."""
    spec_path, store_path = filled
    with Store(store_path) as store:
        store.conn.execute("DROP TABLE measures")  # as in a store that predates both records
        store.conn.execute("UPDATE results SET measure_meta = NULL")
    with Store(store_path, create=False) as store:
        assert store.measures() == {}
        board = build(load_spec(spec_path, trusted=False), store)
    assert board.done == board.total == 108
    assert board.meta["bench_distance"]["origin"] == "assumed"
    assert board.meta["bench_distance"]["family"] == "unknown"
    assert [n.split(":")[0] for n in board.notes] == ["measure 'bench_const'",
                                                       "measure 'bench_distance'"]
    assert "note: measure 'bench_distance': the store holds no metadata" in render.text(board)
    # an old store gains the table on the first run that records metadata, rows intact
    root = Path(__file__).resolve().parents[1]
    old = schema1_copy(root / "benchmarks" / "results" / "paper.sqlite", tmp_path / "p.sqlite")
    with Store(old) as store:
        assert store.measures() == {}
        store.record_measures({"x": {"family": "causal", "range": [0.0, None]}})
    with Store(old, create=False) as store:
        assert store.measures() == {"x": {"family": "causal", "range": [0.0, None]}}
        assert store.count("done") == 158


# ---- names that try to act: CSV formulas, terminal escapes, mathtext ---------------------------
HOSTILE = {  # alias in the hostile spec -> (recording of the filled store, arch, task)
    '=HYPERLINK("http://evil.example","x")': ("gru1", "gru", "count"),
    "+1+cmd": ("gru2", "gru", "count"),
    "@SUM(A1)": ("gru3", "gru", "count"),
    r"$\undefinedmacro{x}$": ("tf1", "transformer", "count"),
    "ansi\x1b]0;pwned\x07\x1b[2J": ("gru_round", "gru", "round"),
}


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\x1b", "\\u001b").replace(
        "\x07", "\\u0007") + '"'


def _hostile_spec(root: Path) -> Path:
    """The filled store's jobs under hostile names: aliases, labels, findings, the spec name.
    Rows are matched by what they record, so these names reuse every stored result."""
    from bench_helpers import PLUGIN

    lines = [f"name = {_toml_str('=cmd|calc')}", f'plugins = ["{PLUGIN}"]',
             'sites = ["embedding", "hidden"]', "seeds = [0, 1]", "", "[systems]"]
    for alias, (rec, arch, task) in HOSTILE.items():
        lines.append(f'{_toml_str(alias)} = {{ recording = "{rec}.nc", arch = "{arch}", '
                     f'task = "{task}" }}')
    grus = ", ".join(_toml_str(a) for a in list(HOSTILE)[:3])
    lines += ["", "[groups]", f"seed_grus = [{grus}]", "",
              '[measures."-good"]', 'measure = "bench_const"',
              "[measures.bad]", 'measure = "bench_const"', "value = 0.25",
              f"[measures.{_toml_str('$x^{2$')}]", 'measure = "bench_distance"', ""]
    body = spec_text(measures="", extra=f"[[expect]]\nfinding = {_toml_str('=HYPERLINK(1)')}"
                     '\nhigher = "seeds"\nlower = "gru_vs_tf"\n')
    lines.append(body[body.index("[[pairs]]"):])
    return write_spec(root, "\n".join(lines), "hostile.toml")


def test_csv_cells_never_start_a_formula(filled: tuple[Path, Path], tmp_path: Path) -> None:
    _spec, store_path = filled
    with Store(store_path, create=False) as store:
        board = build(load_spec(_hostile_spec(tmp_path), trusted=False), store,
                      target='=HYPERLINK("http://evil.example","x")')
    assert board.done == board.total == 108
    board.entries[0].value = -0.5  # a negative number must stay a number
    files = render.write_csv(board, tmp_path / "csv")
    cells = []
    for f in files:
        with f.open(newline="", encoding="utf-8") as fh:
            cells += [c for row in csv.reader(fh) for c in row]
    risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    for c in risky:  # what a spreadsheet would evaluate is only ever a plain number
        float(c)
    assert "-0.5" in risky
    for name in [*HOSTILE, "-good", "=HYPERLINK(1)"]:  # aliases, a label, a finding
        if name[0] in "=+-@":
            assert "'" + name in cells and name not in cells
    with (tmp_path / "csv" / "entries.csv").open(newline="") as fh:
        values = [float(r["value"]) for r in csv.DictReader(fh)]
    assert values[0] == -0.5 and len(values) == len(board.entries)


def test_terminal_text_shows_control_characters_escaped(
        filled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spec, store_path = filled
    spec = _hostile_spec(tmp_path)
    assert main(["leaderboard", str(spec), "--store", str(store_path), "--board", "matrices"]) == 0
    out = capsys.readouterr().out
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", out)
    shown = r"ansi\x1b]0;pwned\x07\x1b[2J"
    assert shown in out
    block = out[out.index("bad at 'hidden'"):].split("\n\n")[0].splitlines()
    header, rule, *rows = block[1:]
    width = len(rule.split("  ")[0])  # the first column, as wide as its widest name as shown
    assert width == max([len(shown)] + [len(a) for a in HOSTILE if "\x1b" not in a])
    assert any(r.startswith(shown) for r in rows)
    assert all(r[width:width + 2] == "  " for r in [header, *rows])


@pytest.mark.slow
def test_names_with_mathtext_render_as_plain_text(filled: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    """`$\\undefinedmacro{x}$` as an alias, `$x^{2$` as a label: no mathtext parse, no LaTeX
    run (even with usetex on in the user's matplotlib settings), the names shown as written."""
    import matplotlib

    _spec, store_path = filled
    with Store(store_path, create=False) as store:
        board = build(load_spec(_hostile_spec(tmp_path), trusted=False), store,
                      target=r"$\undefinedmacro{x}$")
    with matplotlib.rc_context({"text.usetex": True}):
        page = render.html_page(board)
        pngs = render.write_png(board, tmp_path / "png")
    assert len(pngs) == 1 + len(board.matrices) + len(board.rankings) == 13
    assert r"against $\undefinedmacro{x}$" in page and "$x^{2$ at hidden" in page
    assert "=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;)" in page
    fig = render.ranking_figure(board.rankings[0])
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert r"\$\undefinedmacro{x}\$" not in labels  # the target is not ranked against itself
    assert fig.axes[0].get_title() == r"against \$\undefinedmacro{x}\$ @ " + board.rankings[0].site
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize(("cell", "written"), [
    ("=1+2", "'=1+2"), ("-1+2", "'-1+2"), ("+cmd", "'+cmd"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\r=1", "'\r=1"), (" =A1", "' =A1"), ("-inf", "'-inf"),
    ("-0.5", "-0.5"), ("+1e-3", "+1e-3"), (-0.5, -0.5), ("gru1", "gru1"), ("", ""), (None, None),
])
def test_csv_cell(cell: object, written: object) -> None:
    from simbench.bench.sanitize import csv_cell

    assert csv_cell(cell) == written


def test_terminal_safe_is_visible_and_idempotent() -> None:
    from simbench.bench.sanitize import terminal_safe

    raw = "a\x1b]0;t\x07b\u202ec\x9bd\ne\tf"
    once = terminal_safe(raw)
    assert once == r"a\x1b]0;t\x07b\u202ec\x9bd\x0ae\x09f"
    assert terminal_safe(once) == once
    assert terminal_safe(raw, newlines=True) == r"a\x1b]0;t\x07b\u202ec\x9bd" + "\n" + r"e\x09f"


# ---- cells that beat their null ------------------------------------------------------------
@pytest.fixture
def with_nulls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The 'good' variant's scores carry a null: seed pairs beat it (p = 0.001 on both seeds),
    gru_vs_tf pairs do not (p = 0.4); one seed of one seed-pair misses (p = 0.2)."""
    fresh_registry(monkeypatch)
    make_recordings(tmp_path)
    spec_path = write_spec(tmp_path, spec_text(measures=MEASURES, extra=EXPECT, seeds="[0, 1]"))
    spec = load_spec(spec_path)
    store_path = tmp_path / "s.sqlite"
    with Store(store_path) as store:
        store.record_spec(spec.name, str(spec_path), spec.text)
        record_measures(spec, store)
        for job in expand(spec):
            v = known_value(job)
            null = {}
            if job.label == "good":
                p = 0.001 if job.categories[0] == "seeds" else 0.4
                if job.systems == ("gru1", "gru3") and job.seed == 1:
                    p = 0.2
                null = {"p_value": p, "null_mean": 0.1, "null_sd": 0.02,
                        "null_size": 999 if job.seed else 500, "null_method": "permutations"}
            score = Score(measure=job.measure, value=v, systems=job.systems, site=job.site,
                          ci=(v - 0.05, v + 0.05), n_samples=10, **null)
            store.write(job, {"status": "done", "score": score.to_dict(), "runtime_s": 0.01})
    return spec_path, store_path


@pytest.mark.slow
def test_cells_that_beat_their_null_are_marked(with_nulls: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    board = _board(*with_nulls, target="gru1")
    entries = {(e.variant, e.systems, e.site): e for e in board.entries}
    e = entries[("good", ("gru1", "gru2"), "hidden")]
    assert (e.p_value, e.null_size, e.beats_null) == (0.001, 500, True)
    assert entries[("good", ("gru1", "gru3"), "hidden")].beats_null is False  # one seed misses
    assert entries[("good", ("gru1", "tf1"), "hidden")].beats_null is False
    assert entries[("bad", ("gru1", "gru2"), "hidden")].beats_null is None  # no null drawn
    m = next(x for x in board.matrices if x.variant == "good" and x.site == "hidden")
    i = {a: k for k, a in enumerate(m.systems)}
    assert m.beats_null is not None and m.beats_null[i["gru2"]][i["gru1"]] is True  # mirrored
    bad = next(x for x in board.matrices if x.variant == "bad" and x.site == "hidden")
    assert bad.beats_null is None
    text = render.text(board)
    assert "0.900*" in text and "0.300*" not in text and "beats its null" in text
    out = tmp_path / "csv"
    render.write_csv(board, out)
    with (out / "entries.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if r["measure"] == "good" and r["systems"] == "gru1 ~ gru2"
               and r["site"] == "hidden")
    assert (row["p_value"], row["null_size"], row["beats_null"]) == ("0.001", "500", "yes")
    row = next(r for r in rows if r["measure"] == "bad" and r["systems"] == "gru1 ~ gru2"
               and r["site"] == "hidden")
    assert (row["p_value"], row["beats_null"]) == ("", "")
    target = next(out.glob("target_gru1_good_hidden.csv")).read_text()
    assert target.splitlines()[0].endswith(",beats_null") and ",yes" in target
    page = render.html_page(board)
    assert "<th>beats null</th>" in page and "0.900*" in page


def test_a_spec_asks_cka_for_a_null_and_the_board_shows_it(tmp_path: Path) -> None:
    """``null = 39`` under [measures.cka]: every stored Score carries its null, and the seed
    GRUs (recordings sharing structure) beat it on the board."""
    make_recordings(tmp_path)
    measures = '[measures.cka]\nmeasure = "cka"\nn_boot = 0\nnull = 39\n'
    text = "\n".join(line for line in spec_text(measures=measures).splitlines()
                     if not line.startswith("plugins"))  # the built-in cka only
    spec_path = write_spec(tmp_path, text)
    store = tmp_path / "s.sqlite"
    assert main(["bench", "run", str(spec_path), "--store", str(store), "--no-progress"]) == 0
    with Store(store, create=False) as s:
        rows = s.rows()
        assert rows and all(json.loads(r["score"])["null_size"] == 39 for r in rows)
    board = _board(spec_path, store)
    seeds = [e for e in board.entries if "seeds" in e.categories]
    assert seeds and all(e.p_value is not None for e in board.entries)
    assert all(e.beats_null and e.p_value == pytest.approx(1 / 40) for e in seeds)
