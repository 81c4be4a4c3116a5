"""The GPU script's capture measurement (benchmarks/gpu_capture.py) runs end to end on the CPU.

``--dry-run`` is every part of what ``benchmarks/gpu_check.sh`` measures on a GPU (eager and
captured steps, the 2-thread CPU step, a short training both ways for two seeds, the table and
``capture.json``) at toy sizes with a backend that traces without generating code, so the
script is right before a GPU is lent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gpu_capture import main


@pytest.mark.slow
def test_the_dry_run_measures_every_part(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--dry-run", "--variants", "captured", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "capture.json").read_text())
    steps = result["steps"]
    assert set(steps) == {"eager", "captured", "cpu_1_threads"}  # a GPU run: cpu_2_threads
    assert steps["captured"]["failed"] is None and steps["captured"]["buckets"]
    assert all(row["ms"] > 0 for row in steps.values())
    scores = result["scores"]
    assert set(scores["by_seed"]) == {"0", "1"}
    assert scores["max_gap"] <= 0.01 and scores["equal_within_spread"]
    table = capsys.readouterr().out
    assert "x cpu_1_threads" in table and "equal within it" in table
    # a later run adds a variant to the same file, keeping the figures before it
    assert main(["--dry-run", "--variants", "captured_unrolled", "--no-baselines",
                 "--no-scores", "--out", str(tmp_path)]) == 0
    both = json.loads((tmp_path / "capture.json").read_text())
    assert set(both["steps"]) == {"eager", "captured", "captured_unrolled", "cpu_1_threads"}
    assert both["scores"] == scores
    assert "captured_unrolled" in capsys.readouterr().out
