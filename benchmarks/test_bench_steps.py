"""Steps and seconds to validation IIA 0.95: MAS from a random start against the data start.

What a user waits for, from the command: ``simbench score mas A B --site hidden --k 32
--stop_at 0.95`` in a fresh process, once with ``--init random`` (the baseline) and once with
``--init pca`` (the top principal directions of the first network, the second's matched to them
by orthogonal Procrustes), on the three GRU seed pairs and one GRU-LSTM pair of the zoo. Each
run's steps, stop reason and test IIA go into the benchmark's ``extra_info``; one round each
(the step count is deterministic; the wall time is the figure). Run with ``make bench`` on an
otherwise idle machine: ``pytest benchmarks/test_bench_steps.py --benchmark-enable``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SIMBENCH = str(Path(sys.executable).parent / "simbench")
PAIRS = [("gru_multi_s1", "gru_multi_s2"), ("gru_multi_s1", "gru_multi_s3"),
         ("gru_multi_s2", "gru_multi_s3"), ("gru_multi_s1", "lstm_multi_s1")]


def _score(a: str, b: str, init: str) -> dict[str, Any]:
    out = subprocess.run([SIMBENCH, "score", "mas", a, b, "--site", "hidden", "--k", "32",
                          "--stop_at", "0.95", "--init", init, "--progress", "false", "--json",
                          "--device", "cpu"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("init", ["baseline_random", "pca"])
@pytest.mark.parametrize("pair", PAIRS, ids=["-".join(p) for p in PAIRS])
def test_time_to_iia_095(benchmark: Any, pair: tuple[str, str], init: str) -> None:
    benchmark.group = f"mas-to-0.95-{'-'.join(pair)}"
    how = init.removeprefix("baseline_")
    result = benchmark.pedantic(_score, args=(*pair, how), rounds=1, iterations=1)
    train = result["attrs"]["train"]
    benchmark.extra_info.update(steps=train["steps"], stopped=train["stopped"],
                                test_iia=result["value"], init=result["attrs"]["init"])
    assert result["attrs"]["init"] == how
    assert 0.0 <= result["value"] <= 1.0
