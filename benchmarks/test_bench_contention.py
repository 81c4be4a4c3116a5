"""The MAS training step on a CPU another process is using, with today's and the new thread settings.

One run measures four figures for the ``benchmarks/test_bench_mas.py`` step (two Multi-Object
GRUs, hidden site, k = 32, batch 128 per direction, all 4 directions):

- ``today_idle`` and ``new_idle``: torch's default threads and OpenMP wait policy, against
  :func:`simbench.runtime.configure_threads` before torch loads and
  :func:`simbench.runtime.adapt_threads` before every step (as the engine's training loop does);
- ``today_busy`` and ``new_busy``: the same while a competing process (a 2-thread torch matmul
  loop, as a second terminal or notebook would run) uses the same cores. The benchmark starts it
  before the busy phase and kills it after.

Thread settings such as the OpenMP wait policy are read once, when torch loads, so each
configuration runs in a child process of its own that sets them up before it imports torch.
The children build the engine once, then take turns: in each round every child runs a burst of
steps while the others wait on a pipe (asleep, using no CPU). Interleaving the bursts means
slow drifts of the machine's background load hit every configuration alike; each figure is the
median over all its timed steps. Each burst starts with ``settle_s`` seconds of untimed steps,
so that caches are warm again and the adaptive settings judge the load of this phase, not the
other children's bursts. ``extra_info`` records the thread counts each configuration ran with
(``*_threads``) and the cores used by processes outside the benchmark during each phase
(``others_cores_idle``, ``others_cores_busy``; the competing process's own share is
``hog_cores``): figures taken while ``others_cores`` is well above 0 are not an idle machine's.

Targets: ``new_busy_over_idle`` at most 2.5, ``new_idle_over_today_idle`` at most 1.1.

Run on an otherwise idle machine (about 2 minutes with 2 cores)::

    .venv/bin/pytest benchmarks/test_bench_contention.py --benchmark-enable --benchmark-only -s

``SIMBENCH_CONTENTION_ROUNDS`` (default 6), ``SIMBENCH_CONTENTION_BURST`` (default 6 timed steps
per round) and ``SIMBENCH_CONTENTION_SETTLE_S`` (default 1.5) set the amount of work;
``SIMBENCH_CONTENTION_ALL=1`` adds two fixed alternatives for comparison (one thread, and
OpenMP's passive wait policy); ``SIMBENCH_CONTENTION_ASSERT=1`` fails the run when a target is
missed.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Variables that change torch's threads or OpenMP's waiting. Children and the competing process
#: start without any of the caller's, so each configuration is exactly what it says.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_DYNAMIC", "OMP_WAIT_POLICY",
               "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

#: name -> how its child sets up: ``env`` is added to the child's environment, ``configure``
#: calls ``simbench.runtime.configure_threads()`` before torch is imported.
CONFIGS: dict[str, dict[str, Any]] = {
    "today": {"env": {}, "configure": False},
    "new": {"env": {}, "configure": True},
}

#: Fixed alternatives, for comparison (``SIMBENCH_CONTENTION_ALL=1``): one thread throughout,
#: and torch's default threads with OpenMP's passive wait policy.
CANDIDATES: dict[str, dict[str, Any]] = {
    "one_thread": {"env": {"OMP_NUM_THREADS": "1"}},
    "passive": {"env": {"OMP_WAIT_POLICY": "PASSIVE"}},
}

HOG = """
import torch
torch.set_num_threads(2)
a, b = torch.randn(384, 384), torch.randn(384, 384)
a @ b
print("ready", flush=True)
while True:
    a = torch.tanh(a @ b)
"""


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def _ticks(pid: int | None = None) -> int | None:
    """CPU clock ticks used by process ``pid`` (user + system), or by the whole machine when
    ``pid`` is None; None where /proc cannot say (not Linux, or the process is gone)."""
    try:
        if pid is None:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            return user + nice + system + irq + softirq + steal
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


class Child:
    """One configuration's process: builds the engine, then times bursts of steps on request."""

    def __init__(self, name: str, spec: dict[str, Any], settle_s: float) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.test_bench_contention", json.dumps(spec),
             str(settle_s)],
            cwd=ROOT, env=_clean_env(spec.get("env")), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.info = self._read()
        self.times: dict[str, list[float]] = {}
        self.threads: dict[str, set[int]] = {}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"configuration '{self.name}' exited "
                               f"(status {self.proc.wait()})")
        return json.loads(line)

    def burst(self, phase: str, steps: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        answer = self._read()
        self.times.setdefault(phase, []).extend(answer["times"])
        self.threads.setdefault(phase, set()).update(answer["threads"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_contention(configs: dict[str, dict[str, Any]] | None = None, rounds: int = 6,
                   burst: int = 6, settle_s: float = 1.5) -> dict[str, Any]:
    """Time each configuration idle, then beside a competing process; medians in ms."""
    configs = configs or CONFIGS
    children: list[Child] = []
    hog = None
    out: dict[str, Any] = {"cpus": os.cpu_count(), "rounds": rounds, "burst": burst,
                           "settle_s": settle_s}
    try:
        for name, spec in configs.items():  # one at a time: set-up is not what is measured
            children.append(Child(name, spec, settle_s))
        out["settings"] = {c.name: c.info for c in children}
        for phase in ("idle", "busy"):
            if phase == "busy":
                hog = subprocess.Popen([sys.executable, "-c", HOG], env=_clean_env(),
                                       stdout=subprocess.PIPE, text=True)
                assert hog.stdout is not None
                if hog.stdout.readline().strip() != "ready":
                    raise RuntimeError("the competing process did not start")
                time.sleep(1.0)  # let it reach its steady loop
            pids = [c.proc.pid for c in children] + ([hog.pid] if hog else [])
            own0, all0, t0 = [_ticks(p) for p in pids], _ticks(), time.monotonic()
            for _ in range(rounds):
                for child in children:
                    child.burst(phase, burst)
            own1, all1, elapsed = [_ticks(p) for p in pids], _ticks(), time.monotonic() - t0
            if hog is not None and hog.poll() is not None:
                raise RuntimeError("the competing process died during the busy phase")
            if None not in (all0, all1, *own0, *own1):
                hz = os.sysconf("SC_CLK_TCK")
                others = (all1 - all0 - sum(own1) + sum(own0)) / hz / elapsed  # type: ignore[operator]
                out[f"others_cores_{phase}"] = round(others, 2)
                if hog is not None:
                    out["hog_cores"] = round((own1[-1] - own0[-1]) / hz / elapsed, 2)  # type: ignore[operator]
            if hog is not None:
                hog.kill()
                hog.wait()
                hog = None
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        for child in children:
            child.close()
    for child in children:
        for phase, times in child.times.items():
            out[f"{child.name}_{phase}_ms"] = round(1000 * statistics.median(times), 1)
            out[f"{child.name}_{phase}_min_ms"] = round(1000 * min(times), 1)
            out[f"{child.name}_{phase}_threads"] = sorted(child.threads[phase])
    return out


def ratios(out: dict[str, Any]) -> dict[str, float]:
    """The target ratios: each configuration's busy / idle, and new idle / today's idle."""
    r = {f"{n}_busy_over_idle": out[f"{n}_busy_ms"] / out[f"{n}_idle_ms"]
         for n in ("today", "new")}
    r["new_idle_over_today_idle"] = out["new_idle_ms"] / out["today_idle_ms"]
    r["new_busy_over_today_idle"] = out["new_busy_ms"] / out["today_idle_ms"]
    return {k: round(v, 2) for k, v in r.items()}


@pytest.mark.benchmark(group="contention-mas-step")
def test_step_under_contention(benchmark: Any) -> None:
    env = os.environ.get
    configs = {**CONFIGS, **(CANDIDATES if env("SIMBENCH_CONTENTION_ALL") == "1" else {})}
    kwargs = {"configs": configs, "rounds": int(env("SIMBENCH_CONTENTION_ROUNDS", "6")),
              "burst": int(env("SIMBENCH_CONTENTION_BURST", "6")),
              "settle_s": float(env("SIMBENCH_CONTENTION_SETTLE_S", "1.5"))}
    out = benchmark.pedantic(run_contention, kwargs=kwargs, rounds=1, iterations=1)
    out.update(ratios(out))
    out["targets_met"] = (out["new_busy_over_idle"] <= 2.5
                          and out["new_idle_over_today_idle"] <= 1.1)
    benchmark.extra_info.update(out)
    print("\ncontention", json.dumps(out, indent=1))
    # each child ran what it says: today's is torch's default throughout; the new one adapted
    # between one thread and torch's default
    today, new = out["settings"]["today"], out["settings"]["new"]
    assert today["wait_policy"] is None and today["chosen"] is None
    assert new["chosen"]["source"] == "auto" and new["threads"] == today["threads"]
    assert out["today_idle_threads"] == out["today_busy_threads"] == [today["threads"]]
    assert set(out["new_idle_threads"] + out["new_busy_threads"]) <= set(
        range(1, today["threads"] + 1))
    if env("SIMBENCH_CONTENTION_ASSERT") == "1":
        assert out["targets_met"], out


def _child(spec: dict[str, Any], settle_s: float) -> None:
    """A configuration's process: set up as ``spec`` says, then answer each request for ``n``
    steps on stdin with ``{"times": [seconds per step]}``.

    Each burst first runs untimed steps for ``settle_s`` seconds (at least one): the other
    children ran in between, so caches are cold, OpenMP's workers asleep, and the load the new
    settings judge (:func:`simbench.runtime.adapt_threads`, called once per step as the
    training loop does) must be the load of this phase, not of the other children's bursts.
    """
    adapt: Any = None
    chosen = None
    if spec.get("configure"):
        from simbench import runtime

        chosen = runtime.configure_threads().as_dict()
        adapt = runtime.adapt_threads
    import torch

    from benchmarks.test_bench_mas import GRUS, batches_of, engine_for, training_step

    engine = engine_for(GRUS[:2], n_train=2048, n_val=256, n_test=500, pool_size=1000)
    train_step = training_step(engine, batches_of(engine))

    def step() -> None:
        if adapt is not None:
            adapt()
        train_step()

    for _ in range(3):
        step()
    ceiling = runtime.thread_settings().threads if adapt is not None else None  # type: ignore[union-attr]
    print(json.dumps({"threads": ceiling or torch.get_num_threads(),
                      "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                      "spin_count": os.environ.get("GOMP_SPINCOUNT"), "chosen": chosen}),
          flush=True)
    for line in sys.stdin:
        if adapt is not None:
            runtime.restart_load_window()
        start = time.perf_counter()
        step()
        while time.perf_counter() - start < settle_s:
            step()
        times, used = [], set()
        for _ in range(int(line)):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
            used.add(torch.get_num_threads())
        print(json.dumps({"times": times, "threads": sorted(used)}), flush=True)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]), float(sys.argv[2]))
