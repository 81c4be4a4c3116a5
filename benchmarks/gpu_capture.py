"""The captured MAS step against the eager one, and against the 2-core CPU step, in one run.

    python -m benchmarks.gpu_capture [--device cuda] [--out DIR] [--dry-run]

Measures, for the zoo GRU pair (``gru_multi_s1``, ``gru_multi_s2``, hidden site, k = 32, batch
128 per direction, all 4 directions):

1. the training step (loss, backward) in ms: eager and captured on ``--device`` (captured
   twice: the recurrence as one fused op, and unrolled into the graph), each after its
   compilation (timed apart), and the eager step on the CPU with 2 torch threads (the
   reference a GPU has to beat: the target is 10x);
2. a short MAS training both ways (eager, captured) for two seeds: the test IIA of each, so a
   difference between the two ways can be read against the seed spread.

Prints a table and writes ``capture.json`` to ``--out`` (default ``$OUT``, else nothing is
written; figures already there are kept, so a later run can add a variant). ``--dry-run`` runs every part on the CPU at toy sizes
with the ``aot_eager`` backend (traces the step without generating code): the plumbing in
seconds, what the tests run. Timings on a shared machine: read the ratios, not the ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import parametrize

PAIR = ("gru_multi_s1", "gru_multi_s2")


def build_engine(device: str, *, k: int, seed: int = 0, capture: str = "off",
                 **cfg: Any) -> Any:
    """An engine of the zoo GRU pair on ``device`` (the networks stay frozen there for as
    long as the engine lives)."""
    from simbench_plugins import _causal

    from simbench.interventions.engine import Engine, EngineConfig, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.systems.torch import TorchSystem

    systems = [TorchSystem.from_zoo(z) for z in PAIR]
    stack = ExitStack()
    parties = _causal.build_parties(systems, _causal.Networks(device, stack), site="hidden",
                                    task=None, variable="")
    config = EngineConfig(seed=seed, device=device, capture=capture, **cfg)
    engine = Engine(parties, SubspaceMap([p.width for p in parties], k, seed=seed),
                    directions_for(2), config)
    engine.networks = stack  # type: ignore[attr-defined]
    return engine


def fixed_batches(engine: Any, size: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {d: torch.randint(0, len(engine.data["train"][d].iv), (size,), generator=g).numpy()
            for d in engine.trained}


def time_step(engine: Any, loss_fn: Any, batches: dict, rounds: int) -> dict[str, float]:
    """Seconds of the first call (compilation, for a captured step) and the median ms of
    ``rounds`` more (loss and backward; on a GPU up to the GPU finishing it)."""
    params = list(engine.imap.parameters())
    cuda = engine.cfg.device.startswith("cuda")

    def step() -> float:
        t0 = time.perf_counter()
        loss = loss_fn(batches)
        loss.backward()
        for p in params:
            p.grad = None
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first = step()
    for _ in range(2):  # CUDA graphs record on the first calls after compiling
        step()
    times = sorted(step() for _ in range(rounds))
    return {"first_s": round(first, 3), "ms": round(1e3 * times[len(times) // 2], 3),
            "min_ms": round(1e3 * times[0], 3)}


def eager_loss(engine: Any) -> Any:
    def fn(batches: dict) -> torch.Tensor:
        with parametrize.cached():
            return engine.step_loss(batches)

    return fn


VARIANTS = {"captured": False, "captured_unrolled": True}  # name: the recurrence unrolled


def measure_steps(device: str, *, k: int, batch: int, rounds: int, cpu_threads: int,
                  backend: str | None, variants: list[str], baselines: bool,
                  sizes: dict[str, int]) -> dict[str, Any]:
    """Step times: captured on ``device`` (``variants`` of :data:`VARIANTS`) and, with
    ``baselines``, eager there and eager on ``cpu_threads`` CPU threads."""
    from simbench.interventions.capture import CapturedStep

    out: dict[str, Any] = {}
    engine = build_engine(device, k=k, batch_size=batch, **sizes)
    batches = fixed_batches(engine, batch)
    if baselines:
        out["eager"] = time_step(engine, eager_loss(engine), batches, rounds)
    for name in variants:
        unroll = VARIANTS[name]
        step = CapturedStep(engine, unroll=unroll, backend=backend)
        out[name] = time_step(engine, step, batches, rounds)
        out[name]["buckets"] = list(step.buckets)
        out[name]["failed"] = step.failed
    if not baselines:
        return out
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads)
    try:
        cpu = build_engine("cpu", k=k, batch_size=batch, **sizes)
        out[f"cpu_{cpu_threads}_threads"] = time_step(cpu, eager_loss(cpu), fixed_batches(cpu, batch),
                                                      max(3, rounds // 6))
    finally:
        torch.set_num_threads(threads)
    return out


def measure_scores(device: str, *, k: int, seeds: tuple[int, ...], steps: int,
                   backend: str | None, sizes: dict[str, int]) -> dict[str, Any]:
    """Test IIA (mean over the cross directions) after ``steps`` training steps, eager and
    captured, per seed; the largest eager-captured gap against the seed spread."""
    from simbench.interventions.capture import BACKEND_ENV

    before = os.environ.get(BACKEND_ENV)
    if backend:
        os.environ[BACKEND_ENV] = backend  # what the engines' own captured steps compile with
    try:
        rows = _train_both_ways(device, k=k, seeds=seeds, steps=steps, sizes=sizes)
    finally:
        if before is None:
            os.environ.pop(BACKEND_ENV, None)
        else:
            os.environ[BACKEND_ENV] = before
    gaps = [abs(r["on"] - r["off"]) for r in rows.values()]
    eager = [r["off"] for r in rows.values()]
    spread = max(eager) - min(eager) if len(eager) > 1 else float("nan")
    return {"by_seed": rows, "max_gap": max(gaps), "seed_spread": spread,
            "equal_within_spread": max(gaps) <= max(spread, 0.01)}


def _train_both_ways(device: str, *, k: int, seeds: tuple[int, ...], steps: int,
                     sizes: dict[str, int]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for seed in seeds:
        for mode in ("off", "on"):
            engine = build_engine(device, k=k, seed=seed, capture=mode, max_steps=steps,
                                  eval_every=max(steps // 4, 1), patience=10 ** 6,
                                  stop_at=1.0, **sizes)
            t0 = time.perf_counter()
            log = engine.train(progress=False)
            iia = engine.iia("test")
            cross = [iia[d] for d in iia if d[0] != d[1]]
            rows.setdefault(str(seed), {})[mode] = sum(cross) / len(cross)
            rows[str(seed)][f"{mode}_s"] = round(time.perf_counter() - t0, 2)
            rows[str(seed)][f"{mode}_steps"] = log.steps
    return rows


def summary(result: dict[str, Any]) -> str:
    """The table people read: step ms, the ratios, the scores."""
    steps, lines = result["steps"], []
    cpu_key = next((k for k in steps if k.startswith("cpu_")), "cpu")
    cpu_ms = steps[cpu_key]["ms"] if cpu_key in steps else float("nan")
    eager_ms = steps["eager"]["ms"] if "eager" in steps else float("nan")
    lines.append(f"device {result['device']} ({result['device_name']}), torch {torch.__version__}")
    lines.append(f"{'step':<22}{'ms':>10}{'first s':>10}{'x eager':>9}{'x ' + cpu_key:>18}")
    for name, row in steps.items():
        ratio = eager_ms / row["ms"] if name != cpu_key else float("nan")
        note = f"  FAILED: {row['failed']}" if row.get("failed") else ""
        lines.append(f"{name:<22}{row['ms']:>10.2f}{row['first_s']:>10.1f}{ratio:>9.2f}"
                     f"{cpu_ms / row['ms']:>18.2f}{note}")
    scores = result.get("scores")
    if scores:
        for seed, r in scores["by_seed"].items():
            lines.append(f"seed {seed}: test IIA eager {r['off']:.4f} ({r['off_s']} s), captured "
                         f"{r['on']:.4f} ({r['on_s']} s)")
        lines.append(f"largest eager-captured gap {scores['max_gap']:.4f}, seed spread "
                     f"{scores['seed_spread']:.4f}: "
                     f"{'equal' if scores['equal_within_spread'] else 'NOT equal'} within it")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=os.environ.get("OUT", ""))
    parser.add_argument("--dry-run", action="store_true",
                        help="the CPU at toy sizes, aot_eager backend: the plumbing only")
    parser.add_argument("--variants", default="captured,captured_unrolled",
                        help="captured steps to time, comma-separated: captured (the "
                        "recurrence one fused op), captured_unrolled (minutes of compiling)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="time no eager step (a later run adding variants to capture.json)")
    parser.add_argument("--no-scores", action="store_true", help="skip the short trainings")
    parser.add_argument("--train-steps", type=int, default=300)
    args = parser.parse_args(argv)
    from simbench.devices import resolve_device

    if args.dry_run:
        device, backend, k, batch, rounds, steps = "cpu", "aot_eager", 8, 16, 3, 6
        sizes = {"n_train": 64, "n_val": 32, "n_test": 32, "pool_size": 64}
    else:
        device, backend, k, batch, rounds, steps = resolve_device(args.device), None, 32, 128, \
            30, args.train_steps
        sizes = {"n_train": 2048, "n_val": 256, "n_test": 500, "pool_size": 1000}
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    result: dict[str, Any] = {"device": device, "device_name": name, "dry_run": args.dry_run,
                              "torch": torch.__version__, "steps": {}}
    saved = Path(args.out) / "capture.json" if args.out else None
    if saved is not None and saved.exists():  # an earlier stage's figures: add to them
        result = {**json.loads(saved.read_text()), **{k: v for k, v in result.items()
                                                     if k != "steps"}}
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; use {', '.join(VARIANTS)}")
    # the dry run's CPU reference takes 1 thread: 2 spinning OpenMP threads beside the other
    # busy processes of a shared machine (a test run) slow a step by 10-40x
    result["steps"].update(measure_steps(
        device, k=k, batch=batch, rounds=rounds, cpu_threads=1 if args.dry_run else 2,
        backend=backend,
        variants=variants, baselines=not args.no_baselines, sizes=sizes))
    _write(saved, result)  # the step times stay even if the trainings run out of time
    print(summary(result), flush=True)
    if not args.no_scores:
        result["scores"] = measure_scores(device, k=k, seeds=(0, 1), steps=steps,
                                          backend=backend, sizes=sizes)
        _write(saved, result)
        print(summary(result))
    return 0


def _write(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
