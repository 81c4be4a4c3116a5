"""Torch CPU thread settings that stay fast when other programs use the same cores.

The networks simbench trains alignments on are small, so a training step is thousands of short
kernels. With torch's defaults each runs on every core and OpenMP's idle threads spin at every
barrier: fastest on an idle machine, but several to tens of times slower once another process
wants the same cores.

:func:`configure_threads` runs at every entry point (the CLI, :func:`simbench.score`, harness
jobs, Dask workers through :func:`dask_setup`) before anything touches torch. Unless the user
chose a thread count, it leaves torch's defaults alone and :func:`adapt_threads`, called once
per training step, sets torch's intra-op threads about once a second to the cores other
processes leave free (psutil's machine-wide CPU times minus this process's; at least one, at
most torch's default). The zoo's networks give bit-identical results on one thread and on
two, so the choice changes speed, not scores.

A user's choice wins and turns the adaptation off: ``configure_threads(n)`` (the CLI's
``--threads N``, which also holds numpy's BLAS pools to N through threadpoolctl),
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, or a ``torch.set_num_threads`` call made before or
between simbench calls. This module never imports torch itself.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from simbench.errors import ParameterError

#: Environment variables torch reads for its default thread count, in the order it reads them
#: (a later one overrides an earlier one).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

#: Seconds between two looks at the machine's load in :func:`adapt_threads`.
INTERVAL_S = 1.0
#: A look older than this says nothing about the load now: start a new window instead.
STALE_S = 10.0
#: Other processes using more than this many cores (beyond whole cores given up) take a core
#: from torch, given back once they use at most UP_MARGIN (the gap keeps a load near one
#: threshold from switching the count at every look).
DOWN_MARGIN = 0.25
UP_MARGIN = 0.10


@dataclass
class ThreadSettings:
    """What :func:`configure_threads` decided for this process.

    ``source`` says who chose: ``"auto"`` (simbench adapts to the load), ``"threads argument"``
    (``configure_threads(n)`` or ``--threads N``), an environment variable's name, or
    ``"torch.set_num_threads"``. ``threads`` is the fixed count, or torch's default (the most
    :func:`adapt_threads` uses) when ``source`` is ``"auto"``; None until torch is loaded.
    ``used`` holds every count torch ran with since the last :func:`configure_threads`.
    """

    source: str
    threads: int | None
    wait_policy: str | None = field(
        default_factory=lambda: os.environ.get("OMP_WAIT_POLICY") or None)
    used: set[int] = field(default_factory=set)
    switches: int = 0

    @property
    def adaptive(self) -> bool:
        return self.source == "auto"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for a score's provenance (``Score.attrs["threads"]``)."""
        return {"source": self.source, "threads": self.threads, "adaptive": self.adaptive,
                "used": sorted(self.used), "switches": self.switches,
                "omp_wait_policy": self.wait_policy}


@dataclass
class _Governor:
    """:func:`adapt_threads`'s memory: the last look at the machine (its time, the CPU seconds
    of every process and of this one) and the count it set."""

    last: tuple[float, float, float] | None = None
    set_to: int | None = None


_settings: ThreadSettings | None = None
_gov = _Governor()


def configure_threads(explicit: int | None = None) -> ThreadSettings:
    """Choose this process's torch thread settings; cheap, idempotent, never imports torch.

    ``explicit`` (a ``--threads N`` flag) fixes the count, also in the environment, so a torch
    loaded later and child processes (e.g. Dask workers) start with it. Otherwise the first
    call keeps the user's choice (see the module) or lets :func:`adapt_threads` follow the load.
    Later calls keep that choice, notice a ``torch.set_num_threads`` made in between, and start
    a new record of the counts used (for the next score's provenance).
    """
    global _settings
    torch = sys.modules.get("torch")
    if explicit is not None:
        n = _positive(explicit, "threads", "pass --threads N with N >= 1, or leave it out")
        for var in THREAD_VARS:
            if var == "OMP_NUM_THREADS" or var in os.environ:
                os.environ[var] = str(n)
        os.environ.setdefault("MKL_DYNAMIC", "FALSE")  # else MKL caps it at the physical cores
        if torch is not None:
            torch.set_num_threads(n)
        # numpy, imported first by nearly everything, sized its BLAS pool before the variables
        # above were set: threadpoolctl holds the pools already loaded (OpenBLAS, MKL, OpenMP)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
        _settings = ThreadSettings("threads argument", n)
        _gov.set_to = None
    elif _settings is None:
        _settings = _first_settings(torch)
    settings = _sync(_settings, torch)
    restart_load_window()
    settings.used = set() if torch is None else {torch.get_num_threads()}
    settings.switches = 0
    return settings


def thread_settings() -> ThreadSettings | None:
    """The settings :func:`configure_threads` chose, or None before its first call."""
    return _settings


def provenance() -> dict[str, Any]:
    """``{"threads": {...}}`` for a score's attrs: who chose the count, the counts used since
    the last :func:`configure_threads` (torch's count now, when nothing was recorded)."""
    torch = sys.modules.get("torch")
    settings = _sync(_settings if _settings is not None else configure_threads(), torch)
    if torch is not None and not settings.used:
        settings.used.add(torch.get_num_threads())
    return {"threads": settings.as_dict()}


def restore_threads() -> None:
    """Give torch back its default count if :func:`adapt_threads` changed it; call it when a
    score ends, so that a notebook's own torch work afterwards runs as it did before. A count
    the user chose is left alone."""
    torch = sys.modules.get("torch")
    settings = _settings
    if torch is None or settings is None or not settings.adaptive or settings.threads is None:
        return
    now = torch.get_num_threads()
    if _gov.set_to is not None and now != _gov.set_to:
        return  # the user's torch.set_num_threads: _sync will record it
    if now != settings.threads:
        torch.set_num_threads(settings.threads)
    _gov.set_to = settings.threads


def adapt_threads() -> int | None:
    """Follow the machine's load (see the module) about every :data:`INTERVAL_S` seconds; call
    it once per training step (cheap: a clock read). Does nothing when the user fixed the count
    or where psutil cannot read the CPU times. Returns the thread count in effect (None when
    torch is not loaded)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    settings = _sync(_settings if _settings is not None else configure_threads(), torch)
    current = torch.get_num_threads()
    settings.used.add(current)
    if not settings.adaptive or settings.threads is None:
        return current
    now = time.monotonic()
    if _gov.last is not None and now - _gov.last[0] < INTERVAL_S:
        return current
    if _gov.last is not None and now - _gov.last[0] > STALE_S:
        restart_load_window()  # e.g. a notebook between two scores: old news
    seconds = _busy_seconds()
    if seconds is None:
        return current
    if _gov.last is not None:
        then, all_s, own_s = _gov.last
        others = (seconds[0] - all_s) - (seconds[1] - own_s)
        want = choose_threads(others / (now - then), current, settings.threads, _usable_cpus())
        if want != current:
            torch.set_num_threads(want)
            settings.switches += 1
            current = want
        _gov.set_to = current
        settings.used.add(current)
    _gov.last = (now, *seconds)
    return current


def restart_load_window() -> None:
    """Make :func:`adapt_threads` judge the load from the next call on only (e.g. after this
    process sat idle while others ran, which says nothing about the load to come)."""
    _gov.last = None


def choose_threads(others: float, current: int, ceiling: int, cpus: int) -> int:
    """Threads for torch when other processes use ``others`` cores of ``cpus``.

    Each core they occupy beyond :data:`DOWN_MARGIN` costs torch a thread; a thread comes back
    once they leave it free within :data:`UP_MARGIN`. Never below 1 or above ``ceiling``.
    """
    down = cpus - math.ceil(max(0.0, others - DOWN_MARGIN))
    up = cpus - math.ceil(max(0.0, others - UP_MARGIN))
    if down < current:
        current = down
    elif up > current:
        current = up
    return max(1, min(ceiling, current))


def dask_setup(worker: Any = None) -> None:
    """Dask preload hook (``dask worker tcp://HOST:8786 --preload simbench.runtime``): the
    worker's settings before any job loads torch (the nanny's ``OMP_NUM_THREADS=1`` is kept)."""
    configure_threads()


def _first_settings(torch: Any) -> ThreadSettings:
    env = {var: os.environ[var].strip() for var in THREAD_VARS
           if os.environ.get(var, "").strip()}
    if env:
        # torch lets MKL_NUM_THREADS override OMP_NUM_THREADS; name the one that decided
        omp, mkl = env.get("OMP_NUM_THREADS"), env.get("MKL_NUM_THREADS")
        var = "MKL_NUM_THREADS" if mkl is not None and mkl != omp else "OMP_NUM_THREADS"
        n = _positive(env[var], var, f"set {var} to a whole number of threads >= 1, or unset it")
        return ThreadSettings(var, n)
    if torch is None:  # torch's count when it loads will be its default: the ceiling
        return ThreadSettings("auto", None)
    now = torch.get_num_threads()  # loaded already: its default, or the user's choice?
    _gov.set_to = now
    return ThreadSettings("auto" if now in _default_counts() else "torch.set_num_threads", now)


def _sync(settings: ThreadSettings, torch: Any) -> ThreadSettings:
    """Bring ``settings`` up to date with a loaded torch.

    On first sight, torch's count is its own default (the ceiling for adapting) or the count
    that was asked for, unless someone called ``torch.set_num_threads``; afterwards, any count
    other than the one simbench left behind means the user did, and the user's count wins.
    """
    global _settings
    if torch is None:
        return settings
    now = torch.get_num_threads()
    if _gov.set_to is None:  # the first look at torch since this choice was made
        if settings.source == "threads argument" and now != settings.threads:
            torch.set_num_threads(settings.threads)
            now = torch.get_num_threads()
        elif settings.source in THREAD_VARS or (settings.adaptive and settings.threads is None):
            settings.threads = now  # torch's default, or what it made of the variable (MKL caps)
        if now == settings.threads:
            _gov.set_to = now
            return settings
    elif now == _gov.set_to:
        return settings
    _settings = ThreadSettings("torch.set_num_threads", now, settings.wait_policy)
    _gov.set_to = now
    return _settings


def _default_counts() -> set[int]:
    """Counts torch may have picked by itself: its default is the physical cores (the logical
    ones where it cannot tell)."""
    import psutil

    return {os.cpu_count() or 1, psutil.cpu_count(logical=False) or 1}


def _positive(value: object, name: str, fix: str) -> int:
    """``value`` as a count >= 1; a variable may list one count per nesting level ("4,2"):
    torch uses the first."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value.split(",")[0])
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        n = 0
    if isinstance(value, bool) or n < 1:
        raise ParameterError(f"thread count {value!r} is not a whole number >= 1",
                             field=name, fix=fix)
    return n


def _busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds every process has used, steal time included; CPU seconds this process's
    threads have used), from psutil; None where the platform does not report them."""
    import psutil

    try:
        t = psutil.cpu_times()
        own = psutil.Process().cpu_times()
    except (OSError, psutil.Error):  # pragma: no cover - a platform psutil cannot read
        return None
    # guest time is already inside user and nice (as /proc/stat counts it): not added again
    busy = sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))
    return busy, own.user + own.system


def _usable_cpus() -> int:
    """The cores this process may run on (its affinity where the platform has one)."""
    import psutil

    try:
        return len(psutil.Process().cpu_affinity())
    except (AttributeError, OSError, psutil.Error):  # pragma: no cover - e.g. macOS
        return psutil.cpu_count() or 1


def _reset_for_tests() -> None:
    """Forget the settings (tests only: a process configures once)."""
    global _settings
    _settings = None
    _gov.__init__()  # type: ignore[misc]


def progress_shown(stream: Any = None) -> bool:
    """Whether a progress bar should be drawn on ``stream`` (default stderr): on a terminal
    or in a notebook, never into a log file or a pipe, where every update would be a line."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty()) or "ipykernel" in sys.modules
    except (AttributeError, ValueError, OSError):
        return False
