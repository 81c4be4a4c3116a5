"""Benchmark helpers: ratios of each benchmark to its group's baseline, printed after the run.

A group (``@pytest.mark.benchmark(group=...)``) may hold one benchmark whose test id contains
``baseline``; every other benchmark of the group is reported as ``min time / baseline min``.
The minimum over rounds is the least noisy statistic on a shared machine.
"""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    session = getattr(config, "_benchmarksession", None)
    benches = [b for b in getattr(session, "benchmarks", []) if b]
    if not benches:
        return
    groups: dict[str, list[Any]] = {}
    for b in benches:
        groups.setdefault(b.group or "", []).append(b)
    lines = []
    for group, items in groups.items():
        base = next((b for b in items if "baseline" in b.name), None)
        if base is None:
            continue
        for b in items:
            if b is not base:
                ratio = b.stats.min / base.stats.min
                lines.append(f"{group}: {b.name} {b.stats.min:.3f} s vs {base.name} "
                             f"{base.stats.min:.3f} s -> {ratio:.2f}x")
    if lines:
        terminalreporter.write_sep("-", "ratios to baseline (min over rounds)")
        for line in lines:
            terminalreporter.write_line(line)
    runs = [b for b in benches if "steps" in b.extra_info]
    if runs:  # trainings (test_bench_steps.py): what each run did, beside its time
        terminalreporter.write_sep("-", "trainings (extra_info)")
        for b in runs:
            info = ", ".join(f"{k} {v}" for k, v in b.extra_info.items())
            terminalreporter.write_line(f"{b.group}: {b.name}: {info}")
