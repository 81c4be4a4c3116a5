"""The Dask executor on a real ``distributed.LocalCluster`` (2 worker processes, one per module):
the same results bit for bit as the local executor, written by the submitting process only."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_helpers import spec_text, write_spec

from simbench.bench.executors import DaskExecutor
from simbench.bench.jobs import prepare
from simbench.bench.runner import run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import Store
from simbench.errors import SimbenchError

distributed = pytest.importorskip("distributed")

MEASURES = '[measures.lin]\nmeasure = "bench_linear"\nn_boot = [10, 30]\nfail_on = "gru_round"'


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as c:
        yield c


def _results(store: Store) -> dict[str, tuple]:
    out = {}
    for row in store.rows():
        score = json.loads(row["score"]) if row["score"] else {}
        out[row["key"]] = (row["status"], row["value"], row["ci_low"], row["ci_high"],
                           row["n_samples"], json.dumps(score.get("breakdown")),
                           (row["error"] or "").splitlines()[:1])
    return out


@pytest.mark.slow
def test_dask_matches_local_bit_for_bit(recs: Path, cluster: object) -> None:
    spec = load_spec(write_spec(recs, spec_text(measures=MEASURES, seeds="[0, 1]")))
    jobs = prepare(spec)
    with Store(recs / "local.sqlite") as local:
        s_local = run_spec(spec, local, jobs=jobs, progress=False)
        want = _results(local)
    executor = DaskExecutor(cluster.scheduler_address)  # type: ignore[attr-defined]
    try:
        with Store(recs / "dask.sqlite") as remote:
            s_dask = run_spec(spec, remote, jobs=jobs, executor=executor, progress=False)
            got = _results(remote)
            hosts = {r["host"] for r in remote.rows(status="done")}
            assert hosts  # outcomes carry the worker's host; the store is written here
    finally:
        executor.close()
    assert s_local.ran == s_dask.ran == len(jobs) == 72
    assert len(s_dask.failed) == len(s_local.failed) == 24  # gru_round pairs fail, run goes on
    assert got == want


CAUSAL_SPEC = """
name = "causal"
seeds = [0, 1, 2]
sites = ["hidden"]
[systems]
gru1 = { zoo = "gru_multi_s1", task = "multi_object" }
gru2 = { zoo = "gru_multi_s2", task = "multi_object" }
[measures.mas]
k = 4
n_train = 256
n_val = 64
n_test = 64
pool_size = 128
max_steps = 3
eval_every = 3
progress = false
[[pairs]]
name = "seeds"
pairs = [["gru1", "gru2"]]
"""


@pytest.mark.slow
def test_causal_jobs_match_local_bit_for_bit(tmp_path: Path, cluster: object) -> None:
    """Real MAS trainings: a job's score must not depend on which jobs ran before it in the
    same process (locally all three share one; on the cluster they spread over two)."""
    spec_path = tmp_path / "causal.toml"
    spec_path.write_text(CAUSAL_SPEC)
    spec = load_spec(spec_path)
    jobs = prepare(spec)
    with Store(tmp_path / "local.sqlite") as local:
        run_spec(spec, local, jobs=jobs, progress=False)
        want = _results(local)
    executor = DaskExecutor(cluster.scheduler_address)  # type: ignore[attr-defined]
    try:
        with Store(tmp_path / "dask.sqlite") as remote:
            run_spec(spec, remote, jobs=jobs, executor=executor, progress=False)
            got = _results(remote)
    finally:
        executor.close()
    assert len(want) == 3 and all(v[0] == "done" for v in want.values())
    assert got == want


@pytest.mark.slow
def test_dask_run_resumes_and_skips_done(recs: Path, cluster: object) -> None:
    spec = load_spec(write_spec(recs))
    with Store(recs / "s.sqlite") as store:
        executor = DaskExecutor(cluster.scheduler_address)  # type: ignore[attr-defined]
        try:
            first = run_spec(spec, store, executor=executor, progress=False)
            second = run_spec(spec, store, executor=executor, progress=False)
        finally:
            executor.close()
        assert first.ran == 18 and second.ran == 0 and second.already_done == 18
        assert store.count() == 18


@pytest.mark.slow
def test_unreachable_scheduler_fails_fast_and_clearly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SimbenchError) as info:
        DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout=1.5)
    took = time.monotonic() - start
    assert took < 10
    text = str(info.value)
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in text
    assert "dask scheduler" in text  # says how to start one


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4, None],
                         ids=["not-dask", "silent"])
@pytest.mark.slow
def test_a_port_that_is_not_a_scheduler_fails_within_10_s(reply: bytes | None) -> None:
    """Something else listens there (it answers junk, or never answers)."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    conns: list[socket.socket] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            conns.append(conn)
            if reply:
                conn.sendall(reply)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        with pytest.raises(SimbenchError, match="cannot reach the Dask scheduler"):
            DaskExecutor(f"tcp://127.0.0.1:{port}", connect_timeout=2)
    finally:
        server.close()
        for c in conns:
            c.close()
    assert time.monotonic() - start < 10


def _worker_env() -> dict[str, str | None]:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


@pytest.mark.slow
def test_workers_flag_cluster_keeps_adaptive_malloc(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--workers N` starts its own LocalCluster without Dask's 64 KiB malloc trim (which makes
    torch fault every freed buffer back in), but still with one BLAS thread per worker."""
    # a Nanny copies its spawn variables into its parent's environment: undo the module cluster's
    # (and the caller's own OMP_NUM_THREADS would win over Dask's default of 1)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    executor = DaskExecutor(workers=1)
    try:
        envs = list(executor.client.run(_worker_env).values())
    finally:
        executor.close()
    assert envs == [{"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}]


@pytest.mark.slow
def test_dask_kills_a_hanging_job_and_goes_on(recs: Path, cluster: object) -> None:
    """On a worker, a job with a timeout runs in a job process of that worker: killed when it
    overruns, stored failed, and the worker carries on with the next jobs."""
    measures = '[measures.lin]\nmeasure = "bench_probe"\nn_boot = 2\nhang_on = "gru2~gru3@hidden"'
    spec = load_spec(write_spec(recs, spec_text(measures=measures)))
    executor = DaskExecutor(cluster.scheduler_address)  # type: ignore[attr-defined]
    try:
        with Store(recs / "s.sqlite") as store:
            summary = run_spec(spec, store, executor=executor, progress=False, job_timeout=4)
            failed = store.rows(status="failed")
    finally:
        executor.close()
    assert summary.ran == 18 and summary.done == 17, summary.render()
    assert len(failed) == 1 and failed[0]["systems"] == ["gru2", "gru3"]
    assert "timed out after 4 s" in failed[0]["error"]
