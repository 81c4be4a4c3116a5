"""The SQLite store: no duplicates, resume after kill -9, readers while writing, full disk,
files that are not a store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bench_helpers import fresh_registry, make_recordings, spec_text, write_spec

from simbench.bench.jobs import prepare
from simbench.bench.runner import run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import SCHEMA_VERSION, Store
from simbench.errors import StoreError

SLOW = '[measures.lin]\nmeasure = "bench_linear"\nsleep = 0.12\nn_boot = 2'


@pytest.fixture
def recs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    fresh_registry(monkeypatch)
    make_recordings(tmp_path)
    return tmp_path


def _cli(*args: str) -> list[str]:
    code = "import sys; from simbench.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-W", "ignore", "-c", code, *args]


def _done_rows(path: Path) -> list[tuple]:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return conn.execute("SELECT key, finished FROM results WHERE status = 'done'").fetchall()
    except sqlite3.OperationalError:  # the writer has created the file but not the tables yet
        return []
    finally:
        conn.close()


def test_write_once_failed_rows_replaced_only_on_retry(recs: Path) -> None:
    spec = load_spec(write_spec(recs))
    jobs = prepare(spec)
    with Store(recs / "s.sqlite") as store:
        failed = {"status": "failed", "error": "boom", "runtime_s": 0.1}
        done = {"status": "done", "score": {"value": 0.5, "ci": [0.4, 0.6], "n_samples": 3}}
        assert store.write(jobs[0], failed)
        assert store.write(jobs[0], done)  # a failed row may be replaced ...
        assert not store.write(jobs[0], failed)  # ... a done one never
        assert not store.write(jobs[0], done)
        rows = store.rows([jobs[0].key])
        assert len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["attempts"] == 2
        assert store.count() == 1


def test_rerun_skips_done_and_failed_unless_retried(recs: Path) -> None:
    measures = '[measures.lin]\nmeasure = "bench_linear"\nfail_on = "tf1"\nn_boot = 2'
    spec = load_spec(write_spec(recs, spec_text(measures=measures)))
    with Store(recs / "s.sqlite") as store:
        first = run_spec(spec, store, progress=False)
        assert first.ran == 18 and len(first.failed) == 6  # 3 GRUs x tf1 x 2 sites
        assert "asked to fail" in first.render() and "failures:" in first.render()
        again = run_spec(spec, store, progress=False)
        assert again.ran == 0 and again.already_done == 12 and again.skipped_failed == 6
        retried = run_spec(spec, store, progress=False, retry_failed=True)
        assert retried.ran == 6 and len(retried.failed) == 6
        assert store.count() == 18
        row = store.rows(status="failed")[0]
        assert row["attempts"] == 2 and "RuntimeError: asked to fail" in row["error"]
        assert "Traceback" in row["traceback"]


def _start_run(spec_path: Path, store_path: Path, *, capture: bool = False
               ) -> subprocess.Popen:
    """`simbench bench run` in a subprocess of its own, to be killed or interrupted."""
    pipe = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(_cli("bench", "run", str(spec_path), "--store", str(store_path),
                                 "--no-progress"), stdout=pipe, stderr=pipe, text=True)


def _wait_for_done(store_path: Path, n: int, poll: float = 0.05) -> None:
    """Until the store holds ``n`` finished results (at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if store_path.exists() and len(_done_rows(store_path)) >= n:
            return
        time.sleep(poll)


def test_resume_after_kill_9_loses_and_duplicates_nothing(recs: Path) -> None:
    spec_path = write_spec(recs, spec_text(measures=SLOW))
    store_path = recs / "s.sqlite"
    proc = _start_run(spec_path, store_path)
    try:
        _wait_for_done(store_path, 4)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    before = dict(_done_rows(store_path))
    assert 4 <= len(before) < 18, "the kill must land mid-run"
    with Store(store_path) as store:
        assert store.integrity() == "ok"
        summary = run_spec(load_spec(spec_path), store, progress=False)
        assert summary.already_done == len(before) and summary.ran == 18 - len(before)
        assert store.count() == 18
        keys = [r[0] for r in store.conn.execute("SELECT key FROM results")]
        assert len(keys) == len(set(keys))
    after = dict(_done_rows(store_path))
    assert all(after[k] == t for k, t in before.items()), "finished rows were rewritten"


def test_ctrl_c_stops_cleanly_and_keeps_results(recs: Path) -> None:
    spec_path = write_spec(recs, spec_text(measures=SLOW))
    store_path = recs / "s.sqlite"
    proc = _start_run(spec_path, store_path, capture=True)
    _wait_for_done(store_path, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "interrupted" in out and "Traceback" not in err
    kept = len(_done_rows(store_path))
    assert 2 <= kept < 18
    with Store(store_path) as store:
        assert store.integrity() == "ok" and store.count() == kept


def test_ctrl_c_swallowed_by_a_measure_is_not_stored_as_done(recs: Path) -> None:
    spec_path = write_spec(recs, spec_text(
        measures='[measures.lin]\nmeasure = "bench_linear"\nsleep = 0.3\nswallow = true'))
    store_path = recs / "s.sqlite"
    proc = _start_run(spec_path, store_path, capture=True)
    _wait_for_done(store_path, 1, poll=0.02)
    time.sleep(0.1)  # inside the next job's sleep
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    with Store(store_path) as store:
        assert store.count() >= 1
        assert all(r["value"] != -1.0 for r in store.rows()), "a cut-short result was stored"


def test_concurrent_readers_while_writing(recs: Path) -> None:
    spec_path = write_spec(recs, spec_text(
        measures='[measures.lin]\nmeasure = "bench_linear"\nsleep = 0.03\nn_boot = 2'))
    store_path = recs / "s.sqlite"
    Store(store_path).close()  # created, so readers can open it at once
    proc = _start_run(spec_path, store_path)
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with Store(store_path, create=False) as store:
                while proc.poll() is None:
                    seen.append(store.count("done"))
                    store.rows()
                    time.sleep(0.005)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    proc.wait(60)
    for t in threads:
        t.join(10)
    assert proc.returncode == 0 and not errors
    assert len(seen) > 20 and max(seen) <= 18
    assert len(set(seen)) > 3, "readers should see the store grow"


def test_disk_full_keeps_the_store_consistent(recs: Path) -> None:
    jobs = prepare(load_spec(write_spec(recs)))
    path = recs / "s.sqlite"
    with Store(path) as store:
        store.write(jobs[0], {"status": "done", "score": {"value": 0.1}})
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own full-disk error
        big = {"status": "done", "score": {"value": 0.2, "attrs": {"blob": "x" * 200_000}}}
        with pytest.raises(StoreError, match="full"):
            store.write(jobs[1], big)
        assert not store.conn.in_transaction
        assert store.integrity() == "ok"
        assert [r["key"] for r in store.rows()] == [jobs[0].key]
        store.write(jobs[2], {"status": "done", "score": {"value": 0.3}})  # small still fits?
    with Store(path) as store:  # a fresh connection: no page limit, nothing half-written
        assert store.integrity() == "ok"
        assert {r["key"] for r in store.rows()} <= {jobs[0].key, jobs[2].key}
        assert store.write(jobs[1], big)


def test_disk_full_during_a_run_stops_with_a_store_error(recs: Path) -> None:
    spec = load_spec(write_spec(recs))
    path = recs / "s.sqlite"
    with Store(path) as store:
        store.write(prepare(spec)[0], {"status": "done", "score": {"value": 0.1}})
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        with pytest.raises(StoreError, match="full"):
            run_spec(spec, store, progress=False)
        assert store.integrity() == "ok"
        done = store.count()
    with Store(path) as store:
        summary = run_spec(spec, store, progress=False)
        assert summary.already_done == done and store.count() == 18


def test_not_a_store(tmp_path: Path) -> None:
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, not a database")
    with pytest.raises(StoreError, match="not a simbench results store"):
        Store(text)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a simbench results store"):
        Store(other)
    with pytest.raises(StoreError, match="no results store"):
        Store(tmp_path / "missing.sqlite", create=False)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version") as info:
        Store(path)
    assert "upgrade simbench" in str(info.value)


def test_store_marks_itself(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
