"""Speed and memory of from_spike_times against the straightforward numpy loop, same run.

The target size: 500 units x 2,000 trials x 2 s at 10 ms bins (200 bins a trial; 5 Hz Poisson
units over a 4,000 s session, about 10 million spikes). Output: 200 million int32 counts,
800 MB.

- Time: ``from_spike_times`` (counts, trial_duration, no tokens or variables) against the way a
  user writes it by hand: one ``np.histogram`` per unit over the trials' concatenated bin edges,
  reshaped into [trial, bin] and written into the unit's column. Target: under 5 s.
- Memory: peak Python-tracked allocation (numpy reports to tracemalloc) during the call,
  output included, against the output array. Target: under twice the output.

Run: ``.venv/bin/pytest benchmarks/test_bench_spikes.py --benchmark-enable``; the ratio is
printed at the end (benchmarks/conftest.py). Under ``--benchmark-disable`` each runs once.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import numpy as np
import pytest

N_UNITS, N_TRIALS, DURATION, BIN = 500, 2000, 2.0, 0.01
N_BINS = round(DURATION / BIN)
RATE_HZ = 5.0


@pytest.fixture(scope="module")
def session() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    span = N_TRIALS * DURATION
    units = [np.sort(rng.uniform(0, span, rng.poisson(RATE_HZ * span)))
             for _ in range(N_UNITS)]
    return {"units": units, "starts": np.arange(N_TRIALS) * DURATION}


def histogram_loop(units: list[np.ndarray], starts: np.ndarray) -> np.ndarray:
    """What a user writes: per unit, one histogram over all trials' bin edges."""
    edges = (starts[:, None] + np.arange(N_BINS + 1) * BIN).ravel()
    out = np.zeros((len(starts), N_BINS, len(units)), dtype=np.int32)
    for u, t in enumerate(units):
        counts, _ = np.histogram(t, edges)  # a zero-width bin between back-to-back trials
        out[:, :, u] = np.append(counts, 0).reshape(len(starts), N_BINS + 1)[:, :N_BINS]
    return out


def bin_spikes(session: dict[str, Any]) -> np.ndarray:
    from simbench.importers import from_spike_times

    rec = from_spike_times(session["units"], session["starts"], bin_width=BIN,
                           trial_duration=DURATION, system_id="bench")
    return rec.site("units")["activity"].values


@pytest.mark.parametrize("what", ["baseline_histogram_loop", "simbench"])
def test_bin_spikes_speed(benchmark: Any, session: dict[str, Any], what: str) -> None:
    n_spikes = sum(len(t) for t in session["units"])
    benchmark.group = (f"spike-binning-{N_UNITS}u-{N_TRIALS}tr-{N_BINS}bins-"
                       f"{n_spikes / 1e6:.1f}M-spikes")
    if what == "simbench":  # same numbers as the loop (on a slice of units: the loop is slow)
        ours = bin_spikes(session)
        some = histogram_loop(session["units"][:25], session["starts"])
        np.testing.assert_array_equal(ours[:, :, :25], some)
        assert int(ours.sum()) == n_spikes
        del ours
    if what.startswith("baseline"):
        benchmark.pedantic(histogram_loop, args=(session["units"], session["starts"]),
                           rounds=2, iterations=1)
    else:
        benchmark.pedantic(bin_spikes, args=(session,), rounds=3, warmup_rounds=1,
                           iterations=1)


def test_bin_spikes_memory_and_cpu_time(session: dict[str, Any]) -> None:
    """Peak allocation during the call (output included) under twice the output; CPU time
    (less sensitive to a loaded machine than wall time) under the 5 s target."""
    bin_spikes({"units": session["units"][:2], "starts": session["starts"]})  # imports
    tracemalloc.start()
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        out = bin_spikes(session)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ratio = peak / out.nbytes
    print(f"\nfrom_spike_times: output {out.nbytes / 2**20:.0f} MiB, peak {peak / 2**20:.0f} "
          f"MiB ({ratio:.2f}x the output); {cpu:.2f} s CPU, {wall:.2f} s wall (under "
          "tracemalloc)")
    assert ratio < 2.0
    assert cpu < 5.0
