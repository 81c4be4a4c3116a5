#!/usr/bin/env bash
# One prepared run of simbench on a GPU machine; results go to $OUT as they are made.
#
#   OUT=/path/to/results benchmarks/gpu_check.sh [TOTAL_SECONDS]     (from the repo root)
#
# TOTAL_SECONDS (default 420) bounds the whole script: every stage runs under `timeout` with
# what is left, and the paper spec gets whatever remains at the end (the harness resumes, so a
# partial run is a valid result). Stages:
#   a. install: wheels in .whl/ (if any) into /tmp/site, then simbench itself (editable if pip
#      can do it offline, else a plain offline install, else an entry-point shim): env.txt
#   b. the card's name, driver, torch and CUDA versions: env.txt
#   c. the gpu-marked tests and the device-path tests: gpu_tests.txt
#   d. the MAS training-step benchmark on the device: bench_mas.json, bench_mas.txt; then the
#      same steps on the CPU and the device/CPU ratio per step (bench_mas.txt, summary.txt)
#   e. `simbench demo --device DEVICE`, timed: demo.txt
#   f. benchmarks/specs/paper.toml for the remaining seconds: paper.sqlite (a copy of the store
#      made at the end), paper.txt (with `simbench bench status`: jobs done, measure time)
#   summary.txt: one line per stage (status, seconds). At most 8 files, all directly in $OUT.
#
# SIMBENCH_GPU_CHECK_DEVICE (default cuda) names the device; with `cpu` the script checks its
# own plumbing on a machine without a GPU (the CUDA-only parts skip). SIMBENCH_GPU_CHECK_WORKERS
# (default 4 when dask is importable; 0: in-process) runs the demo and the paper spec on that
# many local workers sharing the GPU.
set -uo pipefail
export PYTHONUNBUFFERED=1

TOTAL=${1:-420}
OUT=${OUT:-$PWD/gpu-check-out}
DEVICE=${SIMBENCH_GPU_CHECK_DEVICE:-cuda}
PY=${PYTHON:-python3}
SITE=/tmp/site
START=$(date +%s)
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

left() { echo $(( TOTAL - ($(date +%s) - START) )); }
# cap SECONDS RESERVE: at most SECONDS, keeping RESERVE for the stages after this one
cap() { local l; l=$(( $(left) - $2 )); (( l < $1 )) && echo $(( l > 0 ? l : 0 )) || echo "$1"; }
# stage NAME SECONDS LOGFILE CMD...: run CMD under timeout, tee its output, log the outcome
stage() {
    local name=$1 secs=$2 log=$3; shift 3
    local t0 rc
    t0=$(date +%s)
    if (( secs < 5 )); then
        echo "$name: skipped (no time left)" | tee -a "$SUMMARY"
        return 0
    fi
    echo "=== $name (limit ${secs}s): $*" | tee -a "$log"
    timeout --kill-after=10 "$secs" "$@" 2>&1 | tee -a "$log"
    rc=$?
    echo "$name: rc=$rc $(( $(date +%s) - t0 ))s$( ((rc == 124)) && echo ' (time limit)')" \
        | tee -a "$SUMMARY"
    return 0
}

# ---- a. install ---------------------------------------------------------------------------------
ENV="$OUT/env.txt"
: > "$ENV"
mkdir -p "$SITE"
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SITE/bin:$PATH"
T=60  # seconds per install command
install() {
    if compgen -G ".whl/*.whl" > /dev/null; then
        timeout $T "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" \
            .whl/*.whl || echo "wheel install failed"
    fi
    if "$PY" -c "import simbench_plugins.mas, simbench_specs, simbench_recordings" 2>/dev/null \
        && command -v simbench > /dev/null; then
        echo "simbench: already importable"; return 0
    fi
    if timeout $T "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
        && "$PY" -c "import simbench_plugins.mas" && command -v simbench > /dev/null; then
        echo "simbench: editable install"; return 0
    fi
    if timeout $T "$PY" -m pip install -q --no-deps --no-build-isolation --no-index \
        --no-compile --target "$SITE" . && "$PY" -c "import simbench_plugins.mas" \
        && command -v simbench > /dev/null; then
        echo "simbench: installed into $SITE"; return 0
    fi
    # the shim: the packages pyproject maps, and the entry points that register the plugins
    rm -rf "$SITE"/simbench_plugins "$SITE"/simbench_recordings "$SITE"/simbench_specs \
        "$SITE"/simbench "$SITE"/simbench-*.dist-info
    ln -sfn "$PWD/plugins" "$SITE/simbench_plugins"
    ln -sfn "$PWD/recordings" "$SITE/simbench_recordings"
    ln -sfn "$PWD/benchmarks/specs" "$SITE/simbench_specs"
    "$PY" - "$SITE" <<'EOF2'
import pathlib, sys, tomllib
site = pathlib.Path(sys.argv[1])
proj = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
info = site / f"simbench-{proj['version']}.dist-info"
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: simbench\nVersion: {proj['version']}\n")
lines = []
for group, eps in proj.get("entry-points", {}).items():
    lines += [f"[{group}]", *(f"{k} = {v}" for k, v in eps.items()), ""]
lines += ["[console_scripts]", *(f"{k} = {v}" for k, v in proj["scripts"].items())]
(info / "entry_points.txt").write_text("\n".join(lines) + "\n")
bin_dir = site / "bin"
bin_dir.mkdir(exist_ok=True)
script = bin_dir / "simbench"
script.write_text(f"#!{sys.executable}\nimport sys\nfrom simbench.cli import main\nsys.exit(main())\n")
script.chmod(0o755)
EOF2
    "$PY" -c "import simbench_plugins.mas" && echo "simbench: entry-point shim in $SITE"
}
T0=$(date +%s)
echo "=== install" >> "$ENV"
install 2>&1 | tee -a "$ENV"
echo "install: $(( $(date +%s) - T0 ))s" | tee -a "$SUMMARY"

# ---- b. the machine -----------------------------------------------------------------------------
{
    echo "=== machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
    "$PY" - <<'EOF' 2>&1
import os, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("cuda available:", torch.cuda.is_available(), "cpus:", os.cpu_count())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0))
import simbench, simbench_plugins
from simbench.devices import resolve_device
print("simbench from", os.path.dirname(simbench.__file__), "plugins from",
      os.path.dirname(simbench_plugins.__file__), "| --device auto ->", resolve_device("auto"))
for mod in ("xarray", "netCDF4", "rsatoolbox", "dask", "distributed", "pytest_benchmark"):
    try:
        m = __import__(mod); print(mod, getattr(m, "__version__", "?"))
    except Exception as e:  # noqa: BLE001
        print(mod, "MISSING", type(e).__name__)
EOF
} 2>&1 | tee -a "$ENV"
echo "env: done" >> "$SUMMARY"

# ---- c. tests -----------------------------------------------------------------------------------
TESTS="$OUT/gpu_tests.txt"
: > "$TESTS"
stage tests "$(cap 180 150)" "$TESTS" bash -c "$PY -m pytest -q -p no:cacheprovider -m gpu \
    --continue-on-collection-errors tests; $PY -m pytest -q -p no:cacheprovider -m 'not gpu' \
    tests/test_device_path.py -k meta"

# ---- d. the MAS step benchmark ------------------------------------------------------------------
BENCH="$OUT/bench_mas.txt"
: > "$BENCH"
SIMBENCH_BENCH_DEVICE=$DEVICE stage bench "$(cap 60 100)" "$BENCH" "$PY" -m pytest -q \
    -p no:cacheprovider benchmarks/test_bench_mas.py -k "test_step" \
    --benchmark-enable --benchmark-json "$OUT/bench_mas.json" --benchmark-columns=min,median,max
# the same engine steps on this machine's CPU, for the device/CPU step ratio (in bench_mas.txt
# and summary.txt; the CPU figures are this machine's cores, not the 2-core reference)
if [[ "$DEVICE" != cpu ]]; then
    SIMBENCH_BENCH_DEVICE=cpu stage bench_cpu "$(cap 90 90)" "$BENCH" "$PY" -m pytest -q \
        -p no:cacheprovider benchmarks/test_bench_mas.py -k "test_step and not baseline" \
        --benchmark-enable --benchmark-json /tmp/gpu-check-bench-cpu.json \
        --benchmark-columns=min,median,max
    "$PY" - "$OUT/bench_mas.json" /tmp/gpu-check-bench-cpu.json <<'EOF3' 2>&1 | tee -a "$BENCH" "$SUMMARY"
import json, sys
def mins(path):
    try:
        return {b["name"]: b["stats"]["min"] for b in json.load(open(path))["benchmarks"]}
    except Exception as e:  # noqa: BLE001
        print("step ratio: no figures in", path, type(e).__name__); return {}
dev, cpu = mins(sys.argv[1]), mins(sys.argv[2])
for name in sorted(set(dev) & set(cpu)):
    print(f"step ratio {name}: cpu {cpu[name] * 1e3:.1f} ms / device {dev[name] * 1e3:.1f} ms"
          f" = {cpu[name] / dev[name]:.1f}x")
EOF3
fi

# ---- e. the demo --------------------------------------------------------------------------------
WORKERS=${SIMBENCH_GPU_CHECK_WORKERS:-}
if [[ -z "$WORKERS" ]] && "$PY" -c "import dask.distributed" 2>/dev/null; then WORKERS=4; fi
WORKER_ARGS=()
[[ -n "$WORKERS" && "$WORKERS" != 0 ]] && WORKER_ARGS=(--workers "$WORKERS")
DEMO="$OUT/demo.txt"
: > "$DEMO"
rm -f /tmp/gpu-check-demo.sqlite  # a fresh store: the demo's time is the whole demo
stage demo "$(cap 90 40)" "$DEMO" bash -c "time simbench demo --device $DEVICE --no-progress \
    ${WORKER_ARGS[*]} --store /tmp/gpu-check-demo.sqlite --html /tmp/gpu-check-demo.html"

# ---- f. the paper spec --------------------------------------------------------------------------
PAPER="$OUT/paper.txt"
: > "$PAPER"
# the store lives outside $OUT (a killed run leaves WAL files) and is copied in at the end; a
# second run of this script on the same machine resumes it
STORE=/tmp/gpu-check-paper.sqlite
PAPER_ARGS=(benchmarks/specs/paper.toml --store "$STORE" --device "$DEVICE"
            --no-progress --skip-missing)
PAPER_ARGS+=("${WORKER_ARGS[@]}")
PAPER_START=$(date +%s)
stage paper "$(cap 100000 45)" "$PAPER" simbench bench run "${PAPER_ARGS[@]}"
echo "paper: wall $(( $(date +%s) - PAPER_START ))s, workers ${WORKERS:-in-process}" \
    | tee -a "$PAPER" "$SUMMARY"
if [[ -f "$STORE" ]]; then
    timeout 20 simbench bench status benchmarks/specs/paper.toml --store "$STORE" 2>&1 \
        | tee -a "$PAPER" | tail -5 >> "$SUMMARY"
    timeout 20 "$PY" -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(\
sqlite3.connect(sys.argv[2]))" "$STORE" "$OUT/paper.sqlite" || echo "paper: store copy failed" \
        | tee -a "$SUMMARY"
fi

echo "total: $(( $(date +%s) - START ))s of $TOTAL" | tee -a "$SUMMARY"
ls -la "$OUT" >> "$SUMMARY"
