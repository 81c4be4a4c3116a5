"""The harness commands end to end: `bench run` (with --dry-run), errors without tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench_helpers import spec_text, write_spec

from simbench.cli import main


@pytest.mark.slow
def test_bench_run_then_rerun(recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(recs)
    store = recs / "out" / "s.sqlite"
    assert main(["bench", "run", str(spec), "--store", str(store), "--dry-run"]) == 0
    assert "18 jobs, 0 already in" in capsys.readouterr().out and not store.exists()
    assert main(["bench", "run", str(spec), "--store", str(store), "--no-progress"]) == 0
    assert "ran 18 (18 done, 0 failed)" in capsys.readouterr().out
    assert main(["bench", "run", str(spec), "--store", str(store), "--no-progress"]) == 0
    assert "18 already in the store, ran 0" in capsys.readouterr().out


@pytest.mark.slow
def test_store_from_environment_and_failures_exit_1(recs: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SIMBENCH_STORE", str(recs / "env.sqlite"))
    measures = '[measures.lin]\nmeasure = "bench_linear"\nfail_on = "tf1"'
    spec = write_spec(recs, spec_text(measures=measures))
    assert main(["bench", "run", str(spec), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "6 failed" in out and "lin gru1 ~ tf1 @embedding seed 0: PluginError" in out
    assert "raised RuntimeError: asked to fail on ['gru1', 'tf1']" in out
    assert (recs / "env.sqlite").exists()


def test_bad_spec_is_one_message_and_exit_2(recs: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    spec = write_spec(recs, spec_text(measures='[measures.x]\nmeasure = "no_such_measure"'))
    assert main(["bench", "run", str(spec), "--store", str(recs / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "unknown measure 'no_such_measure'" in err and "Traceback" not in err
    assert f"{spec}:" in err


def test_store_that_is_not_a_store(recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = recs / "bogus.sqlite"
    bogus.write_text("not sqlite")
    assert main(["bench", "run", str(write_spec(recs)), "--store", str(bogus)]) == 2
    assert "not a simbench results store" in capsys.readouterr().err


def test_demo_with_nothing_installed_says_what_is_missing(
        recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = spec_text(systems={"zoo1": '{ zoo = "no_such_model", arch = "gru" }'}).replace(
        'within = "seed_grus"', 'pairs = [["zoo1", "gru1"]]')
    spec = write_spec(recs, text.split("[[pairs]]\nname = \"gru_vs_tf\"")[0])
    assert main(["demo", "--spec", str(spec), "--store", str(recs / "d.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "nothing left to run" in err and "no_such_model" in err


@pytest.mark.slow
def test_demo_runs_what_is_installed(recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = '[[expect]]\nhigher = "seeds"\nlower = "gru_vs_tf"'
    spec = write_spec(recs, spec_text(extra=extra))
    html = recs / "demo.html"
    assert main(["demo", "--spec", str(spec), "--store", str(recs / "d.sqlite"),
                 "--html", str(html), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Measure validity" in out and "lin" in out and html.exists()


def test_bench_status_counts_and_estimates(recs: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    import sqlite3

    measures = '[measures.lin]\nmeasure = "bench_linear"\nfail_on = "tf1"'
    spec = write_spec(recs, spec_text(measures=measures))
    store = recs / "s.sqlite"
    assert main(["bench", "run", str(spec), "--store", str(store), "--no-progress"]) == 1
    capsys.readouterr()
    with sqlite3.connect(store) as conn:  # known runtimes; three done jobs "lost" to a kill
        conn.execute("UPDATE results SET runtime_s = 2.0 WHERE status = 'done'")
        conn.execute("DELETE FROM results WHERE key IN (SELECT key FROM results "
                     "WHERE status = 'done' LIMIT 3)")
    conn.close()
    assert main(["bench", "status", str(spec), "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line.split() for line in lines if line.startswith("lin (bench_linear)"))
    # label, measure: jobs, done, failed, stale, to run, measure s, mean s, to run s
    assert row[2:] == ["18", "9", "6", "0", "3", "18", "2.0", "6"]
    assert lines[-1].split() == ["all", "18", "9", "6", "0", "3", "18", "6"]


@pytest.mark.slow
def test_bench_status_imports_no_plugin(recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store (or spec) someone sends must be safe to view: `bench status` works from stored
    rows and stored job lists and never imports the plugins the spec names."""
    import subprocess
    import sys

    from bench_helpers import PLUGIN

    marker = recs / "IMPORTED"
    plugin = recs / "marked_plugin.py"
    plugin.write_text(PLUGIN.read_text().replace(
        "\nimport os\n", f"\nimport os\nopen({str(marker)!r}, 'w').close()\n", 1))
    spec = write_spec(recs, spec_text().replace(str(PLUGIN), "marked_plugin.py"))
    store = recs / "s.sqlite"
    assert main(["bench", "run", str(spec), "--store", str(store), "--no-progress"]) == 0
    assert marker.exists()  # running a spec imports its plugins, as it must
    capsys.readouterr()
    marker.unlink()
    code = "import sys; from simbench.cli import main; sys.exit(main(sys.argv[1:]))"
    for target in (str(spec), "test"):  # the spec file, then the spec's name in the store
        proc = subprocess.run([sys.executable, "-c", code, "bench", "status", target,
                               "--store", str(store)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        row = next(line.split() for line in proc.stdout.splitlines()
                   if line.startswith("lin (bench_linear)"))
        assert row[2:7] == ["18", "18", "0", "0", "0"]
        assert not marker.exists(), f"`bench status {target}` imported the spec's plugin"
