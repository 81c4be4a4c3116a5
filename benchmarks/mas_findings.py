"""Full-size MAS and DAS runs on the shipped zoo: the figures behind the paper's findings.

Each run trains with the paper's defaults (plus plateau early stopping), scores held-out
counterfactuals, and saves its alignment under ``recordings/alignments/`` so the test suite
can re-evaluate it on fresh counterfactuals in seconds (``tests/test_mas_findings.py``).
Results go to ``benchmarks/results/mas_findings.json``.

    .venv/bin/python benchmarks/mas_findings.py [--device cuda] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import simbench

ROOT = Path(__file__).resolve().parent.parent
ALIGN = ROOT / "recordings" / "alignments"
OUT = ROOT / "benchmarks" / "results" / "mas_findings.json"

GRUS = ("gru_multi_s1", "gru_multi_s2")
RUNS: dict[str, dict] = {
    "mas_gru_gru_hidden": dict(measure="mas", systems=GRUS, site="hidden", k=16),
    "mas_gru_gru_embedding": dict(measure="mas", systems=GRUS, site="embedding", k=16),
    "mas_gru_gru_embedding_stepwise": dict(measure="mas", systems=GRUS, site="embedding", k=16,
                                           stepwise=True),
    "das_gru_k16": dict(measure="das", systems=GRUS[:1], site="hidden", k=16),
    "das_gru_k4": dict(measure="das", systems=GRUS[:1], site="hidden", k=4),
    "mas_gru_gru_k4": dict(measure="mas", systems=GRUS, site="hidden", k=4),
    "mas_gru_tf_hidden": dict(measure="mas", systems=("gru_multi_s1", "tf_multi_s1"),
                              site="hidden", k=16),
    "mas_gru_tf_hidden_stepwise": dict(measure="mas", systems=("gru_multi_s1", "tf_multi_s1"),
                                       site="hidden", k=16, stepwise=True),
    # finding 4: numeric subspaces across tasks
    "mas_multi_rounding": dict(measure="mas", systems=("gru_multi_s1", "gru_rounding_s1"),
                               site="hidden", k=16),
    "mas_multi_modulo": dict(measure="mas", systems=("gru_multi_s1", "gru_modulo_s1"),
                             site="hidden", k=16),
    "mas_count_rem_ops": dict(measure="mas", systems=("gru_multi_s1", "gru_arith_s1"),
                              site="hidden", k=16, variable="count:rem_ops"),
    "mas_count_cumu_val": dict(measure="mas", systems=("gru_multi_s1", "gru_arith_s1"),
                               site="hidden", k=16, variable="count:cumu_val"),
    "mas_count_cumu_val_1_10": dict(measure="mas", systems=("gru_multi_s1", "gru_arith_s1"),
                                    site="hidden", k=16, variable="count:cumu_val",
                                    values="1:10"),
}


def run(name: str, spec: dict, device: str, seed: int = 0) -> dict:
    params = {k: v for k, v in spec.items() if k not in ("measure", "systems", "site")}
    start = time.perf_counter()
    score = simbench.score(spec["measure"], *spec["systems"], site=spec["site"], seed=seed,
                           device=device, save=str(ALIGN / f"{name}.safetensors"),
                           progress=False, **params)
    record = {"value": score.value, "ci": score.ci, "n": score.n_samples,
              "wall_s": round(time.perf_counter() - start, 2), "device": device,
              "iia_trial": score.breakdown["iia_trial"].values.tolist(),
              "iia_token": score.breakdown["iia_token"].values.tolist(),
              "train": score.attrs.get("train"), "within_iia": score.attrs.get("within_iia")}
    print(f"{name}: {score}  train={record['train']}", flush=True)
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    ALIGN.mkdir(parents=True, exist_ok=True)
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name, spec in RUNS.items():
        if args.only and name not in args.only:
            continue
        results[f"{name}@{args.device}"] = run(name, spec, args.device)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
