"""The language-model protocol against today's path, in one run (``lm-protocol`` group).

Both align ``lm_toxic_s1`` with an exact permuted copy of itself (:mod:`simbench.lm.reparam`)
at ``embedding`` on the same 160 held-out prompts, 8 new tokens, k = 16, until every direction's
validation IIA (whole continuation) reaches ``SIMBENCH_LM_TARGET`` (default 0.85, the done-when
level) or the same step cap (``SIMBENCH_LM_STEPS``, default 100, so the pair runs in minutes):
time to the target IIA, not time per step, is what a user waits for.

- ``baseline``: today's path: a random start, the step anywhere, the measure's generic
  defaults (batch 128 per direction, 1,000 validation interventions every 25 steps, 1,000
  test interventions);
- ``protocol``: the language-model protocol of :mod:`simbench.lm.measure`: the data-driven
  start, the step away from both ends, :data:`~simbench.lm.measure.LM_DEFAULTS` (batch 64,
  256 validation interventions every 50 steps, early stop at 0.98 or a plateau).

Each records its within-model and cross IIA (token and whole continuation), its steps and its
CPU seconds in ``extra_info``; the ratio of the wall times prints at the end. The protocol
must reach the target (held-out within-model IIA at most 0.05 under it) with a cross IIA
within 0.05 of the within-model IIA.
bf16 is not tried: this CPU (AVX2, no AVX512-BF16 or AMX) has no native bf16 arithmetic.

Run: ``.venv/bin/pytest benchmarks/test_bench_lm_protocol.py --benchmark-enable -s``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

STEPS = int(os.environ.get("SIMBENCH_LM_STEPS", "100"))
TARGET = float(os.environ.get("SIMBENCH_LM_TARGET", "0.85"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, list[str]]:
    from simbench.lm.reparam import save_permuted_copy
    from simbench.zoo.lm_build import lm_model_dir
    from simbench.zoo.lm_corpus import prompts

    src = lm_model_dir("lm_toxic_s1")
    copy = save_permuted_copy(src, Path(tmp_path_factory.mktemp("lm_protocol")) / "perm")
    return str(src), str(copy), prompts(160, 7)


def _score(pair: tuple[str, str, list[str]], legacy: bool, monkeypatch: Any) -> Any:
    import simbench
    from simbench.lm import measure
    from simbench.lm.engine import LMEngine

    if legacy:
        monkeypatch.setattr(measure, "LM_DEFAULTS", {})
        monkeypatch.setattr(LMEngine, "min_before", 0)
        monkeypatch.setattr(LMEngine, "min_after", 0)
    a, b, prompts = pair
    return simbench.score("mas", a, b, site="embedding", prompts=prompts, stepwise=True,
                          max_steps=STEPS, stop_at=TARGET, progress=False)


def _record(benchmark: Any, score: Any, cpu: float) -> None:
    benchmark.extra_info.update({
        "within_trial": score.attrs["within_iia"], "within_token": score.attrs["within_token_iia"],
        "cross_trial": score.attrs["trial_iia"], "cross_token": score.attrs["token_iia"],
        "steps": score.attrs["train"]["steps"], "stopped": score.attrs["train"]["stopped"],
        "cpu_s": round(cpu, 1)})
    print(f"\n{benchmark.name}: within {score.attrs['within_iia']:.3f} (token "
          f"{score.attrs['within_token_iia']:.3f}), cross {score.attrs['trial_iia']:.3f} "
          f"(token {score.attrs['token_iia']:.3f}), {score.attrs['train']['steps']} steps, "
          f"{cpu:.0f} CPU s")


@pytest.mark.slow
@pytest.mark.benchmark(group="lm-protocol")
@pytest.mark.parametrize("path", ["baseline", "protocol"])
def test_lm_protocol(benchmark: Any, pair: Any, path: str, monkeypatch: Any) -> None:
    start = time.process_time()
    score = benchmark.pedantic(_score, args=(pair, path == "baseline", monkeypatch),
                               rounds=1, iterations=1)
    _record(benchmark, score, time.process_time() - start)
    if path == "protocol":
        assert score.attrs["within_iia"] >= TARGET - 0.05
        assert abs(score.attrs["trial_iia"] - score.attrs["within_iia"]) <= 0.05
