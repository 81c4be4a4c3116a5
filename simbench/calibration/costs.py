"""What each measure of a spec costs: runtime from the store, and time and memory on one size.

Two figures per measure variant:

- **stored runtime**: the ``runtime_s`` of every job of the variant in the results store
  (median and total over its jobs, wall seconds as the harness measured them, on whatever
  machine and load ran them);
- **one measured job**: one job of the variant (by default the spec's first ``seeds`` pair: two
  trained networks of one architecture) run again in a fresh process, with its wall and CPU
  seconds and its peak memory: the largest resident set size sampled every 10 ms while the
  job ran, minus the resident size just before it (the interpreter and the libraries it
  imports do not count; the networks, their recordings and the measure's arrays do). A fresh
  process per job keeps one measure's caches out of the next one's figure.
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: seconds between two samples of the resident set size during a measured job
SAMPLE_S = 0.01
#: the [[pairs]] category whose first pair is measured, unless one is named
DEFAULT_CATEGORY = "seeds"
COLUMNS = ("variant", "measure", "jobs", "stored_median_s", "stored_total_s", "pair", "site",
           "wall_s", "cpu_s", "peak_mib", "status")


@dataclasses.dataclass(frozen=True)
class MeasureCost:
    """The cost of one measure variant: its stored runtimes and one measured job."""

    variant: str
    measure: str
    jobs: int  # jobs of the variant with a stored runtime
    stored_median_s: float | None
    stored_total_s: float | None
    pair: str  # the measured pair, "a~b"
    site: str
    wall_s: float | None
    cpu_s: float | None
    peak_mib: float | None
    status: str  # "measured", "not measured" or the measured job's error


def stored_runtimes(spec: Any, store: Any) -> dict[str, list[float]]:
    """variant -> runtime_s of each of its finished jobs in ``store`` (this spec's jobs only)."""
    from simbench.bench.leaderboard import build, expected_jobs, match_rows

    board = build(spec, store)
    jobs = expected_jobs(spec, board.meta)
    found = match_rows(jobs, store.rows(status="done"), board.meta)
    out: dict[str, list[float]] = defaultdict(list)
    for j in jobs:
        row = found.get(j.key)
        if row is not None and row.get("runtime_s") is not None:
            out[j.variant].append(float(row["runtime_s"]))
    return dict(out)


def _pick_jobs(spec: Any, category: str) -> dict[str, Any]:
    """variant -> the job to measure: its first job in ``category`` (or a category named
    ``<category>_...``, e.g. ``seeds_tf``), else its first job."""
    from simbench.bench.jobs import prepare

    def fits(job: Any) -> bool:
        return any(c == category or c.startswith(category + "_") for c in job.categories)

    chosen: dict[str, Any] = {}
    for job in prepare(spec):
        variant = job.variant
        if variant not in chosen or (fits(job) and not fits(chosen[variant])):
            chosen[variant] = job
    return chosen


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _measure_job(job: Any) -> dict[str, Any]:
    """Run ``job`` here (a fresh child process) with a memory sampler beside it."""
    import gc

    from simbench.bench.worker import run_job
    from simbench.registry import get_registry

    get_registry()  # plugins and the measure's imports count as the interpreter's, not the job's
    import torch  # noqa: F401  (loaded before the baseline, as the worker has it loaded)

    gc.collect()
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        result = run_job(job, device="cpu")
    finally:
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _rss())
    return {"status": result["status"], "error": result.get("error", ""), "wall_s": wall,
            "cpu_s": cpu, "peak_mib": (peak[0] - base) / 2**20}


def measure_costs(spec: Any, store: Any | None = None, *, measure: bool = True,
                  category: str = DEFAULT_CATEGORY, variants: Sequence[str] | None = None,
                  workers: int = 2) -> list[MeasureCost]:
    """The cost of every measure variant of ``spec`` (see the module docstring).

    ``store`` gives the stored runtimes (None: none); ``measure`` runs one job per variant (the
    first of ``category``, else the variant's first), ``workers`` processes at a time (wall
    seconds then include waiting for a shared core); ``variants`` restricts both to those labels.
    """
    runtimes = stored_runtimes(spec, store) if store is not None else {}
    jobs = {v: j for v, j in _pick_jobs(spec, category).items()
            if variants is None or v in variants}
    measured: dict[str, dict[str, Any]] = {}
    if measure and jobs:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(max(1, min(workers, len(jobs))), maxtasksperchild=1) as pool:
            measured = dict(zip(jobs, pool.map(_measure_job, list(jobs.values()), chunksize=1)))
    out = []
    for variant, job in jobs.items():
        times = runtimes.get(variant, [])
        got = measured.get(variant, {})
        status = "not measured"
        if got:
            status = "measured" if got["status"] == "done" else f"failed: {got['error']}"
        out.append(MeasureCost(
            variant=variant, measure=job.measure, jobs=len(times),
            stored_median_s=statistics.median(times) if times else None,
            stored_total_s=sum(times) if times else None,
            pair="~".join(job.systems), site=job.site, wall_s=got.get("wall_s"),
            cpu_s=got.get("cpu_s"), peak_mib=got.get("peak_mib"), status=status))
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_costs(costs: Sequence[MeasureCost]) -> str:
    """The cost table as text."""
    head = ["measure", "jobs", "median s", "total s", "measured pair", "wall s", "cpu s",
            "peak MiB"]
    body = [[c.variant, str(c.jobs), _fmt(c.stored_median_s), _fmt(c.stored_total_s, 0),
             f"{c.pair} ({c.site})", _fmt(c.wall_s), _fmt(c.cpu_s), _fmt(c.peak_mib)]
            for c in costs]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in [head, *body]]
    bad = [c for c in costs if c.status not in ("measured", "not measured")]
    lines += [f"  {c.variant}: {c.status}" for c in bad]
    return "\n".join(lines)


def write_costs_csv(costs: Sequence[MeasureCost], path: str | Path) -> Path:
    """One row per measure variant: stored runtimes and the measured job."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        for c in costs:
            w.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v)
                        for k, v in dataclasses.asdict(c).items()})
    return out


__all__ = ["MeasureCost", "format_costs", "measure_costs", "stored_runtimes",
           "write_costs_csv"]
