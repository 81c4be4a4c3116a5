"""Peak memory of loading and scoring, against the size of the data, in fresh processes.

Two float32 recordings of 100,000 samples x 512 units (204.8 MB each, 409.6 MB together) are
written once. Each case then runs in its own child process, which imports simbench, scores two
tiny recordings (so libraries, BLAS buffers and plugins are loaded), and reports

- ``base``: its resident memory after that warm-up,
- ``load``: its peak after loading both recordings (``VmHWM`` in ``/proc/self/status``: the
  process's own high-water mark; ``ru_maxrss`` would carry the parent's over ``exec``),
- ``score``: its peak after scoring them,

so ``score - base`` is what loading and scoring cost. Targets:

- the estimate (``n_boot = 0``) peaks under 2x the two activity arrays;
- the default bootstrap (200 replicates) adds at most ``boot_memory_mb`` (512 MiB by default)
  to that;
- RSA (the paper protocol) peaks under 2x the two activity arrays.

Run: ``.venv/bin/pytest benchmarks/test_bench_memory.py -s`` (about 1 GB at its peak; a few
minutes on 2 cores). The figures are printed, one line per case.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

N, D = 100_000, 512
DATA_MB = 2 * N * D * 4 / 2**20  # both activity arrays, MiB

MAKE = """
import sys, numpy as np
from simbench.recording import Recording, save_recording, site_dataset
rng = np.random.default_rng(0)
x = rng.standard_normal(({n}, {d}), dtype=np.float32)
y = x[:, ::-1] * 0.5 + rng.standard_normal(({n}, {d}), dtype=np.float32)
for name, a in (("a", x), ("b", y)):
    ds = site_dataset(a, stimulus_ids=[f"s{{i:06d}}" for i in range({n})], site="hidden",
                      system_id=name)
    save_recording(Recording(name, {{"hidden": ds}}), sys.argv[1] + f"/{{name}}.nc")
"""

MEASURE = """
import json, re, resource, sys, time
import numpy as np
import simbench
from simbench.recording import Recording, load_recording, site_dataset

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

def peak_mb():  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmHWM:\\s+(\\d+)", fh.read()).group(1)) / 1024

measure, params, folder = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(1)
tiny = [Recording(s, {"hidden": site_dataset(rng.normal(size=(50, 8)).astype(np.float32),
        stimulus_ids=[f"s{i}" for i in range(50)], site="hidden", system_id=s)})
        for s in "ab"]
simbench.score(measure, *tiny, site="hidden", **params)  # warm-up: imports, BLAS, plugins
base = rss_mb()
a, b = load_recording(folder + "/a.nc"), load_recording(folder + "/b.nc")
load = peak_mb()
start = time.perf_counter()
s = simbench.score(measure, a, b, site="hidden", **params)
print(json.dumps({"base": base, "load": load, "score": peak_mb(), "value": s.value,
                  "ci": s.ci, "seconds": time.perf_counter() - start,
                  "attrs": {k: s.attrs.get(k) for k in
                            ("form", "bootstrap_units", "ci_note", "device")}}))
"""


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: Any) -> Path:
    folder = tmp_path_factory.mktemp("memory")
    subprocess.run([sys.executable, "-c", MAKE.format(n=N, d=D), str(folder)], check=True)
    return folder


def _measure(folder: Path, measure: str, params: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", MEASURE, measure, json.dumps(params),
                          str(folder)], capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    fig["load_cost"] = fig["load"] - fig["base"]
    fig["score_cost"] = fig["score"] - fig["base"]
    print(f"\n{measure} {params}: data {DATA_MB:.0f} MiB; after imports {fig['base']:.0f} MiB; "
          f"loading peaks at +{fig['load_cost']:.0f} MiB ({fig['load_cost'] / DATA_MB:.2f}x "
          f"data); scoring at +{fig['score_cost']:.0f} MiB ({fig['score_cost'] / DATA_MB:.2f}x "
          f"data) in {fig['seconds']:.0f} s; value {fig['value']:.6f}, ci {fig['ci']}, "
          f"{fig['attrs']}")
    return fig


def test_cka_estimate_under_twice_the_data(recordings: Path) -> None:
    fig = _measure(recordings, "cka", {"n_boot": 0})
    assert fig["attrs"]["form"] == "feature"
    assert fig["score_cost"] < 2 * DATA_MB


def test_cka_bootstrap_within_its_budget(recordings: Path) -> None:
    from simbench.estimators.cka import BOOT_MEMORY_MB

    fig = _measure(recordings, "cka", {})
    assert fig["ci"] is not None
    assert fig["score_cost"] < 2 * DATA_MB + BOOT_MEMORY_MB
    small = _measure(recordings, "cka", {"boot_memory_mb": 128})
    assert small["ci"] is not None
    assert small["value"] == pytest.approx(fig["value"], abs=1e-12)  # sums grouped otherwise
    assert small["score_cost"] < 2 * DATA_MB + 128


def test_rsa_under_twice_the_data(recordings: Path) -> None:
    fig = _measure(recordings, "rsa", {})
    assert fig["score_cost"] < 2 * DATA_MB
