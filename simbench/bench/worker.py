"""What runs a job, in whichever process runs it (this one, a job process, or a Dask worker).

:func:`run_job` never raises for a measure's failure: it returns an outcome dict (plain data, so
it travels back from a Dask worker) that says ``done`` with the score, or ``failed`` with the
error text. Anything a measure raises counts, ``SystemExit`` included (a plugin calling
``sys.exit``); only ``KeyboardInterrupt`` stops the run. Writing the outcome is the submitting
process's business, never the worker's. Systems are resolved once per process
(:func:`simbench.systems.resolve.resolve_cached`); the measure runs under
:func:`simbench.registry.run_measure`, as ``simbench.score`` runs it.

A job with a timeout runs in a :class:`JobProcess`: one persistent child process per executor
(per thread on a Dask worker) that runs jobs one after another and keeps its cache of systems.
The clock starts when the measure starts (loading plugins and systems has its own limit of
five minutes). A job over its timeout has its child killed and is reported failed; the next job
starts a fresh child. Jobs without a timeout run in the calling process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from simbench.errors import SimbenchError

READY_TIMEOUT_S = 300.0  # a fresh job process imports simbench and loads the plugins first


def run_job(job: Any, device: str = "auto", on_ready: Any = None) -> dict[str, Any]:
    """Compute one job; return ``{"key", "status", "score" | "error", "runtime_s", ...}``.

    ``on_ready`` (if given) is called once the plugins are loaded and the systems resolved,
    just before the measure runs: a job process's time limit starts there.
    """
    from simbench.registry import get_registry, run_measure
    from simbench.runtime import configure_threads
    from simbench.systems.resolve import lm_task, resolve_cached

    configure_threads()  # before resolving systems loads torch
    started = time.time()
    t0 = time.perf_counter()
    host = socket.gethostname()
    try:
        if job.plugins:
            from simbench.bench.plugins import ensure_plugins

            ensure_plugins(job.plugins)
        prompts = getattr(job, "prompts", None)
        lm = lm_task(None if prompts is None else list(prompts), getattr(job, "new_tokens", None))
        systems = [resolve_cached(src, job.task, lazy=getattr(job, "lazy", False), lm=lm)
                   for src in job.sources]
        if on_ready is not None:
            on_ready()
        measure = get_registry().registered(job.measure).item  # canonical since the spec
        result = run_measure(measure, systems, site=job.site, task=job.task, seed=job.seed,
                             device=device, params=job.params)
        runtime = time.perf_counter() - t0
        result.attrs["job_key"] = job.key
        if lm is not None and getattr(job, "prompts_origin", ""):
            result.attrs["prompts"] = job.prompts_origin  # the file or generator, not "list"
        return {"key": job.key, "status": "done", "score": result.to_dict(),
                "runtime_s": runtime, "started": started, "host": host,
                "device": str(result.attrs.get("device", device)),
                "measure_s": float(result.attrs.get("runtime_s", runtime))}
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit from a plugin is that job's failure too
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SystemExit):
            text = (f"SystemExit: the measure called sys.exit({exc.code!r}); a measure must "
                    "raise an exception instead")
        return {"key": job.key, "status": "failed", "error": text,
                "traceback": traceback.format_exc(limit=20),
                "runtime_s": time.perf_counter() - t0, "started": started, "host": host,
                "device": device}


def failed(job: Any, error: str, *, runtime_s: float | None = None, device: str = "auto"
           ) -> dict[str, Any]:
    """An outcome for a job that produced none (killed, its process died)."""
    return {"key": job.key, "status": "failed", "error": error, "runtime_s": runtime_s,
            "started": None, "host": socket.gethostname(), "device": device}


class JobProcess:
    """A persistent child process that runs jobs with a time limit (see the module docstring),
    over two private pipes (a measure may print to stdout); it exits when the parent dies."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self._send: Connection | None = None
        self._recv: Connection | None = None

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simbench.bench.child", str(to_child_r),
                 str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._send = Connection(to_child_w, readable=False)
        self._recv = Connection(from_child_r, writable=False)
        self._send.send({"sys_path": list(sys.path)})
        if not self._recv.poll(READY_TIMEOUT_S):
            self.kill()
            raise SimbenchError(f"the job process did not start within {READY_TIMEOUT_S:.0f} s")
        try:
            self._recv.recv()  # "ready": simbench and the installed plugins are imported
        except EOFError:
            code = self.proc.wait() if self.proc is not None else None
            self.kill()
            raise SimbenchError(f"the job process exited while starting (exit code {code})",
                                fix="run `python -m simbench.bench.child` to see why") from None

    def run(self, job: Any, device: str, timeout: float) -> dict[str, Any]:
        """Run ``job`` in the child; kill it after ``timeout`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            try:
                self._start()
            except SimbenchError as exc:
                return failed(job, f"{type(exc).__name__}: {exc.message}", device=device)
        assert self._send is not None and self._recv is not None
        t0 = time.perf_counter()
        try:
            self._send.send((job, device))
            # loading the plugins and the systems has its own, generous limit; then the job's
            if not self._recv.poll(READY_TIMEOUT_S):
                self.kill()
                return failed(job, f"TimeoutError: loading the plugins and systems took over "
                              f"{READY_TIMEOUT_S:.0f} s; the job's process was killed",
                              runtime_s=time.perf_counter() - t0, device=device)
            self._recv.recv()  # "running"
            t0 = time.perf_counter()
            ready = self._recv.poll(timeout)
        except (BrokenPipeError, EOFError, OSError):
            ready = True  # it died: reported below
        if not ready:
            self.kill()
            return failed(job, f"TimeoutError: timed out after {timeout:g} s; the job's process "
                          "was killed (--job-timeout SECONDS sets the limit, 0 removes it)",
                          runtime_s=time.perf_counter() - t0, device=device)
        try:
            return self._recv.recv()
        except (EOFError, OSError):
            code = self.proc.wait() if self.proc is not None else None
            self.kill()
            return failed(job, f"WorkerDied: the job's process exited (exit code {code}) "
                          "before returning a result", runtime_s=time.perf_counter() - t0,
                          device=device)

    def kill(self) -> None:
        """Stop the child now (SIGKILL: a stuck measure may ignore anything gentler)."""
        for conn in (self._send, self._recv):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()
        self._send = self._recv = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc = None


_LOCAL = threading.local()


def run_job_in(proc: JobProcess, job: Any, device: str = "auto") -> dict[str, Any]:
    """:func:`run_job`: in ``proc`` when the job has a timeout, else in this process."""
    if job.timeout is None:
        return run_job(job, device)
    return proc.run(job, device, job.timeout)


def run_job_guarded(job: Any, device: str = "auto") -> dict[str, Any]:
    """What a Dask worker runs: :func:`run_job_in` this thread's own job process."""
    if getattr(_LOCAL, "proc", None) is None:
        _LOCAL.proc = JobProcess()
    return run_job_in(_LOCAL.proc, job, device)


def child_main(read_fd: int, write_fd: int) -> None:
    """The job process: receive (job, device), send the outcome, until the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    parent = os.getppid()

    def watch_parent() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    recv = Connection(read_fd, writable=False)
    send = Connection(write_fd, readable=False)
    try:
        init = recv.recv()
    except EOFError:
        return
    for entry in init.get("sys_path", []):
        if entry not in sys.path:
            sys.path.append(entry)
    import simbench.systems.resolve  # noqa: F401  (the cost of importing is not the first job's)
    from simbench.registry import get_registry

    get_registry()
    send.send("ready")
    told: list[bool] = []

    def ready() -> None:
        told.append(True)
        send.send("running")

    while True:
        try:
            job, device = recv.recv()
        except (EOFError, OSError):
            return
        told.clear()
        outcome = run_job(job, device, ready)
        if not told:  # it failed while loading: nothing left to time
            send.send("running")
        send.send(outcome)
