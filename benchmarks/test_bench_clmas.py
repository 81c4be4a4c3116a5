"""Full-size figures for CLMAS, the stitches and the simulated population.

- ``test_eps_table``: the evaluation protocol on a GRU pair (gru_multi_s1 accessible,
  gru_multi_s2 held out as if inaccessible): for eps in {0, 0.5, 0.89, 0.94}, IIA into the
  accessible network (B->A, A->A), the *true* IIA into the held-out one measured after training
  (A->B, B->B) and the held-out CL fit.
- ``test_protocol_baselines``: plain MAS on the same pair (the accessible-direction reference),
  the latent stitch (CL loss only, orthogonal map) and the model stitch trained without access
  to B (trained B->A on A's behaviour, pseudo-inverse used A->B).
- ``test_stitch_ranks``: model stitch gru_multi_s1 -> gru_multi_s2 at rank 1, 2, 4, 16.
- ``test_null_space``: the stitch's null-space point, measured: a source with no mechanism for
  the task (an untrained GRU) plus 4 planted dimensions that encode (count, phase) but that its
  own read-out never uses. A rank-2 stitch from it into a trained GRU is near perfect; from the
  untrained GRU without the planted dimensions it is not; MAS (which also needs the source's
  own behaviour to follow its subspace) stays low.
- ``test_population``: CLMAS against the simulated population and against its shuffled control.
- ``test_cost``: CLMAS (protocol mode) against MAS on the same pair, steps and batch (group
  ``clmas-cost``; the ratio is printed at the end). Target: at most 1.3x.

Every figure is appended to ``$SIMBENCH_BENCH_OUT`` (default ``benchmarks/results/clmas.jsonl``).
``SIMBENCH_BENCH_DEVICE`` picks the device (default auto), ``SIMBENCH_BENCH_STEPS`` the step cap.
Run: ``.venv/bin/pytest benchmarks/test_bench_clmas.py --benchmark-enable -s``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("SIMBENCH_BENCH_OUT", ROOT / "benchmarks" / "results" / "clmas.jsonl"))
DEVICE = os.environ.get("SIMBENCH_BENCH_DEVICE", "auto")
STEPS = int(os.environ.get("SIMBENCH_BENCH_STEPS", "1500"))
A, B = "gru_multi_s1", "gru_multi_s2"
FULL = dict(n_train=10_000, n_val=1000, n_test=1000, max_steps=STEPS, eval_every=25,
            patience=8, pool_size=2000, progress=False, device=DEVICE)
if os.environ.get("SIMBENCH_BENCH_SMALL"):  # a smoke run of the whole file (minutes on a CPU)
    FULL.update(n_train=256, n_val=64, n_test=64, pool_size=128)
if os.environ.get("SIMBENCH_BENCH_MEDIUM"):  # what 2 shared CPU cores finish in ~20 minutes
    FULL.update(n_train=2000, n_val=200, n_test=400, pool_size=500, patience=6, lr=3e-3)
REC = {"record_n": 300 if os.environ.get("SIMBENCH_BENCH_SMALL") else
       1000 if os.environ.get("SIMBENCH_BENCH_MEDIUM") else 3000}
SAVE = os.environ.get("SIMBENCH_BENCH_SAVE", "")  # write the trained maps the tests load
STITCH_LR = 1e-2  # rank-k stitches train ~10x faster at 1e-2 than at MAS's 1e-3


def _need_zoo(*ids: str) -> None:
    from simbench.zoo import read_manifest

    missing = [i for i in ids if i not in read_manifest()["models"]]
    if missing:
        pytest.skip(f"zoo models {missing} not built")


def _log(kind: str, **row: Any) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as fh:
        fh.write(json.dumps({"kind": kind, **row}, default=float) + "\n")
    print(kind, json.dumps(row, default=float))


def _once(benchmark: Any, fn: Any) -> Any:
    return benchmark.pedantic(fn, rounds=1, iterations=1)


@pytest.mark.parametrize("eps", [0.0, 0.5, 0.89, 0.94])
def test_eps_table(benchmark: Any, eps: float) -> None:
    import simbench

    _need_zoo(A, B)
    benchmark.group = "clmas-eps"
    save = f"{SAVE}/clmas_eps{eps:g}.safetensors" if SAVE and eps == 0.89 else ""
    s = _once(benchmark, lambda: simbench.score("clmas", A, site="hidden", inaccessible=B,
                                                eps=eps, k=16, save=save, **REC, **FULL))
    fit = s.attrs["cl_fit"][f"{A}->{B}"]
    _log("eps_table", eps=eps, iia_b_to_a=s.value, iia_a_to_a=s.attrs["within_iia"],
         true_iia_a_to_b=s.attrs["true_iia_into_b"][f"{A}->{B}"],
         true_iia_b_to_b=s.attrs["true_iia_into_b"][f"{B}->{B}"], cl_cos=fit["cosine"],
         cl_r2=fit["r2"], train=s.attrs["train"])


@pytest.mark.parametrize("which", ["mas", "latent_stitch", "model_stitch_inverse"])
def test_protocol_baselines(benchmark: Any, which: str) -> None:
    import simbench

    _need_zoo(A, B)
    benchmark.group = "clmas-baselines"
    if which == "mas":
        save = f"{SAVE}/mas_k16.safetensors" if SAVE else ""
        s = _once(benchmark, lambda: simbench.score("mas", A, B, site="hidden", k=16, save=save,
                                                    **FULL))
        m = s.breakdown["iia_trial"]
        _log("baseline", which=which, iia_b_to_a=float(m.sel(source=B, target=A)),
             iia_a_to_b=float(m.sel(source=A, target=B)), iia_a_to_a=float(m.sel(source=A,
                                                                               target=A)),
             train=s.attrs["train"])
    elif which == "latent_stitch":
        save = f"{SAVE}/latent_stitch.safetensors" if SAVE else ""
        s = _once(benchmark, lambda: simbench.score("latent_stitch", A, B, site="hidden",
                                                    save=save, **REC, **FULL))
        _log("baseline", which=which, iia_a_to_b=s.value, cl_fit=s.attrs["cl_fit"],
             train=s.attrs["train"])
    else:
        for rank in (2, 16):
            def go(r: int = rank) -> Any:
                save = f"{SAVE}/stitch_inverse_rank{r}.safetensors" if SAVE else ""
                return simbench.score("model_stitch", A, B, site="hidden", rank=r,
                                      via_inverse=True, save=save, **{**FULL, "lr": STITCH_LR})

            s = _once(benchmark, go) if rank == 2 else go()
            _log("baseline", which=which, rank=rank, iia_a_to_b=s.value,
                 trained_iia_b_to_a=s.attrs["trained_iia_2_to_1"], train=s.attrs["train"])


@pytest.mark.parametrize("rank", [1, 2, 4, 16])
def test_stitch_ranks(benchmark: Any, rank: int) -> None:
    import simbench

    _need_zoo(A, B)
    benchmark.group = "stitch-rank"
    save = f"{SAVE}/stitch_rank2.safetensors" if SAVE and rank == 2 else ""
    s = _once(benchmark, lambda: simbench.score("model_stitch", A, B, site="hidden", rank=rank,
                                                save=save, **{**FULL, "lr": STITCH_LR}))
    _log("stitch_rank", rank=rank, iia=s.value, token_iia=s.attrs["token_iia"],
         train=s.attrs["train"])


class PlantedGRU:
    """A GRU whose ``hidden`` site carries ``extra`` planted dims: a fixed random embedding of
    the task's (count, phase) after each token. The GRU's read-out never sees them, so they
    are in the system's behavioural null space."""

    def __init__(self, gru: Any, extra: int = 4, seed: int = 0) -> None:
        import torch

        from simbench.tasks import MultiObject

        self.gru, self.task, self.extra = gru, MultiObject(), extra
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.randn(2, extra, generator=g)  # count, phase -> planted dims
        self.sites = ("hidden",)
        self.d = gru.config.d_model

    @property
    def site_dims(self) -> dict[str, int]:
        return {"hidden": self.d + self.extra}

    def to(self, device: Any) -> PlantedGRU:
        self.gru = self.gru.to(device)
        self.embed = self.embed.to(device)
        return self

    def eval(self) -> PlantedGRU:
        self.gru.eval()
        return self

    def parameters(self) -> Any:
        return self.gru.parameters()

    def planted(self, tokens: Any) -> Any:
        import torch

        tok = tokens.cpu().numpy()
        ok = np.isin(tok, [0, 1, 2, 3, 4, 5, 6, 8])  # PAD BOS EOS T D0 D1 D2 R
        var = self.task.causal_model(np.where(ok, tok, 8))  # generated junk reads as R
        cp = np.stack([np.maximum(var["count"], 0) / 10.0, np.maximum(var["phase"], 0)], -1)
        return torch.as_tensor(cp, dtype=torch.float32, device=tokens.device) @ self.embed

    def run(self, tokens: Any, *, edits: Any = None, record: Any = ()) -> Any:
        import torch

        plant = self.planted(tokens)
        inner = None
        if edits and "hidden" in edits:
            mask, what = edits["hidden"]

            def fn(h: Any, b: Any, t: Any) -> Any:
                full = torch.cat([h, plant[b, t]], -1)
                new = what(full, b, t) if callable(what) else what[b, t]
                return new[:, : self.d]

            inner = {"hidden": (mask, fn)}
        logits, rec = self.gru.run(tokens, edits=inner,
                                   record=("hidden",) if "hidden" in record else ())
        if "hidden" in record:
            rec["hidden"] = torch.cat([rec["hidden"], plant], -1)
        return logits, rec


def test_null_space(benchmark: Any) -> None:
    import torch

    import simbench
    from simbench.systems.torch import TorchSystem
    from simbench.zoo.models import ModelConfig, build_model

    _need_zoo(B)
    benchmark.group = "stitch-null-space"
    torch.manual_seed(123)
    untrained = build_model(ModelConfig(arch="gru")).eval()

    planted = TorchSystem(PlantedGRU(untrained), "multi_object",  # type: ignore[arg-type]
                          system_id="untrained_gru+planted")
    plain = TorchSystem(untrained, "multi_object", system_id="untrained_gru")
    cfg = {**FULL, "lr": STITCH_LR}
    s_planted = _once(benchmark, lambda: simbench.score("model_stitch", planted, B,
                                                        site="hidden", rank=2, **cfg))
    s_plain = simbench.score("model_stitch", plain, B, site="hidden", rank=2, **cfg)
    mas = simbench.score("mas", planted, B, site="hidden", k=2, **FULL)
    m = mas.breakdown["iia_trial"]
    _log("null_space", stitch_rank2_planted=s_planted.value, stitch_rank2_untrained=s_plain.value,
         mas_k2_cross=mas.value, mas_k2_planted_to_b=float(m.values[0, 1]),
         mas_k2_within_planted=float(m.values[0, 0]))


def test_population(benchmark: Any) -> None:
    import simbench
    from simbench.recording import load_recording

    _need_zoo(A)
    pop = ROOT / "recordings" / "population_gru_multi.nc"
    spec = importlib.util.spec_from_file_location("mp", ROOT / "recordings" /
                                                  "make_population.py")
    mp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mp)
    rec = load_recording(pop)
    benchmark.group = "clmas-population"
    for label, r in (("population", rec), ("shuffled", mp.shuffled(rec, seed=0))):
        def go(r: Any = r, label: str = label) -> Any:
            save = f"{SAVE}/clmas_{label}.safetensors" if SAVE else ""
            return simbench.score("clmas", A, r, site="hidden", eps=0.89, k=16, save=save,
                                  **FULL)

        s = _once(benchmark, go) if label == "population" else go()
        for d, fit in s.attrs["cl_fit"].items():
            _log("population", recording=label, direction=d.split("->")[0] + "->B",
                 cosine=fit["cosine"], r2=fit["r2"], r2_unpatched=fit["r2_unpatched"],
                 iia_b_to_a=s.value, iia_a_to_a=s.attrs["within_iia"])


@pytest.mark.parametrize("which", ["baseline_mas", "clmas"])
def test_cost(benchmark: Any, which: str) -> None:
    """Same pair, steps (fixed: no early stop) and batch; whole score() calls."""
    import simbench

    _need_zoo(A, B)
    benchmark.group = "clmas-cost"
    cfg = {**FULL, "max_steps": 200, "patience": 10**6, "eval_every": 50}
    t0 = time.perf_counter()
    if which == "clmas":
        s = benchmark.pedantic(lambda: simbench.score("clmas", A, site="hidden", inaccessible=B,
                                                      eps=0.89, k=16, **REC, **cfg),
                               rounds=2, iterations=1)
    else:
        s = benchmark.pedantic(lambda: simbench.score("mas", A, B, site="hidden", k=16, **cfg),
                               rounds=2, iterations=1)
    _log("cost", which=which, seconds_per_call=(time.perf_counter() - t0) / 2,
         train=s.attrs["train"])
