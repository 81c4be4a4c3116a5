"""Runaway measures are contained: a job that hangs is killed after its timeout, a measure that
calls sys.exit fails its own job only; either way the run goes on."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from bench_helpers import spec_text, write_spec

from simbench.bench.jobs import prepare
from simbench.bench.runner import DEFAULT_TIMEOUTS, run_spec, set_timeouts
from simbench.bench.spec import load_spec
from simbench.bench.store import Store
from simbench.cli import main


def _spec(recs: Path, extra: str) -> Path:
    measures = f'[measures.lin]\nmeasure = "bench_probe"\nn_boot = 2\n{extra}'
    return write_spec(recs, spec_text(measures=measures))


@pytest.mark.slow
def test_a_hanging_job_is_killed_stored_failed_and_the_run_goes_on(
        recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(recs, 'hang_on = "gru1~gru2@hidden"')
    store_path = recs / "s.sqlite"
    start = time.monotonic()
    code = main(["bench", "run", str(spec), "--store", str(store_path), "--no-progress",
                 "--job-timeout", "6"])  # the other 17 jobs must finish in it
    took = time.monotonic() - start
    out = capsys.readouterr().out
    assert code == 1, out
    assert "ran 18 (17 done, 1 failed)" in out
    assert "lin gru1 ~ gru2 @hidden seed 0: TimeoutError: timed out after 6 s" in out
    assert took < 90
    with Store(store_path, create=False) as store:
        failed = store.rows(status="failed")
        assert len(failed) == 1 and failed[0]["systems"] == ["gru1", "gru2"]
        assert failed[0]["site"] == "hidden" and "timed out after 6 s" in failed[0]["error"]
        assert 6 <= failed[0]["runtime_s"] < 15
        assert store.count("done") == 17 and store.leases() == []


@pytest.mark.slow
def test_sys_exit_in_a_measure_fails_that_job_only(recs: Path) -> None:
    """In this process (no timeout) and in a job process (with one): the same outcome."""
    spec = load_spec(_spec(recs, 'exit_on = "gru1~gru3@embedding"'))
    for timeout, name in ((None, "inproc"), (30.0, "child")):
        with Store(recs / f"{name}.sqlite") as store:
            summary = run_spec(spec, store, progress=False, job_timeout=timeout)
            assert summary.ran == 18 and summary.done == 17, summary.render()
            (job, error), = summary.failed
            assert job.systems == ("gru1", "gru3") and job.site == "embedding"
            assert "called sys.exit(3)" in error.splitlines()[0]
            assert store.count("done") == 17


def test_job_timeouts_come_from_flag_spec_or_family(recs: Path) -> None:
    """--job-timeout wins, then the spec's job_timeout, then the family default (causal: one
    hour, correlative: none); 0 means no limit."""
    spec = load_spec(_spec(recs, ""))
    jobs = prepare(spec)
    set_timeouts(jobs)
    assert {j.timeout for j in jobs} == {None}  # correlative
    causal = jobs[0]
    causal.meta = {**causal.meta, "family": "causal"}
    set_timeouts([causal])
    assert causal.timeout == DEFAULT_TIMEOUTS["causal"] == 3600
    set_timeouts([causal], 0)
    assert causal.timeout is None
    set_timeouts(jobs, 12.5)
    assert {j.timeout for j in jobs} == {12.5}
    spec.job_timeout = 7  # type: ignore[attr-defined]  # set by the spec's `job_timeout`
    set_timeouts(jobs, None, spec)
    assert {j.timeout for j in jobs} == {7}
    set_timeouts(jobs, 0, spec)
    assert {j.timeout for j in jobs} == {None}
    # a measure table's job_timeout wins over the spec's
    spec.measures["lin"] = dataclasses.replace(spec.measures["lin"], job_timeout=2.0)
    set_timeouts(jobs, None, spec)
    assert {j.timeout for j in jobs} == {2.0}


def test_bench_run_says_which_plugin_code_it_imports(recs: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(recs, "")
    assert main(["bench", "run", str(spec), "--store", str(recs / "s.sqlite"), "--no-progress",
                 "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"spec {spec} imports plugin code (a spec is trusted input): file " in err
    assert "bench_plugin.py" in err


def test_negative_job_timeout_is_refused(recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "run", str(_spec(recs, "")), "--job-timeout", "-1"])
    assert info.value.code == 2
    assert "a timeout is 0 (no limit) or a positive number" in capsys.readouterr().err


def test_sys_exit_while_importing_a_spec_plugin_is_one_error(
        recs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = recs / "exits.py"
    plugin.write_text("import sys\nsys.exit(7)\n")
    text = spec_text().replace('plugins = ["', 'plugins = ["exits.py", "', 1)
    spec = write_spec(recs, text)
    assert main(["bench", "run", str(spec), "--store", str(recs / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "cannot import plugin" in err and "exits.py" in err
    assert "it called sys.exit(7) while being imported" in err
