"""The SQLite store: no duplicates, resume after kill -9, readers while writing, full disk,
files that are not a store."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bench_helpers import schema1_copy, spec_text, write_spec

from simbench.bench.jobs import prepare
from simbench.bench.runner import run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import SCHEMA_VERSION, Store
from simbench.errors import StoreError

SLOW = '[measures.lin]\nmeasure = "bench_linear"\nsleep = 0.12\nn_boot = 2'


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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _start_run(spec_path: Path, store_path: Path, *, capture: bool = False,
               lease_s: float | None = None, args: tuple[str, ...] = ()) -> subprocess.Popen:
    """`simbench bench run` in a subprocess of its own, to be killed or interrupted."""
    pipe = subprocess.PIPE if capture else subprocess.DEVNULL
    env = dict(os.environ)
    if lease_s is not None:
        env["SIMBENCH_LEASE_S"] = str(lease_s)
    return subprocess.Popen(_cli("bench", "run", str(spec_path), "--store", str(store_path),
                                 "--no-progress", *args), stdout=pipe, stderr=pipe, text=True,
                            env=env)


def _wait_for_done(store_path: Path, n: int, poll: float = 0.05) -> None:
    """Until the store holds ``n`` finished results (at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if store_path.exists() and len(_done_rows(store_path)) >= n:
            return
        time.sleep(poll)


@pytest.mark.slow  # runs and signals other processes, polling the store
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


@pytest.mark.slow  # runs and signals other processes, polling the store
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


@pytest.mark.slow  # runs and signals other processes, polling the store
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


@pytest.mark.slow  # runs and signals other processes, polling the store
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


# ---- schema 2: old stores stay readable; read-only, damaged and misplaced stores -------------
PAPER = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "paper.sqlite"


def test_version_1_store_is_read_as_is_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    """The shipped paper store (schema 1) reads without being changed; a run upgrades it in
    place, keeping every row, and marks its rows stale (no code fingerprint)."""
    copy = schema1_copy(PAPER, tmp_path / "paper.sqlite")
    with Store(copy, create=False) as store:
        rows = store.rows()
        assert len(rows) == 158 and store.spec_jobs("paper") is None
        assert all(r["code_fingerprint"] is None and r["measure_meta"] is None for r in rows)
    assert sqlite3.connect(copy).execute("PRAGMA user_version").fetchone()[0] == 1
    with Store(copy) as store:
        assert store.count() == 158 and store.leases() == []
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    cols = {r[1] for r in conn.execute("PRAGMA table_info(results)")}
    assert {"code_fingerprint", "measure_meta"} <= cols
    assert {"jobs", "leases"} <= {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()


_AS_NOBODY = """
import os, sys
from simbench.bench.store import Store
from simbench.cli import main
import numpy, simbench.cli.bench, simbench.bench.runner, simbench.resources  # before losing /root
if os.geteuid() == 0:  # root ignores permission bits: read as an unprivileged user
    os.setgid(65534)
    os.setuid(65534)
store = Store(sys.argv[1], create=False)
print("rows", len(store.rows()), "done", store.count("done"))
store.close()
sys.exit(main(["bench", "status", "paper", "--store", sys.argv[1]]))
"""


@pytest.mark.slow
def test_read_only_store_can_be_read(tmp_path: Path) -> None:
    """The shipped store in a directory nobody may write: readers open it with mode=ro, change
    nothing and create nothing (no -wal or -shm file)."""
    import tempfile

    ro = Path(tempfile.mkdtemp(prefix="simbench-ro-"))
    try:
        store = ro / "paper.sqlite"
        store.write_bytes(PAPER.read_bytes())
        store.chmod(0o444)
        ro.chmod(0o555)
        proc = subprocess.run([sys.executable, "-c", _AS_NOBODY, str(store)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "rows 158 done 158" in proc.stdout
        assert "spec 'paper' in" in proc.stdout and re.search(r"\ball +158 +\d+", proc.stdout)
        assert sorted(p.name for p in ro.iterdir()) == ["paper.sqlite"]
        assert store.read_bytes() == PAPER.read_bytes()
    finally:
        ro.chmod(0o755)
        for p in ro.iterdir():
            p.unlink()
        ro.rmdir()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_damaged_store_is_a_one_line_error(recs: Path) -> None:
    """Garbage inside the pages (the header intact): status and run say so, no traceback."""
    spec_path = write_spec(recs)
    path = recs / "s.sqlite"
    with Store(path) as store:
        run_spec(load_spec(spec_path), store, progress=False)
    conn = sqlite3.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'results'").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())  # the schema and the meta table stay intact
    data[(root - 1) * page:root * page] = os.urandom(page)
    path.write_bytes(bytes(data))
    for args in (("bench", "status", str(spec_path)), ("bench", "run", str(spec_path),
                                                        "--no-progress")):
        proc = _run_cli(*args, "--store", str(path))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        assert len(errors) == 1, proc.stderr
        first = errors[0]
        assert first.startswith(f"simbench: error: file {path}: cannot ")
        assert "malformed" in first or "not a database" in first
        assert ".recover" in proc.stderr


@pytest.mark.slow
def test_store_that_is_a_directory_or_cannot_be_created(recs: Path) -> None:
    spec_path = write_spec(recs)
    folder = recs / "results"
    folder.mkdir()
    proc = _run_cli("bench", "run", str(spec_path), "--store", str(folder))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"file {folder}: this is a directory" in proc.stderr
    assert f"--store {folder / 'results.sqlite'}" in proc.stderr
    blocker = recs / "a-file"
    blocker.write_text("x")
    bad = blocker / "sub" / "s.sqlite"
    proc = _run_cli("bench", "run", str(spec_path), "--store", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot create the store's directory {blocker / 'sub'}" in proc.stderr
    proc = _run_cli("bench", "status", str(spec_path), "--store", str(folder))
    assert proc.returncode == 2 and "this is a directory" in proc.stderr


# ---- runs sharing one store ------------------------------------------------------------------
def _log_spec(recs: Path, log: Path, sleep: float) -> Path:
    measures = (f'[measures.lin]\nmeasure = "bench_probe"\nsleep = {sleep}\nn_boot = 2\n'
                f'log = "{log}"')
    return write_spec(recs, spec_text(measures=measures))


@pytest.mark.slow
def test_two_runs_on_one_store_compute_each_job_once(recs: Path) -> None:
    """Two real `bench run`s started together on one store: they share the jobs (each claims
    a job before running it), every job is computed exactly once, and both end complete."""
    log = recs / "executions.log"
    spec_path = _log_spec(recs, log, 0.15)
    store_path = recs / "s.sqlite"
    Store(store_path).close()
    runs = [_start_run(spec_path, store_path, capture=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outs
    lines = log.read_text().splitlines()
    jobs = [line.rsplit(" pid ", 1)[0] for line in lines]
    assert len(jobs) == 18 and len(set(jobs)) == 18, lines
    pids = {line.rsplit(" pid ", 1)[1] for line in lines}
    assert len(pids) == 2, "both runs should have done part of the work"
    ran = [int(out.split(", ran ")[1].split()[0]) for out, _err in outs]
    assert sum(ran) == 18 and min(ran) > 0
    with Store(store_path, create=False) as store:
        assert store.count("done") == 18 and store.leases() == []


def _kill_mid_job(spec_path: Path, store_path: Path, lease_s: float) -> dict:
    """Start a run, kill -9 it inside its third job; return the claim it leaves behind."""
    proc = _start_run(spec_path, store_path, lease_s=lease_s)
    try:
        _wait_for_done(store_path, 2, poll=0.02)
        time.sleep(0.2)  # inside the next job's 0.6 s
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    with Store(store_path, create=False) as store:
        held = store.leases()
    assert len(held) == 1 and held[0]["pid"] == proc.pid, held
    return held[0]


@pytest.mark.slow
def test_claims_of_a_killed_run_are_taken_over(recs: Path) -> None:
    """kill -9 leaves the killed run's claim in the store; on the same host its process is
    gone, so the next run takes the claim over at once and computes that job."""
    spec_path = _log_spec(recs, recs / "executions.log", 0.6)
    store_path = recs / "s.sqlite"
    held = _kill_mid_job(spec_path, store_path, lease_s=60)
    with Store(store_path) as store:
        done_before = store.count("done")
        start = time.time()
        summary = run_spec(load_spec(spec_path), store, progress=False, lease_s=60)
        assert summary.already_done == done_before and summary.ran == 18 - done_before
        assert time.time() - start < 30, "a dead process's claim must not make us wait"
        row = store.rows([held["key"]])[0]
        assert row["status"] == "done" and row["finished"] < held["expires"]
        assert store.leases() == [] and store.count("done") == 18


@pytest.mark.slow
def test_claims_of_a_run_on_another_host_are_taken_over_after_expiry(recs: Path) -> None:
    """A run on another machine sharing the store dies (kill -9, then its claim is made to
    name another host, as it would): this run computes everything else, waits for the claim
    to expire (nobody renews it any more), then computes that job too."""
    spec_path = _log_spec(recs, recs / "executions.log", 0.6)
    store_path = recs / "s.sqlite"
    lease_s = 4.0
    held = _kill_mid_job(spec_path, store_path, lease_s)
    conn = sqlite3.connect(store_path)
    with conn:
        conn.execute("UPDATE leases SET host = 'other-host'")
    conn.close()
    with Store(store_path) as store:
        done_before = store.count("done")
        summary = run_spec(load_spec(spec_path), store, progress=False, lease_s=lease_s)
        assert summary.already_done == done_before and summary.ran == 18 - done_before
        row = store.rows([held["key"]])[0]
        assert row["status"] == "done" and row["finished"] >= held["expires"]
        assert store.leases() == [] and store.count("done") == 18


def test_a_live_claim_is_respected_and_an_expired_one_taken(recs: Path) -> None:
    """Claims held by a run on another host: refused while live, taken once expired."""
    from simbench.bench.store import Owner

    jobs = prepare(load_spec(write_spec(recs)))
    me, other = Owner.here(), Owner("elsewhere:1:x", 1, "elsewhere")
    with Store(recs / "s.sqlite") as store:
        assert store.claim(jobs[0], other, lease_s=30) == ("claimed", None)
        state, holder = store.claim(jobs[0], me, lease_s=30)
        assert state == "busy" and holder is not None and holder["host"] == "elsewhere"
        assert store.claim(jobs[1], other, lease_s=0.2) == ("claimed", None)
        time.sleep(0.3)
        assert store.claim(jobs[1], me, lease_s=30) == ("claimed", None)
        assert store.write(jobs[1], {"status": "done", "score": {"value": 0.5}}, owner=me)
        assert store.claim(jobs[1], other, lease_s=30) == ("done", None)
        assert [lease["key"] for lease in store.leases()] == [jobs[0].key]
