#!/usr/bin/env bash
# One prepared run of simbench on a GPU machine; results go to $OUT as they are made.
#
#   OUT=/path/to/results benchmarks/gpu_check.sh [TOTAL_SECONDS]     (from the repo root)
#
# TOTAL_SECONDS (default 570: the whole run under 10 minutes) bounds the whole script: every
# stage runs under `timeout` with what is left, and the paper spec gets whatever remains near
# the end (the harness resumes, so a partial run is a valid result). Stages:
#   a. install: wheels in .whl/ (if any) into /tmp/site, then simbench itself (editable if pip
#      can do it offline, else a plain offline install, else an entry-point shim): env.txt
#   b. the card's name, driver, torch and CUDA versions: env.txt
#   c. tests: the gpu-marked tests and the device-path tests, eager steps: gpu_tests.txt
#   d. bench: the MAS training-step benchmark on the device: bench_mas.json, bench_mas.txt
#   e. capture: benchmarks/gpu_capture.py: the zoo GRU pair's training step eager and captured
#      (compiled per length bucket, CUDA graphs) on the device, the eager step on 2 CPU threads
#      (the reference: the target is 10x), and a short MAS training both ways for two seeds
#      (equal scores within the seed spread): capture.json, the table in bench_mas.txt and
#      summary.txt
#   f. demo (only when SIMBENCH_GPU_CHECK_STAGES names it): `simbench demo`, timed: paper.txt
#   g. paper: benchmarks/specs/paper.toml (steps captured: the default on CUDA) into a fresh
#      store for the remaining seconds: paper.sqlite (a copy of the store made at the end),
#      paper.txt (wall time, `simbench bench status`: jobs done, measure time)
#   h. unrolled: the captured step with the recurrence unrolled into one graph (minutes of
#      compiling), added to capture.json, if at least 60 s are left
#   summary.txt: one line per stage (status, seconds). At most 8 files, all directly in $OUT.
#
# SIMBENCH_GPU_CHECK_STAGES (default "tests bench capture paper unrolled") picks stages (a
# second run can give the paper spec the whole time: SIMBENCH_GPU_CHECK_STAGES=paper).
# SIMBENCH_GPU_CHECK_DEVICE (default cuda) names the device; with `cpu` the script checks its
# own plumbing on a machine without a GPU (the CUDA-only parts skip; the capture stage is a
# dry run). SIMBENCH_GPU_CHECK_WORKERS (default 4 when dask is importable; 0: in-process) runs
# the demo and the paper spec on that many local workers sharing the GPU.
set -uo pipefail
export PYTHONUNBUFFERED=1

TOTAL=${1:-570}
STAGES=" ${SIMBENCH_GPU_CHECK_STAGES:-tests bench capture paper unrolled} "
wants() { [[ "$STAGES" == *" $1 "* ]]; }
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
# the eager steps here (each captured engine would compile): the capture stage checks capture
wants tests && SIMBENCH_CAPTURE=off stage tests "$(cap 120 400)" "$TESTS" bash -c "$PY -m pytest -q -p no:cacheprovider -m gpu \
    --continue-on-collection-errors tests; $PY -m pytest -q -p no:cacheprovider -m 'not gpu' \
    tests/test_device_path.py -k meta"

# ---- d. the MAS step benchmark ------------------------------------------------------------------
BENCH="$OUT/bench_mas.txt"
: > "$BENCH"
wants bench && SIMBENCH_BENCH_DEVICE=$DEVICE stage bench "$(cap 60 340)" "$BENCH" "$PY" -m pytest -q \
    -p no:cacheprovider benchmarks/test_bench_mas.py -k "test_step" \
    --benchmark-enable --benchmark-json "$OUT/bench_mas.json" --benchmark-columns=min,median,max

# ---- e. the captured step -----------------------------------------------------------------------
DRY=()
[[ "$DEVICE" == cpu ]] && DRY=(--dry-run)
if wants capture; then
    stage capture "$(cap 200 140)" "$BENCH" "$PY" -m benchmarks.gpu_capture --device "$DEVICE" \
        --variants captured --out "$OUT" "${DRY[@]}"
    "$PY" - "$OUT/capture.json" <<'EOF3' 2>&1 | tee -a "$SUMMARY"
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:  # noqa: BLE001
    print("capture: no figures", type(e).__name__); sys.exit()
st = r["steps"]; ref = next((k for k in st if k.startswith("cpu_")), None)
cpu = st[ref]["ms"] if ref else None
for name, row in st.items():
    print(f"capture {name}: {row['ms']:.2f} ms"
          + (f", {cpu / row['ms']:.1f}x the {ref} step" if cpu else "")
          + (f" FAILED {row['failed']}" if row.get("failed") else ""))
if "scores" in r:
    sc = r["scores"]
    print(f"capture scores: gap {sc['max_gap']:.4f}, seed spread {sc['seed_spread']:.4f}, "
          f"equal within spread: {sc['equal_within_spread']}")
EOF3
fi

# ---- f. the demo --------------------------------------------------------------------------------
WORKERS=${SIMBENCH_GPU_CHECK_WORKERS:-}
if [[ -z "$WORKERS" ]] && "$PY" -c "import dask.distributed" 2>/dev/null; then WORKERS=4; fi
WORKER_ARGS=()
[[ -n "$WORKERS" && "$WORKERS" != 0 ]] && WORKER_ARGS=(--workers "$WORKERS")
PAPER="$OUT/paper.txt"
: > "$PAPER"
rm -f /tmp/gpu-check-demo.sqlite  # a fresh store: the demo's time is the whole demo
wants demo && stage demo "$(cap 90 100)" "$PAPER" bash -c "time simbench demo --device $DEVICE --no-progress \
    ${WORKER_ARGS[*]} --store /tmp/gpu-check-demo.sqlite --html /tmp/gpu-check-demo.html"

# ---- g. the paper spec --------------------------------------------------------------------------
# the store lives outside $OUT (a killed run leaves WAL files) and is copied in at the end; a
# second run of this script on the same machine resumes it
STORE=/tmp/gpu-check-paper.sqlite
PAPER_ARGS=(benchmarks/specs/paper.toml --store "$STORE" --device "$DEVICE"
            --no-progress --skip-missing)
PAPER_ARGS+=("${WORKER_ARGS[@]}")
PAPER_START=$(date +%s)
UNROLL_RESERVE=0
wants unrolled && UNROLL_RESERVE=90
wants paper || PAPER_START=""
[[ -n "$PAPER_START" ]] && stage paper "$(cap 100000 $(( 45 + UNROLL_RESERVE )))" "$PAPER" \
    simbench bench run "${PAPER_ARGS[@]}"
[[ -n "$PAPER_START" ]] && echo "paper: wall $(( $(date +%s) - PAPER_START ))s, workers ${WORKERS:-in-process}" \
    | tee -a "$PAPER" "$SUMMARY"
if [[ -n "$PAPER_START" && -f "$STORE" ]]; then
    timeout 20 simbench bench status benchmarks/specs/paper.toml --store "$STORE" 2>&1 \
        | tee -a "$PAPER" | tail -5 >> "$SUMMARY"
    timeout 20 "$PY" -c "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(\
sqlite3.connect(sys.argv[2]))" "$STORE" "$OUT/paper.sqlite" || echo "paper: store copy failed" \
        | tee -a "$SUMMARY"
fi

# ---- h. the unrolled capture --------------------------------------------------------------------
if wants unrolled && (( $(left) >= 60 + 20 )); then
    stage unrolled "$(cap 100000 20)" "$BENCH" "$PY" -m benchmarks.gpu_capture --device "$DEVICE" \
        --variants captured_unrolled --no-baselines --no-scores --out "$OUT" "${DRY[@]}"
elif wants unrolled; then
    echo "unrolled: skipped (under 80 s left)" | tee -a "$SUMMARY"
fi

echo "total: $(( $(date +%s) - START ))s of $TOTAL" | tee -a "$SUMMARY"
ls -la "$OUT" >> "$SUMMARY"
