"""Executors: where jobs run. Both hand outcomes back to the submitting process, which alone
writes the store, and both run a job with a timeout in a job process (:mod:`.worker`).

- :class:`LocalExecutor` (the default) runs jobs one after another.
- :class:`DaskExecutor` runs them on a ``dask.distributed`` cluster: an existing one
  (``scheduler="tcp://HOST:8786"``) or a ``LocalCluster`` of ``workers`` processes started for
  the run. Workers need simbench, the measures' plugins and the recordings at the same paths
  (a shared file system), exactly as the submitting machine sees them.

Both take jobs from an iterator, lazily: the runner claims each job in the store just before
it is handed over. The Dask executor keeps at most two jobs per worker thread in flight.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from simbench.bench.jobs import Job
from simbench.bench.worker import JobProcess, run_job_guarded, run_job_in
from simbench.errors import SimbenchError

OnStart = Callable[[Job | None, int], None]


class LocalExecutor:
    """Runs each job in order: in this process, or in a job process when it has a timeout."""

    name = "local"

    def __init__(self) -> None:
        self._process = JobProcess()  # started by the first job with a timeout

    def run(self, jobs: Iterable[Job], device: str, on_start: OnStart | None = None
            ) -> Iterator[tuple[Job, dict[str, Any]]]:
        for job in jobs:
            if on_start is not None:
                on_start(job, 1)
            yield job, run_job_in(self._process, job, device)

    def close(self) -> None:
        self._process.kill()


class DaskExecutor:
    """Runs jobs on a Dask cluster; outcomes come back to this process as they finish."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None,
                 connect_timeout: float = 5.0) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - a dependency
            raise SimbenchError(f"dask.distributed is not installed: {exc}",
                                fix="pip install 'dask[distributed]'") from None
        self.cluster = None
        self.futures: dict[Any, Job] = {}
        if scheduler:
            start = time.monotonic()
            try:
                _probe(scheduler, connect_timeout)
                self.client = Client(scheduler, timeout=f"{connect_timeout}s",
                                     set_as_default=False)
            except Exception as exc:
                took = time.monotonic() - start
                raise SimbenchError(
                    f"cannot reach the Dask scheduler at {scheduler} (gave up after "
                    f"{took:.0f} s: {type(exc).__name__}: {exc})", field="scheduler",
                    fix="start one with `dask scheduler` and `dask worker tcp://HOST:8786`, "
                    "check the address and port, or drop --scheduler to run locally") from None
            self.where = scheduler
        else:
            import dask

            n = workers or 2
            # Dask's workers trim malloc at 64 KiB by default, which makes every freed torch
            # buffer go back to the OS and fault in again: 12% slower MAS steps, and a fifth of
            # a paper.toml run's CPU time spent in the kernel. Keep glibc's adaptive default.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_":
                                  None}):
                self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR,
                                            preload=["simbench.runtime"])
            self.client = Client(self.cluster, set_as_default=False)
            self.where = f"LocalCluster({n} workers)"

    def run(self, jobs: Iterable[Job], device: str, on_start: OnStart | None = None
            ) -> Iterator[tuple[Job, dict[str, Any]]]:
        from distributed import as_completed

        source = iter(jobs)
        try:  # jobs in flight: two per worker thread (at least two)
            window = max(2, 2 * sum(self.client.nthreads().values()))
        except Exception:  # pragma: no cover - an old or odd scheduler
            window = 2
        order: list[Any] = []  # the futures in flight, oldest first
        done_ = as_completed(loop=self.client.loop)

        def top_up() -> None:
            while len(order) < window:
                job = next(source, None)
                if job is None:
                    return
                fut = self.client.submit(run_job_guarded, job, device,
                                         key=f"simbench-{job.key}", retries=0)
                self.futures[fut] = job
                order.append(fut)
                done_.add(fut)

        def announce() -> None:
            if on_start is not None:
                on_start(self.futures[order[0]] if order else None, len(order))

        top_up()
        announce()
        for fut in done_:
            job = self.futures.pop(fut)
            order.remove(fut)
            try:
                outcome = fut.result()
            except Exception as exc:  # the worker died, or the job was cancelled
                outcome = {"key": job.key, "status": "failed",
                           "error": f"{type(exc).__name__}: {exc}", "runtime_s": None,
                           "device": device, "host": None}
            fut.release()
            yield job, outcome
            top_up()
            announce()

    def close(self) -> None:
        """Cancel what is still queued, then shut the client (and our LocalCluster) down."""
        with contextlib.suppress(Exception):
            if self.futures:
                self.client.cancel(list(self.futures))
            self.futures.clear()
        with contextlib.suppress(Exception):
            self.client.close()
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close()


def _probe(address: str, timeout: float) -> None:
    """Ask the scheduler who it is, with a hard deadline, before a Client is made.

    A Dask ``Client`` pointed at a blackholed address, or at a port where something else
    listens, can hang well past its own timeout (and again when it is garbage-collected); a
    bare ``identity`` call on a private event loop fails within ``timeout`` seconds instead.
    """
    import asyncio

    from distributed.core import rpc

    async def identity() -> dict[str, Any]:
        r = rpc(address, timeout=timeout)
        try:
            return await asyncio.wait_for(r.identity(), timeout)
        finally:
            await r.close_rpc()

    try:
        info = asyncio.run(asyncio.wait_for(identity(), timeout))
    except (asyncio.TimeoutError, TimeoutError):
        raise OSError(f"no answer within {timeout:.0f} s") from None
    except MemoryError:
        raise OSError("something that is not a Dask scheduler answered") from None
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        raise OSError(f"something that is not a Dask scheduler answered ({str(info)[:80]})")


def make_executor(scheduler: str | None = None, workers: int | None = None
                  ) -> LocalExecutor | DaskExecutor:
    """``--scheduler`` -> an existing Dask cluster; ``--workers N`` -> a LocalCluster; else local."""
    if scheduler or (workers is not None and workers > 0):
        return DaskExecutor(scheduler, workers=workers)
    return LocalExecutor()
