"""Harness overhead per job, beyond the measure's own time, with a trivial measure.

Overhead = (wall time of ``run_spec`` - the sum of the measure's own ``score`` times) / jobs. It
covers spec checks already done, the store look-up, resolving cached systems, the registry and
parameter checks of ``simbench.score``, the Score's JSON and one SQLite transaction per result.
Target: under 50 ms per job. Run: ``.venv/bin/pytest benchmarks/test_bench_harness.py -s``.

Jobs without a time limit (correlative measures by default) run in the ``bench run`` process;
jobs with one run in a persistent job process, which adds a round trip per job (measured by
:func:`test_job_process_overhead_per_job`) and one process start per run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_helpers import fresh_registry, make_recordings, spec_text, write_spec

from simbench.bench.jobs import prepare
from simbench.bench.runner import run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import Store

BUDGET_S = 0.050


def test_harness_overhead_per_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_registry(monkeypatch)
    make_recordings(tmp_path)
    values = ", ".join(f"{0.001 * i:.3f}" for i in range(1, 11))  # a sweep: 10 x 18 jobs
    measures = f'[measures.const]\nmeasure = "bench_const"\nvalue = [{values}]'
    spec = load_spec(write_spec(tmp_path, spec_text(measures=measures)))
    jobs = prepare(spec)
    assert len(jobs) == 180
    with Store(tmp_path / "s.sqlite") as store:
        start = time.perf_counter()
        summary = run_spec(spec, store, jobs=jobs, progress=False)
        wall = time.perf_counter() - start
        assert summary.done == len(jobs)
        measure_s = sum(json.loads(r["score"])["attrs"]["runtime_s"] for r in store.rows())
        start = time.perf_counter()
        again = run_spec(spec, store, jobs=jobs, progress=False)
        skip_wall = time.perf_counter() - start
    per_job = (wall - measure_s) / len(jobs)
    print(f"\nharness overhead: {1000 * per_job:.2f} ms per job over {len(jobs)} jobs "
          f"(wall {wall:.2f} s, measure {measure_s * 1000:.1f} ms); rerun skipping all: "
          f"{1000 * skip_wall / len(jobs):.3f} ms per job")
    assert again.ran == 0
    assert per_job < BUDGET_S


def test_job_process_overhead_per_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same jobs with a time limit, so each runs in the job process (its start excluded:
    a first run of 4 jobs starts it and loads the plugin)."""
    from simbench.bench.executors import LocalExecutor

    fresh_registry(monkeypatch)
    make_recordings(tmp_path)
    values = ", ".join(f"{0.001 * i:.3f}" for i in range(1, 11))
    measures = f'[measures.const]\nmeasure = "bench_const"\nvalue = [{values}]'
    spec = load_spec(write_spec(tmp_path, spec_text(measures=measures)))
    jobs = prepare(spec)
    executor = LocalExecutor()
    try:
        with Store(tmp_path / "warm.sqlite") as store:
            run_spec(spec, store, jobs=jobs[:4], executor=executor, progress=False,
                     job_timeout=60)
        with Store(tmp_path / "s.sqlite") as store:
            start = time.perf_counter()
            summary = run_spec(spec, store, jobs=jobs, executor=executor, progress=False,
                               job_timeout=60)
            wall = time.perf_counter() - start
            measure_s = sum(json.loads(r["score"])["attrs"]["runtime_s"] for r in store.rows())
    finally:
        executor.close()
    assert summary.done == len(jobs)
    per_job = (wall - measure_s) / len(jobs)
    print(f"\njob process: {1000 * per_job:.2f} ms overhead per job over {len(jobs)} jobs")
    assert per_job < BUDGET_S


def test_dask_overhead_per_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with a 2-worker LocalCluster (its start-up excluded): scheduling + transfer."""
    import logging

    distributed = pytest.importorskip("distributed")
    from simbench.bench.executors import DaskExecutor

    fresh_registry(monkeypatch)
    make_recordings(tmp_path)
    values = ", ".join(f"{0.001 * i:.3f}" for i in range(1, 11))
    measures = f'[measures.const]\nmeasure = "bench_const"\nvalue = [{values}]'
    spec = load_spec(write_spec(tmp_path, spec_text(measures=measures)))
    jobs = prepare(spec)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        try:
            with Store(tmp_path / "warm.sqlite") as store:  # first jobs import plugins on workers
                run_spec(spec, store, jobs=jobs[:4], executor=executor, progress=False)
            with Store(tmp_path / "s.sqlite") as store:
                start = time.perf_counter()
                summary = run_spec(spec, store, jobs=jobs, executor=executor, progress=False)
                wall = time.perf_counter() - start
        finally:
            executor.close()
    assert summary.done == len(jobs)
    per_job = wall / len(jobs)
    print(f"\nDask (2 workers) wall per job with a trivial measure: {1000 * per_job:.2f} ms")
    assert per_job < BUDGET_S
