"""The captured training step (simbench.interventions.capture) against the eager one, on the CPU.

The captured step pads every continuation to a length bucket and compiles the step loss; it
must train exactly as the eager step does: the same loss, gradients and subspace updates to
1e-5 over several Adam steps on two zoo GRUs, and the same test IIA (within 0.01) after a short
MAS training. On a GPU the same code runs as CUDA graphs (``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from simbench.errors import ParameterError
from simbench.interventions.capture import (
    CapturedStep,
    CaptureWarning,
    captured_loss,
    length_bucket,
    unsupported,
    wanted,
)

PAIR = ("gru_multi_s1", "gru_multi_s2")
SMALL = {"n_train": 256, "n_val": 64, "n_test": 200, "pool_size": 200, "batch_size": 32}


def make_engine(capture: str = "off", seed: int = 0, k: int = 8, **cfg: Any) -> Any:
    """An engine of two zoo GRUs (hidden site, all 4 directions) on the CPU."""
    from contextlib import ExitStack

    from simbench_plugins import _causal

    from simbench.interventions.engine import Engine, EngineConfig, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.systems.torch import TorchSystem

    stack = ExitStack()
    parties = _causal.build_parties([TorchSystem.from_zoo(z) for z in PAIR],
                                    _causal.Networks("cpu", stack), site="hidden", task=None,
                                    variable="")
    config = EngineConfig(seed=seed, device="cpu", capture=capture, **{**SMALL, **cfg})
    engine = Engine(parties, SubspaceMap([p.width for p in parties], k, seed=seed),
                    directions_for(2), config)
    engine.networks = stack  # keeps the networks frozen while the engine lives
    return engine


def test_auto_captures_on_cuda_only_and_bad_modes_are_refused() -> None:
    assert wanted("auto", "cuda") and wanted("auto", "cuda:1") and not wanted("auto", "cpu")
    assert wanted("on", "cpu") and not wanted("off", "cuda")
    with pytest.raises(ParameterError, match="capture = 'yes'"):
        wanted("yes", "cpu")


def test_length_buckets_round_up_and_stop_at_the_longest_continuation() -> None:
    assert [length_bucket(n, 41) for n in (1, 16, 17, 32, 33, 41)] == [16, 16, 32, 32, 41, 41]
    assert length_bucket(5, 3) == 5  # never shorter than what the batch needs
    assert length_bucket(7, 12, quantum=4) == 8


@pytest.mark.slow
def test_what_cannot_be_captured_runs_eagerly_and_on_says_why() -> None:
    engine = make_engine(stepwise=True)
    from simbench.interventions.cl_engine import CLEngine
    from simbench.interventions.engine import Engine

    assert unsupported(engine, Engine) == "stepwise interventions"
    assert captured_loss(engine, Engine, "auto") is None  # the CPU: auto is off, silently
    with pytest.warns(CaptureWarning, match="stepwise interventions"):
        assert captured_loss(engine, Engine, "on") is None
    plain = make_engine()
    assert unsupported(plain, Engine) is None
    assert captured_loss(plain, Engine, "off") is None
    assert isinstance(captured_loss(plain, Engine, "on"), CapturedStep)
    plain.__class__ = CLEngine  # an objective with its own terms is never captured
    assert unsupported(plain, Engine) == "CLEngine has its own step_loss (its objective differs)"


def test_a_step_is_planned_on_the_host_with_a_padded_length() -> None:
    engine = make_engine()
    step = CapturedStep(engine, backend="eager")
    batches = {d: torch.arange(32).numpy() for d in engine.trained}
    plan, rows, length = step.plan(batches)
    assert [t for t, _ in plan] == [0, 1] and all(len(s) == 2 for _, s in plan)
    assert len(rows) == 4 and all(r.shape == (32,) for r in rows)
    need = max(int(engine.data["train"][d].need[:32].max()) for d in engine.trained)
    assert length == length_bucket(need, step.longest) and length >= need


def _train(engine: Any, steps: int) -> list[dict[str, Any]]:
    """``steps`` Adam steps through the engine's own loop: loss, gradients, parameters."""
    params = [p for p in engine.imap.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2)
    gen = engine.training_steps(opt)
    out = []
    for _ in range(steps):
        loss = next(gen)
        out.append({"loss": loss.item(), "grads": [p.grad.clone() for p in params],
                    "params": [p.detach().clone() for p in params],
                    "U": [engine.imap.U(i).detach().clone() for i in range(2)]})
    return out


def _same_training(backend: str) -> None:
    import os

    os.environ["SIMBENCH_CAPTURE_BACKEND"] = backend
    try:
        eager, captured = make_engine("off"), make_engine("on")
        with warnings.catch_warnings():
            warnings.simplefilter("error", CaptureWarning)  # a fallback would prove nothing
            a, b = _train(eager, 4), _train(captured, 4)
    finally:
        del os.environ["SIMBENCH_CAPTURE_BACKEND"]
    assert a[0]["loss"] > 0.1  # a real loss, not a degenerate one
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)
        for key in ("grads", "params", "U"):
            for u, v in zip(x[key], y[key]):
                assert torch.allclose(u, v, atol=1e-5, rtol=0), key
    assert not torch.allclose(a[0]["U"][0], a[-1]["U"][0])  # the rotations did move


@pytest.mark.slow
def test_the_traced_step_trains_as_the_eager_step() -> None:
    """Dynamo's trace of the padded step (no code generation): losses, gradients and
    subspaces over 4 Adam steps equal the eager step's to 1e-5."""
    _same_training("eager")


@pytest.mark.slow
def test_the_compiled_step_trains_as_the_eager_step() -> None:
    """The same with inductor's CPU code (what a GPU runs as CUDA graphs, less the graphs)."""
    _same_training("inductor")


@pytest.mark.slow
def test_a_short_mas_training_scores_the_same_captured() -> None:
    """60 steps of MAS both ways: test IIA within 0.01 in every direction."""
    cfg = {"max_steps": 60, "eval_every": 20, "patience": 100, "stop_at": 1.0, "lr": 1e-2}
    eager, captured = make_engine("off", **cfg), make_engine("on", **cfg)
    eager.train(progress=False)
    captured.train(progress=False)
    a, b = eager.iia("test"), captured.iia("test")
    assert max(a.values()) > 0.2  # training moved the subspaces past chance
    for d in a:
        assert abs(a[d] - b[d]) <= 0.01, (d, a[d], b[d])
