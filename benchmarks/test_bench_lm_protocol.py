"""One job of the language-model case study, the fast path against the previous one, in one
run (``lm-protocol`` group).

Both score one MAS job of ``benchmarks/specs/lm_toxicity.toml`` exactly as the spec runs it
(its prompts, continuation length and ``[measures.mas]`` settings: the embedding, k = 16, the
data-driven start, the step cap, the 20-draw null), by default ``lm_toxic_s2`` against
``lm_toxic_s3`` (``SIMBENCH_LM_JOB=a,b`` names two other zoo models), on one thread:

- ``baseline``: the previous path: the embedding's states read by a full forward pass of
  every counterfactual sequence, and the models' own kernels (GPT-2's eight-operation
  ``gelu_new``, PyTorch's scaled-dot-product attention);
- ``fast``: the path :mod:`simbench.lm.measure` runs now: the embedding's states are the
  embedding lookup alone (:class:`simbench.lm.runner.LMRunner`), and the fused kernels of
  :mod:`simbench.lm.kernels` (one-kernel tanh GELU, eager attention on the CPU).

The two compute the same function, so their scores must agree (token and whole-continuation
IIA within 0.01: float rounding may flip a near-tied prediction); each records its CPU seconds
in ``extra_info`` and the ratio of the wall times prints at the end (on a shared machine the
CPU seconds are the fairer figure: both print). Measured on a shared two-core AVX2 machine
(load 5-7): the same scores (token IIA 0.7832, whole 0.1530), 50.4 CPU s against 98.3
(1.95x less), 72 s wall against 117 s. bf16 is not tried: this CPU (AVX2, no
AVX512-BF16 or AMX) has no native bf16 arithmetic.

Run: ``OMP_NUM_THREADS=1 .venv/bin/pytest benchmarks/test_bench_lm_protocol.py
--benchmark-enable -s``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

SPEC = Path(__file__).resolve().parent / "specs" / "lm_toxicity.toml"
JOB = tuple(os.environ.get("SIMBENCH_LM_JOB", "lm_toxic_s2,lm_toxic_s3").split(","))
SCORES: dict[str, Any] = {}


def _job_settings() -> dict[str, Any]:
    """The spec's MAS settings, prompts and continuation length for one job (seed 0)."""
    from simbench.bench.spec import load_spec

    spec = load_spec(SPEC, trusted=False)
    mas = spec.measures["mas"]
    (params,) = mas.grid()  # one job: the spec sweeps nothing
    assert spec.prompts is not None
    return {"site": (mas.sites or spec.sites)[0], "prompts": list(spec.prompts.prompts),
            "new_tokens": spec.new_tokens, **params}


def _score(previous: bool, monkeypatch: Any) -> Any:
    import torch

    import simbench
    from simbench.lm import measure
    from simbench.lm.runner import LMRunner
    from simbench.zoo.lm_build import lm_model_dir

    if previous:
        monkeypatch.setattr(measure, "FAST_KERNELS", False)
        monkeypatch.setattr(LMRunner, "embedding_lookup", False)
    torch.set_num_threads(1)
    a, b = (str(lm_model_dir(name)) for name in JOB)
    return simbench.score("mas", a, b, seed=0, **_job_settings())


@pytest.fixture(scope="module")
def warm() -> None:
    """Import and load once before either path is timed (a job runner imports once too)."""
    from simbench.lm import load_lm
    from simbench.zoo.lm_build import lm_model_dir

    load_lm(lm_model_dir(JOB[0]), prompts=["x"])


@pytest.mark.slow
@pytest.mark.benchmark(group="lm-protocol")
@pytest.mark.parametrize("path", ["baseline", "fast"])
def test_lm_protocol(benchmark: Any, path: str, monkeypatch: Any, warm: None) -> None:
    start = time.process_time()
    score = benchmark.pedantic(_score, args=(path == "baseline", monkeypatch),
                               rounds=1, iterations=1)
    cpu = time.process_time() - start
    a = score.attrs
    benchmark.extra_info.update({
        "job": ",".join(JOB), "token_iia": score.value, "trial_iia": a["trial_iia"],
        "within_trial": a["within_iia"], "within_token": a["within_token_iia"],
        "steps": a["train"]["steps"], "stopped": a["train"]["stopped"], "cpu_s": round(cpu, 1)})
    SCORES[path] = (score, cpu)
    print(f"\n{path}: token IIA {score.value:.4f}, whole {a['trial_iia']:.4f}, within "
          f"{a['within_iia']:.3f} (token {a['within_token_iia']:.3f}), "
          f"{a['train']['steps']} steps, {cpu:.1f} CPU s")
    if path == "fast" and "baseline" in SCORES:
        base, base_cpu = SCORES["baseline"]
        print(f"fast / baseline CPU seconds: {cpu:.1f} / {base_cpu:.1f} = "
              f"{cpu / base_cpu:.2f} ({base_cpu / cpu:.2f}x faster)")
        assert score.value == pytest.approx(base.value, abs=0.01)
        assert a["trial_iia"] == pytest.approx(base.attrs["trial_iia"], abs=0.01)
        assert cpu < base_cpu
