"""What runs a job, in whichever process runs it (this one, or a Dask worker).

:func:`run_job` never raises for a measure's failure: it returns an outcome dict (plain data, so
it travels back from a Dask worker) that says ``done`` with the score, or ``failed`` with the
error text. Writing the outcome is the submitting process's business, never the worker's.
Resolved systems are cached per process, so a worker loads each recording or model once.
"""

from __future__ import annotations

import os
import platform
import socket
import time
import traceback
from typing import Any

from simbench.errors import SimbenchError

_SYSTEMS: dict[tuple[str, str | None, int], Any] = {}


def resolve_cached(source: str, task: str | None) -> Any:
    """``resolve_system(source)``, cached on (source, task, file mtime)."""
    from simbench.api import resolve_system

    try:
        stamp = os.stat(source).st_mtime_ns
    except OSError:
        stamp = 0
    key = (source, task, stamp)
    if key not in _SYSTEMS:
        try:
            _SYSTEMS[key] = resolve_system(source, task=task)
        except SimbenchError:
            raise
        except Exception as exc:  # e.g. a zoo that is not installed yet
            raise SimbenchError(f"cannot resolve system '{source}': {type(exc).__name__}: "
                                f"{exc}") from None
    return _SYSTEMS[key]


def run_job(job: Any, device: str = "auto") -> dict[str, Any]:
    """Compute one job; return ``{"key", "status", "score" | "error", "runtime_s", ...}``."""
    from simbench.api import score

    started = time.time()
    t0 = time.perf_counter()
    host = socket.gethostname()
    try:
        if job.plugins:
            from simbench.bench.plugins import ensure_plugins

            ensure_plugins(job.plugins)
        systems = [resolve_cached(src, job.task) for src in job.sources]
        result = score(job.measure, *systems, site=job.site, task=job.task, seed=job.seed,
                       device=device, **job.params)
        runtime = time.perf_counter() - t0
        result.attrs["job_key"] = job.key
        return {"key": job.key, "status": "done", "score": result.to_dict(),
                "runtime_s": runtime, "started": started, "host": host,
                "device": str(result.attrs.get("device", device)),
                "measure_s": float(result.attrs.get("runtime_s", runtime))}
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        return {"key": job.key, "status": "failed", "error": text,
                "traceback": traceback.format_exc(limit=20),
                "runtime_s": time.perf_counter() - t0, "started": started, "host": host,
                "device": device}


def machine() -> str:
    return f"{platform.node()} ({platform.machine()})"
