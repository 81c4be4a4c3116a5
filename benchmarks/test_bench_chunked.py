"""Out-of-core linear CKA: peak memory and throughput of ``chunked_cka`` on a netCDF file read
lazily (xarray, dask chunks), against the in-memory feature form.

The size comes from the environment, so the target case runs where there is disk and time:

    SIMBENCH_CHUNKED_N=1000000 SIMBENCH_CHUNKED_D=4096 .venv/bin/pytest benchmarks/test_bench_chunked.py -s

writes two float32 arrays of 1,000,000 x 4,096 (16.4 GB each, 32.8 GB of file; set
``SIMBENCH_CHUNKED_FILE=/big/disk/acts.nc`` to keep it and reuse it on the next run,
``SIMBENCH_CHUNKED_DTYPE=float32`` for float32 block products) and checks that
CKA read in blocks peaks under ``SIMBENCH_CHUNKED_MEMORY_MB`` (default 2048 MiB) of resident
memory beyond the process's warm-up (the page cache of the file is not resident memory of
the process). Default size: 50,000 x 512 (about 100 MB per system), minutes on 2 cores.

Each case runs in a fresh child process that reports its own peak (``VmHWM``). At a size that
fits in memory the benchmark also scores the in-memory feature form on the same data and
reports the two values (they agree to 1e-6 or better) and the throughput ratio (target: the
chunked form within 1.5x of the in-memory one). Timings on a shared machine are indicative
only; the figures are printed, one line per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

N = int(os.environ.get("SIMBENCH_CHUNKED_N", "50000"))
D = int(os.environ.get("SIMBENCH_CHUNKED_D", "512"))
MEMORY_MB = float(os.environ.get("SIMBENCH_CHUNKED_MEMORY_MB", "2048"))
#: precision of the block products (sums are float64 either way); float32 halves the time
DTYPE = os.environ.get("SIMBENCH_CHUNKED_DTYPE", "float64")
#: write the data here and keep it (reused when it exists) instead of a temporary directory
KEEP = os.environ.get("SIMBENCH_CHUNKED_FILE", "")
#: rows written per block when making the file (the writer never holds it whole either)
WRITE_ROWS = 20_000

MAKE = """
import sys, numpy as np, netCDF4
n, d, rows = {n}, {d}, {rows}
with netCDF4.Dataset(sys.argv[1], "w") as nc:
    nc.createDimension("sample", n)
    nc.createDimension("ux", d)
    nc.createDimension("uy", d)
    vx = nc.createVariable("x", "f4", ("sample", "ux"), chunksizes=(min(n, 1024), d))
    vy = nc.createVariable("y", "f4", ("sample", "uy"), chunksizes=(min(n, 1024), d))
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)
    for i in range(0, n, rows):
        j = min(i + rows, n)
        x = rng.standard_normal((j - i, d), dtype=np.float32)
        vx[i:j] = x
        vy[i:j] = x @ mix + rng.standard_normal((j - i, d), dtype=np.float32)
"""

MEASURE = """
import json, re, resource, sys, time
import numpy as np, xarray as xr
from simbench.estimators.cka import chunked_cka, cka

def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20

def peak_mb():
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmHWM:\\s+(\\d+)", fh.read()).group(1)) / 1024

chunked_cka(np.ones((8, 4)) + np.arange(32).reshape(8, 4) ** 2, np.eye(8)[:, :4])  # warm-up
base = rss_mb()
ds = xr.open_dataset(sys.argv[1], chunks={{"sample": 4096}})
case = sys.argv[2]
t0 = time.perf_counter()
if case == "chunked":
    value = chunked_cka(ds["x"], ds["y"], memory_mb={memory}, dtype="{dtype}",
                        progress=True).value
else:
    value = cka(ds["x"].values, ds["y"].values, form="feature").value
seconds = time.perf_counter() - t0
print(json.dumps({{"case": case, "value": value, "seconds": seconds, "base_mb": base,
                  "peak_mb": peak_mb()}}))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if KEEP:  # a file this benchmark wrote before, reused (writing 33 GB takes a while)
        path = Path(KEEP)
        if path.exists():
            return path
    else:
        path = tmp_path_factory.mktemp("chunked") / "acts.nc"
    subprocess.run([sys.executable, "-c", MAKE.format(n=N, d=D, rows=WRITE_ROWS), str(path)],
                   check=True)
    return path


def _measure(path: Path, case: str) -> dict:
    script = MEASURE.format(memory=MEMORY_MB, dtype=DTYPE)
    out = subprocess.run([sys.executable, "-c", script, str(path), case], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_chunked_cka_peak_memory_and_throughput(data: Path) -> None:
    data_mb = 2 * N * D * 4 / 2**20
    chunked = _measure(data, "chunked")
    added = chunked["peak_mb"] - chunked["base_mb"]
    print(f"\nchunked CKA, {N} x {D} float32 per system ({data_mb:.0f} MiB of activity): "
          f"value {chunked['value']:.8f}, {chunked['seconds']:.1f} s, peak "
          f"{added:.0f} MiB above warm-up (budget {MEMORY_MB:.0f} MiB), {DTYPE} products")
    assert added < MEMORY_MB
    if data_mb < 4096:  # the in-memory form fits: compare value and throughput
        full = _measure(data, "in_memory")
        ratio = chunked["seconds"] / full["seconds"]
        print(f"in-memory feature form: value {full['value']:.8f}, {full['seconds']:.1f} s, "
              f"peak {full['peak_mb'] - full['base_mb']:.0f} MiB; chunked / in-memory time "
              f"{ratio:.2f}x (target < 1.5x)")
        assert chunked["value"] == pytest.approx(full["value"], abs=1e-6)
