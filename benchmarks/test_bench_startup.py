"""Start-up time of the listing commands: `simbench --help` and `simbench measures` < 1 s.

Each round runs the installed console script in a fresh process (what a user waits for),
with every installed plugin loading. Run with ``make bench``; under the default
``--benchmark-disable`` each command still runs once and the bound is checked on that run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SIMBENCH = str(Path(sys.executable).parent / "simbench")
LIMIT_S = 1.0


def _run(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([SIMBENCH, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


@pytest.mark.parametrize("argv", [["--help"], ["measures"]], ids=["help", "measures"])
def test_startup(benchmark: Any, argv: list[str]) -> None:
    subprocess.run([SIMBENCH, *argv], check=True, capture_output=True)  # warm the file cache
    benchmark.pedantic(_run, args=(argv,), rounds=5, iterations=1)
    stats = getattr(benchmark, "stats", None)
    best = stats.stats.min if stats is not None else _run(argv)
    assert best < LIMIT_S, f"simbench {' '.join(argv)} took {best:.2f} s (limit {LIMIT_S} s)"
