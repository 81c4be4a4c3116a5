"""Torch thread settings: a user's choice wins, settings reach torch before it loads, calls are
idempotent, and the adaptive count drops to one thread while other processes use the cores.

Settings that torch reads when it loads are tested in fresh Python processes (this one may have
loaded torch already); choices made after torch is loaded are tested here too, with the test
process's own torch threads restored afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simbench import runtime
from simbench.errors import ParameterError, SimbenchError

ROOT = Path(__file__).resolve().parents[1]
#: Everything that changes torch's threads or OpenMP's waiting; children start without them.
CONTROLLED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_DYNAMIC", "OMP_WAIT_POLICY",
              "GOMP_SPINCOUNT")


def child(code: str, stderr: list[str] | None = None, **env: str) -> Any:
    """Run ``code`` in a fresh interpreter (no thread variables but ``env``); its last stdout
    line, parsed as JSON (its stderr lines appended to ``stderr`` if given)."""
    full = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    full.update(env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    if stderr is not None:
        stderr.extend(line.strip() for line in done.stderr.splitlines())
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh() -> Iterator[None]:
    """This process's runtime state forgotten, thread variables unset; both restored after."""
    import torch

    saved_env = {var: os.environ.pop(var) for var in CONTROLLED if var in os.environ}
    before = torch.get_num_threads()
    runtime._reset_for_tests()
    try:
        yield
    finally:
        torch.set_num_threads(before)
        runtime._reset_for_tests()
        for var in CONTROLLED:
            os.environ.pop(var, None)
        os.environ.update(saved_env)


@pytest.mark.slow  # a fresh interpreter that imports torch
def test_auto_settings_reach_torch_when_it_loads_later() -> None:
    got = child("""
        import json, os, sys
        from simbench.runtime import configure_threads, provenance
        s = configure_threads()
        loaded_early = "torch" in sys.modules
        import torch
        p = provenance()["threads"]
        print(json.dumps([loaded_early, s.source, torch.get_num_threads(),
                          torch.get_num_threads() == p["threads"], p,
                          os.environ.get("OMP_NUM_THREADS")]))
    """)
    loaded_early, source, threads, same, prov, env = got
    assert loaded_early is False  # configuring costs no torch import
    assert source == "auto" and same
    assert prov == {"source": "auto", "threads": threads, "adaptive": True, "used": [threads],
                    "switches": 0, "omp_wait_policy": None}
    assert env is None  # auto leaves the environment (and so child processes) alone


@pytest.mark.slow  # a fresh interpreter that imports torch
def test_explicit_count_reaches_torch_and_child_processes() -> None:
    got = child("""
        import json, os, subprocess, sys
        from simbench.runtime import configure_threads
        configure_threads(3)
        import torch
        kid = subprocess.run([sys.executable, "-c",
                              "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True)
        print(json.dumps([torch.get_num_threads(), int(kid.stdout), configure_threads().source,
                          os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]]))
    """, MKL_NUM_THREADS="5")
    # MKL_NUM_THREADS would override OMP_NUM_THREADS in torch: the explicit count sets both
    assert got == [3, 3, "threads argument", "3", "3"]


@pytest.mark.slow  # a fresh interpreter that imports torch
def test_environment_count_wins_and_wait_policy_is_recorded() -> None:
    """The recorded wait policy is the one OpenMP started with: it reads its variables once,
    when torch loads (``OMP_DISPLAY_ENV`` makes it print them then)."""
    openmp: list[str] = []
    got = child("""
        import json
        from simbench import runtime
        runtime.INTERVAL_S = 0.0
        s = runtime.configure_threads()
        import torch
        counts = [runtime.adapt_threads() for _ in range(3)]
        print(json.dumps([s.source, s.threads, torch.get_num_threads(), counts,
                          runtime.provenance()["threads"]["omp_wait_policy"]]))
    """, openmp, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", OMP_DISPLAY_ENV="TRUE")
    assert got == ["OMP_NUM_THREADS", 1, 1, [1, 1, 1], "PASSIVE"]
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in openmp and "OMP_NUM_THREADS = '1'" in openmp


@pytest.mark.slow  # a fresh interpreter that imports torch
def test_mkl_variable_overrides_omp_variable_as_in_torch() -> None:
    got = child("""
        import json
        from simbench.runtime import configure_threads
        s = configure_threads()
        import torch
        print(json.dumps([s.source, s.threads, torch.get_num_threads()]))
    """, OMP_NUM_THREADS="3", MKL_NUM_THREADS="2")
    assert got == ["MKL_NUM_THREADS", 2, 2]


def test_omp_per_level_list_uses_its_first_count() -> None:
    got = child("""
        import json
        from simbench.runtime import configure_threads
        print(json.dumps(configure_threads().threads))
    """, OMP_NUM_THREADS="2,1")
    assert got == 2


@pytest.mark.parametrize("value", ["abc", "0", "-2"])
def test_bad_environment_count_names_the_variable(value: str) -> None:
    got = child("""
        import json
        from simbench.runtime import configure_threads
        from simbench.errors import SimbenchError
        try:
            configure_threads()
        except SimbenchError as exc:
            print(json.dumps([exc.field, exc.fix]))
    """, OMP_NUM_THREADS=value)
    assert got[0] == "OMP_NUM_THREADS" and "OMP_NUM_THREADS" in got[1]


@pytest.mark.slow
@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_bad_explicit_count_is_a_parameter_error(fresh: None, value: Any) -> None:
    with pytest.raises(ParameterError) as info:
        runtime.configure_threads(value)
    assert info.value.field == "threads" and "--threads" in (info.value.fix or "")
    assert isinstance(info.value, SimbenchError)


def test_idempotent_and_explicit_choice_sticks(fresh: None) -> None:
    import numpy as np
    import torch

    first = runtime.configure_threads(np.int64(1))  # any whole number, e.g. from a config
    assert type(first.threads) is int
    env = dict(os.environ)
    again = [runtime.configure_threads() for _ in range(3)]
    assert all(s is first for s in again)
    assert dict(os.environ) == env
    assert first.source == "threads argument" and torch.get_num_threads() == 1
    runtime.INTERVAL_S, saved = 0.0, runtime.INTERVAL_S
    try:
        assert [runtime.adapt_threads() for _ in range(3)] == [1, 1, 1]
    finally:
        runtime.INTERVAL_S = saved


def test_set_num_threads_before_the_first_call_wins(fresh: None) -> None:
    import torch

    odd = max(runtime._default_counts()) + 1  # no default torch would pick by itself
    torch.set_num_threads(odd)
    s = runtime.configure_threads()
    assert (s.source, s.threads, s.adaptive) == ("torch.set_num_threads", odd, False)


def test_set_num_threads_between_calls_wins(fresh: None) -> None:
    import torch

    torch.set_num_threads(max(runtime._default_counts()))
    assert runtime.configure_threads().adaptive
    torch.set_num_threads(1)  # the user, between two scores
    runtime.INTERVAL_S, saved = 0.0, runtime.INTERVAL_S
    try:
        counts = [runtime.adapt_threads() for _ in range(3)]
    finally:
        runtime.INTERVAL_S = saved
    s = runtime.thread_settings()
    assert s is not None and (s.source, s.threads) == ("torch.set_num_threads", 1)
    assert counts == [1, 1, 1] and torch.get_num_threads() == 1
    assert runtime.configure_threads().source == "torch.set_num_threads"


def test_restore_leaves_a_users_count_alone(fresh: None) -> None:
    import torch

    torch.set_num_threads(max(runtime._default_counts()))
    runtime.configure_threads()
    torch.set_num_threads(1)  # the user, after configuring
    runtime.restore_threads()
    assert torch.get_num_threads() == 1
    assert runtime.provenance()["threads"]["source"] == "torch.set_num_threads"


def test_provenance_is_plain_data_for_a_score(fresh: None) -> None:
    import torch

    from simbench.result import Score

    torch.set_num_threads(max(runtime._default_counts()))
    runtime.configure_threads()
    score = Score(measure="m", value=0.5, systems=("a", "b"), attrs=runtime.provenance())
    back = Score.from_dict(json.loads(score.to_json()))
    assert back.attrs["threads"]["source"] == "auto"
    assert back.attrs["threads"]["used"] == [torch.get_num_threads()]


@pytest.mark.parametrize(("others", "current", "want"), [
    (0.0, 2, 2), (0.2, 2, 2), (0.3, 2, 1), (1.9, 2, 1),  # down past 0.25 of a core
    (0.2, 1, 1), (0.12, 1, 1), (0.05, 1, 2),  # back up only below 0.10: no flapping between
    (5.0, 8, 3), (2.2, 8, 6), (0.0, 3, 8), (7.9, 8, 1),  # larger machines keep the rest
])
def test_choose_threads_leaves_other_processes_their_cores(others: float, current: int,
                                                           want: int) -> None:
    cpus = 8 if current > 2 or want > 2 else 2
    assert runtime.choose_threads(others, current, ceiling=cpus, cpus=cpus) == want


def test_an_explicit_count_holds_the_blas_pool_numpy_loaded(fresh: None) -> None:
    """numpy sized its BLAS pool when it loaded; ``--threads 1`` reaches it all the same."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(limits=None):  # this process's pools restored afterwards
        runtime.configure_threads(1)
        pools = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert pools and set(pools) == {1}


def test_choose_threads_stays_within_torch_default() -> None:
    assert runtime.choose_threads(0.0, 1, ceiling=4, cpus=16) == 4


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_adapts_to_one_thread_while_other_processes_use_every_core() -> None:
    """Real competing processes (pure-Python busy loops, one per core): within a few looks the
    adaptive count falls from torch's default to one thread."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        got = child("""
            import json, time
            from simbench import runtime
            runtime.INTERVAL_S = 0.3
            runtime.configure_threads()
            import torch
            start, counts = torch.get_num_threads(), []
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                counts.append(runtime.adapt_threads())
                time.sleep(0.02)
            prov = runtime.provenance()["threads"]
            runtime.restore_threads()  # the score is over: torch's default again
            print(json.dumps([start, counts[-1], prov, torch.get_num_threads(),
                              runtime.provenance()["threads"]["used"]]))
        """)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    start, last, prov, restored, used_after = got
    assert start >= 2 and last == 1 and restored == start
    assert prov["used"] == used_after == [1, start]
    assert prov["switches"] >= 1 and prov["adaptive"]


def test_help_and_configuring_do_not_import_torch() -> None:
    got = child("""
        import contextlib, io, json, sys
        from simbench.runtime import configure_threads, dask_setup, provenance
        configure_threads()
        dask_setup(None)
        provenance()
        from simbench.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        print(json.dumps("torch" in sys.modules))
    """)
    assert got is False


@pytest.mark.slow  # a Dask cluster: fresh worker processes
def test_dask_preload_configures_each_worker() -> None:
    """``--preload simbench.runtime`` as for workers started by hand: the hook runs in the
    worker process, which keeps the one thread Dask's nanny sets."""
    distributed = pytest.importorskip("distributed")
    import logging

    saved = dict(os.environ)  # a nanny copies its workers' variables into this process's
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", silence_logs=logging.ERROR,
                                      preload=["simbench.runtime"]) as cluster, \
                distributed.Client(cluster) as client:
            got = list(client.run(_worker_settings).values())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert got == [{"source": "OMP_NUM_THREADS", "threads": 1}]


def _worker_settings() -> dict[str, Any] | None:
    s = runtime.thread_settings()
    return None if s is None else {"source": s.source, "threads": s.threads}
