"""Running a spec: skip what the store has, run the rest, write each outcome as it arrives.

The loop is the same for every executor: outcomes come back to this process, which writes each
in its own transaction. A job that raises is stored as ``failed`` (with its error text) and the
run goes on; failed jobs are retried only with ``retry_failed``. Ctrl-C stops the run between
two writes: everything finished so far is in the store and a rerun resumes.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
import time
from typing import Any

from simbench.bench.executors import LocalExecutor, make_executor
from simbench.bench.jobs import Job, prepare
from simbench.bench.spec import Spec
from simbench.bench.store import Store


@dataclasses.dataclass
class RunSummary:
    """What a run did, for the message at its end."""

    total: int = 0
    already_done: int = 0
    skipped_failed: int = 0
    ran: int = 0
    done: int = 0
    failed: list[tuple[Job, str]] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0
    store: str = ""
    executor: str = "local"
    by_label: dict[str, LabelProgress] = dataclasses.field(default_factory=dict)

    def render(self) -> str:
        lines = [f"{self.total} jobs: {self.already_done} already in the store, ran {self.ran} "
                 f"({self.done} done, {len(self.failed)} failed) in {self.wall_s:.1f} s on "
                 f"{self.executor}; store: {self.store}"]
        timed = [p for p in self.by_label.values() if p.seconds]
        if timed:
            total = sum(sum(p.seconds) for p in timed) or 1.0
            parts = [f"{p.label} {sum(p.seconds):.1f} s ({100 * sum(p.seconds) / total:.0f}%, "
                     f"{len(p.seconds)} jobs)"
                     for p in sorted(timed, key=lambda p: -sum(p.seconds))]
            lines.append("measure time (all stored results of this spec): " + "; ".join(parts))
        if self.skipped_failed:
            lines.append(f"{self.skipped_failed} previously failed jobs not retried "
                         "(rerun with --retry-failed)")
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
    """Notes every SIGINT during a run (then behaves as the default: KeyboardInterrupt).

    A measure may catch KeyboardInterrupt itself and return early; the flag lets the runner
    refuse to store such a cut-short result as done.
    """

    def __init__(self) -> None:
        self.raised = False
        self.previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


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
    progress: bool | None = None,
) -> RunSummary:
    """Run every job of ``spec`` not yet done in ``store``; return what happened."""
    from tqdm import tqdm

    start = time.perf_counter()
    if jobs is None:
        jobs = prepare(spec)
    status = store.statuses(j.key for j in jobs)
    todo = [j for j in jobs if status.get(j.key) != "done"
            and (retry_failed or status.get(j.key) != "failed")]
    summary = RunSummary(total=len(jobs),
                         already_done=sum(1 for s in status.values() if s == "done"),
                         skipped_failed=0 if retry_failed else
                         sum(1 for s in status.values() if s == "failed"),
                         store=str(store.path))
    store.record_spec(spec.name, None if spec.path is None else str(spec.path), spec.text)
    own = executor is None
    if own and todo:
        executor = make_executor(scheduler, workers)
    elif executor is None:
        executor = LocalExecutor()
    summary.executor = getattr(executor, "where", executor.name)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="job", disable=not show,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def on_start(job: Job | None, in_flight: int) -> None:
        if job is not None:
            extra = f" (+{in_flight - 1} queued)" if in_flight > 1 else ""
            bar.set_postfix_str(f"now: {job.describe()}{extra}", refresh=True)

    stop = _InterruptFlag()
    try:
        for job, outcome in executor.run(todo, device, on_start):
            if stop.raised:
                # Ctrl-C came while this job ran and something inside it (e.g. a training loop
                # that keeps its best state) swallowed it: the result is not a finished one.
                summary.interrupted = True
                break
            store.write(job, outcome, spec=spec.name)
            summary.ran += 1
            if outcome["status"] == "done":
                summary.done += 1
            else:
                summary.failed.append((job, outcome.get("error") or "?"))
            bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        stop.restore()
        bar.close()
        if own:
            executor.close()
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
    seconds: list[float] = dataclasses.field(default_factory=list)

    @property
    def todo(self) -> int:
        return self.total - self.done - self.failed

    @property
    def eta_s(self) -> float | None:
        """Seconds the jobs still to run would take at this label's mean so far (None: no data)."""
        if not self.todo:
            return 0.0
        return sum(self.seconds) / len(self.seconds) * self.todo if self.seconds else None


def _label_of(job: Job) -> str:
    return job.label if job.label == job.measure else f"{job.label} ({job.measure})"


def progress_by_label(jobs: list[Job], store: Store) -> dict[str, LabelProgress]:
    """Per measure label of ``jobs``: counts by status and the stored runtime of each done job."""
    by_key = {j.key: j for j in jobs}
    out: dict[str, LabelProgress] = {}
    for job in jobs:
        out.setdefault(_label_of(job), LabelProgress(_label_of(job))).total += 1
    for row in store.rows(by_key):
        progress = out[_label_of(by_key[row["key"]])]
        if row["status"] != "done":
            progress.failed += 1
            continue
        progress.done += 1
        if row["runtime_s"] is not None:
            progress.seconds.append(float(row["runtime_s"]))
    return out


def render_progress(progress: dict[str, LabelProgress]) -> str:
    """A table of :func:`progress_by_label`, with totals; ETAs are measure time, not wall time."""
    def fmt(seconds: float | None, digits: int = 0) -> str:
        return "?" if seconds is None else f"{seconds:.{digits}f}"

    head = ("label", "jobs", "done", "failed", "to run", "measure s", "mean s", "to run s")
    rows = [head]
    for p in progress.values():
        mean = sum(p.seconds) / len(p.seconds) if p.seconds else None
        rows.append((p.label, str(p.total), str(p.done), str(p.failed), str(p.todo),
                     fmt(sum(p.seconds)), fmt(mean, 1), fmt(p.eta_s)))
    etas = [p.eta_s for p in progress.values()]
    rows.append(("all", *(str(sum(getattr(p, a) for p in progress.values()))
                          for a in ("total", "done", "failed", "todo")),
                 fmt(sum(sum(p.seconds) for p in progress.values())), "",
                 fmt(None if None in etas else sum(etas))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)
