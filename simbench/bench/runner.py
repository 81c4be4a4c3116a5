"""Running a spec: skip what the store has, run the rest, write each outcome as it arrives.

The loop is the same for every executor: outcomes come back to this process, which writes each
in its own transaction. A job that raises is stored as ``failed`` (with its error text) and the
run goes on; failed jobs are retried only with ``retry_failed``, stale ones (computed by other
code) are recomputed only with ``rerun_stale``. Ctrl-C stops the run between two writes:
everything finished so far is in the store and a rerun resumes. Each job is claimed in the
store just before it runs (:meth:`Store.claim`), so runs that share a store share the work;
jobs another live run holds are waited for, then counted. Time limits: :func:`set_timeouts`.
"""

from __future__ import annotations

import collections
import dataclasses
import signal
import sys
import threading
import time
from typing import Any

from simbench.bench.executors import LocalExecutor, make_executor
from simbench.bench.jobs import Job, prepare
from simbench.bench.meta import record_measures
from simbench.bench.spec import Spec
from simbench.bench.store import LeaseKeeper, Owner, Store, job_state, lease_seconds

DEFAULT_TIMEOUTS = {"causal": 3600.0}  # seconds, by measure family; others: no limit

#: Seconds a job is expected to take when the store has never run it nor its measure: by
#: measure family (paper.toml on 2 cores: causal jobs 0.5-20 minutes, correlative ones seconds).
PRIOR_SECONDS = {"causal": 120.0}
PRIOR_OTHER_S = 5.0
#: How much longer a causal job takes when it patches every step (``stepwise``: about 2x);
#: the systems' architectures scale it by their registered cost weight (a transformer: 6x).
STEPWISE_FACTOR = 2.0


@dataclasses.dataclass
class RunSummary:
    """What a run did, for the message at its end."""

    store: str = ""
    total: int = 0
    already_done: int = 0
    ran: int = 0
    done: int = 0
    failed: list[tuple[Job, str]] = dataclasses.field(default_factory=list)
    by_others: int = 0  # jobs another run computed while this one was going
    stale: int = 0  # stored results of this spec computed by other code, not rerun
    skipped_failed: int = 0
    interrupted: bool = False
    wall_s: float = 0.0
    executor: str = "local"
    by_label: dict[str, LabelProgress] = dataclasses.field(default_factory=dict)

    def render(self) -> str:
        others = f", {self.by_others} done by another run" if self.by_others else ""
        lines = [f"{self.total} jobs: {self.already_done} already in the store, ran {self.ran} "
                 f"({self.done} done, {len(self.failed)} failed){others} in {self.wall_s:.1f} s "
                 f"on {self.executor}; store: {self.store}"]
        timed = [p for p in self.by_label.values() if p.seconds]
        if timed:
            total = sum(p.measure_s for p in timed) or 1.0
            parts = [f"{p.label} {p.measure_s:.1f} s ({100 * p.measure_s / total:.0f}%, "
                     f"{len(p.seconds)} jobs)" for p in sorted(timed, key=lambda p: -p.measure_s)]
            lines.append("measure time (all stored results of this spec): " + "; ".join(parts))
        if self.skipped_failed:
            lines.append(f"{self.skipped_failed} previously failed jobs not retried "
                         "(rerun with --retry-failed)")
        if self.stale:
            lines.append(f"{self.stale} stored results are stale (computed by other code: "
                         "simbench or the measure's files changed); they are kept, marked "
                         "stale, until you rerun with --rerun-stale")
        if self.failed:
            lines.append("failures:")
            for job, error in self.failed:
                first = (error or "").strip().splitlines()[0] if error else "?"
                lines.append(f"  - {job.describe()}: {first}")
        if self.interrupted:
            lines.append("interrupted: finished results are kept; run the same command again "
                         "to resume")
        return "\n".join(lines)


class _InterruptFlag:
    """Notes every SIGINT or SIGTERM during a run (then raises KeyboardInterrupt, as Ctrl-C).

    A measure may catch KeyboardInterrupt itself and return early; the flag lets the runner
    refuse to store such a cut-short result as done.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.raised = False
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def set_timeouts(jobs: list[Job], job_timeout: float | None = None, spec: Spec | None = None
                 ) -> None:
    """Give each job its time limit; 0 means none.

    The first that is set wins: ``job_timeout`` (``--job-timeout``), the job's measure table
    (``[measures.X] job_timeout``), the spec (top-level ``job_timeout``), the default of the
    measure's family (:data:`DEFAULT_TIMEOUTS`). A job over its limit is killed and stored as
    failed; the limit counts the measure's own computation, not loading plugins and systems.
    """
    for job in jobs:
        limit = job_timeout
        if limit is None and spec is not None:
            limit = spec.timeout_for(job.label)
        if limit is None:
            limit = DEFAULT_TIMEOUTS.get(job.meta.get("family", ""))
        job.timeout = float(limit) if limit else None


def expected_seconds(jobs: list[Job], store: Store | None = None, spec: Spec | None = None
                     ) -> dict[str, float]:
    """Job key -> the seconds it is expected to take, for ordering a run longest first.

    The first that is known wins: the store's runtime of the same job (same variant, systems
    and site, by any code: a code change moves runtimes far less than the spread between jobs),
    the store's mean runtime of the same measure at the same site, a prior by measure family
    (:data:`PRIOR_SECONDS`) scaled by the systems' architectures' cost weight
    (:class:`simbench.zoo.archs.Arch`) and up for ``stepwise`` patching.
    """
    same: dict[tuple[Any, ...], float] = {}
    by_measure: dict[tuple[str, str], list[float]] = {}
    if store is not None:
        for row in store.rows(status="done"):
            seconds = row.get("runtime_s")
            if seconds is None:
                continue
            same[(row["variant"], row["measure"], tuple(row["systems"]),
                  row["site"])] = float(seconds)
            by_measure.setdefault((row["measure"], row["site"]), []).append(float(seconds))
    systems = getattr(spec, "systems", None) or {}
    out = {}
    for job in jobs:
        known = same.get((job.variant, job.measure, job.systems, job.site))
        if known is None and (job.measure, job.site) in by_measure:
            runs = by_measure[(job.measure, job.site)]
            known = sum(runs) / len(runs)
        if known is None:
            family = job.meta.get("family", "")
            known = PRIOR_SECONDS.get(family, PRIOR_OTHER_S)
            if family == "causal":
                known *= _cost_weight({systems[a].tags.get("arch") for a in job.systems
                                       if a in systems})
                if job.params.get("stepwise"):
                    known *= STEPWISE_FACTOR
        out[job.key] = known
    return out


def _cost_weight(tags: set[Any]) -> float:
    """The largest registered cost weight among architecture tags (1 without any)."""
    tags.discard(None)
    if not tags:
        return 1.0
    from simbench.zoo.archs import find_arch

    return max((a.cost_weight for a in map(find_arch, tags) if a is not None), default=1.0)


def longest_first(jobs: list[Job], store: Store | None = None, spec: Spec | None = None
                  ) -> list[Job]:
    """``jobs`` in order of expected cost, longest first (ties keep their spec order).

    With several workers a run ends when its last job does: started late, one long job (a
    transformer MAS pair) runs alone at the end while the other workers idle. Starting the
    long jobs first and filling in with short ones (the LPT rule) keeps every worker busy to
    the end. Which job runs when never changes a score: every job is seeded on its own.
    """
    cost = expected_seconds(jobs, store, spec)
    return sorted(jobs, key=lambda j: -cost[j.key])


def run_spec(
    spec: Spec,
    store: Store,
    *,
    jobs: list[Job] | None = None,
    executor: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    device: str = "auto",
    retry_failed: bool = False,
    rerun_stale: bool = False,
    job_timeout: float | None = None,
    lease_s: float | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Run every job of ``spec`` not yet done in ``store``; return what happened."""
    from tqdm import tqdm

    start = time.perf_counter()
    if jobs is None:
        jobs = prepare(spec)
    set_timeouts(jobs, job_timeout, spec)
    lease = lease_seconds() if lease_s is None else lease_s
    stored = store.states(j.key for j in jobs)
    states = {j.key: job_state(j, stored.get(j.key), retry_failed, rerun_stale) for j in jobs}
    todo = longest_first([j for j in jobs if states[j.key] == "todo"], store, spec)
    counts = collections.Counter(states.values())
    summary = RunSummary(total=len(jobs), already_done=counts["done"],
                         skipped_failed=counts["failed"], stale=counts["stale"],
                         store=str(store.path))
    store.record_spec(spec.name, None if spec.path is None else str(spec.path), spec.text)
    store.record_jobs(spec.name, jobs)
    record_measures(spec, store)  # boards of this store then need no plugin code
    own = executor is None
    if own:
        executor = make_executor(scheduler, workers) if todo else LocalExecutor()
    summary.executor = getattr(executor, "where", executor.name)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="job", disable=not show,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def on_start(job: Job | None, in_flight: int) -> None:
        if job is not None:
            extra = f" (+{in_flight - 1} queued)" if in_flight > 1 else ""
            bar.set_postfix_str(f"now: {job.describe()}{extra}", refresh=True)

    owner = Owner.here()
    keeper = LeaseKeeper(store.path, owner, lease) if todo else None
    busy: list[tuple[Job, dict[str, Any] | None]] = []

    def claimed(candidates: list[Job]) -> Any:
        """The jobs of ``candidates`` this run claims, one at a time, as the executor asks."""
        for job in candidates:
            state, holder = store.claim(job, owner, lease_s=lease, retry_failed=retry_failed,
                                        rerun_stale=rerun_stale)
            if state == "claimed":
                yield job
            elif state == "busy":
                busy.append((job, holder))
            else:  # another run finished it meanwhile
                summary.by_others += 1
                bar.update(1)

    stop = _InterruptFlag()
    pending = todo
    try:
        while pending:
            busy.clear()
            for job, outcome in executor.run(claimed(pending), device, on_start):
                if stop.raised:
                    # Ctrl-C came while this job ran and something inside it (e.g. a training
                    # loop that keeps its best state) swallowed it: not a finished result.
                    summary.interrupted = True
                    break
                store.write(job, outcome, spec=spec.name, owner=owner)
                summary.ran += 1
                if outcome["status"] == "done":
                    summary.done += 1
                else:
                    summary.failed.append((job, outcome.get("error") or "?"))
                bar.update(1)
            if summary.interrupted:
                break
            pending = [job for job, _ in busy]
            if pending:
                holders = sorted({f"pid {h['pid']} on {h['host']}" for _, h in busy if h})
                bar.set_postfix_str(f"waiting for {len(pending)} jobs another run is computing "
                                    f"({', '.join(holders)})", refresh=True)
                time.sleep(min(1.0, lease / 4))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        stop.restore()
        bar.close()
        if keeper is not None:
            keeper.stop()
        if own:
            executor.close()
        if todo:
            store.release(owner)
    summary.wall_s = time.perf_counter() - start
    summary.by_label = progress_by_label(jobs, store)
    return summary


@dataclasses.dataclass
class LabelProgress:
    """How far one measure label of a spec has got, and what its finished jobs cost."""

    label: str  # ``mas`` or, for a label naming another measure, ``mas_k (mas)``
    total: int = 0
    done: int = 0
    failed: int = 0
    stale: int = 0  # stored, but computed by other code (not counted in done or failed)
    seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def todo(self) -> int:
        return self.total - self.done - self.failed - self.stale

    @property
    def measure_s(self) -> float:
        return sum(self.seconds)

    @property
    def mean_s(self) -> float | None:
        return self.measure_s / len(self.seconds) if self.seconds else None

    @property
    def eta_s(self) -> float | None:
        """Seconds the jobs still to run would take at this label's mean so far (None: no data)."""
        if not self.todo:
            return 0.0
        return None if self.mean_s is None else self.mean_s * self.todo


def label_text(label: str, measure: str) -> str:
    """``mas`` or, for a label naming another measure, ``mas_k (mas)``."""
    return label if label == measure else f"{label} ({measure})"


def tally(entries: list[tuple[str, str, str | None]], rows: list[dict[str, Any]]
          ) -> dict[str, LabelProgress]:
    """Per label: jobs, done, failed and stale, from (key, label, current fingerprint) entries
    and the stored rows of those keys. A row is stale when it has no fingerprint (written before
    simbench recorded one) or one that differs from the current one (None: not known, so only
    rows without a fingerprint are stale)."""
    want = {key: (label, fprint) for key, label, fprint in entries}
    out: dict[str, LabelProgress] = {}
    for _key, label, _f in entries:
        out.setdefault(label, LabelProgress(label)).total += 1
    for row in rows:
        if row["key"] not in want:
            continue
        label, fprint = want[row["key"]]
        progress = out[label]
        have = row.get("code_fingerprint")
        if have is None or (fprint is not None and have != fprint):
            progress.stale += 1
        elif row["status"] != "done":
            progress.failed += 1
        else:
            progress.done += 1
        if row["status"] == "done" and row["runtime_s"] is not None:
            progress.seconds.append(float(row["runtime_s"]))  # stale ones still time the job
    return out


def progress_by_label(jobs: list[Job], store: Store) -> dict[str, LabelProgress]:
    """Per measure label of ``jobs``: counts by status and the stored runtime of each done job."""
    entries = [(j.key, label_text(j.label, j.measure), j.code_fingerprint or None) for j in jobs]
    return tally(entries, store.rows({j.key for j in jobs}))


def render_progress(progress: dict[str, LabelProgress]) -> str:
    """A table of :func:`progress_by_label`, with totals; ETAs are measure time, not wall time."""
    def fmt(seconds: float | None, digits: int = 0) -> str:
        return "?" if seconds is None else f"{seconds:.{digits}f}"

    head = ("label", "jobs", "done", "failed", "stale", "to run", "measure s", "mean s",
            "to run s")
    rows = [head, *((p.label, str(p.total), str(p.done), str(p.failed), str(p.stale),
                     str(p.todo), fmt(p.measure_s), fmt(p.mean_s, 1), fmt(p.eta_s))
                    for p in progress.values())]
    etas = [p.eta_s for p in progress.values()]
    rows.append(("all", *(str(sum(getattr(p, a) for p in progress.values()))
                          for a in ("total", "done", "failed", "stale", "todo")),
                 fmt(sum(p.measure_s for p in progress.values())), "",
                 fmt(None if None in etas else sum(etas))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)
