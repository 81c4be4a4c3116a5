"""What the engine does before its first step costs no score: its Adam is torch's, bit for bit;
the test split recorded when first read equals one recorded up front; a run that reaches
``stop_at`` says when, in seconds since its process started."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import psutil
import torch

from simbench.interventions.adam import Adam
from simbench.interventions.engine import Engine, EngineConfig, Party, directions_for
from simbench.interventions.maps import SubspaceMap
from simbench.interventions.runners import make_runner
from simbench.tasks import MultiObject
from simbench.zoo.models import ModelConfig, build_model


def test_adam_takes_torchs_steps_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    ours = [torch.randn(5, 3, generator=g, requires_grad=True),
            torch.randn(7, generator=g, requires_grad=True)]
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    opt_ours, opt_theirs = Adam(ours, lr=3e-3), torch.optim.Adam(theirs, lr=3e-3)
    for step in range(6):
        target = torch.randn(5, 3, generator=g)
        for params, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            loss = ((params[0] - target) ** 2).sum() + params[1].sin().sum() * (step + 1)
            loss.backward()
            opt.step()
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b), f"step {step}: parameters differ"
    assert all(p.grad is not None for p in ours)  # the last step's gradients stay
    opt_ours.zero_grad()
    assert all(p.grad is None for p in ours)


def _engine(seed: int = 3) -> Engine:
    task = MultiObject()
    models = []
    for i in range(2):
        torch.manual_seed(i)
        models.append(build_model(ModelConfig(arch="gru")).eval().requires_grad_(False))
    parties = [Party(f"m{i}", task, "count", 128, make_runner(m, "hidden"))
               for i, m in enumerate(models)]
    cfg = EngineConfig(n_train=256, n_val=64, n_test=48, pool_size=128, max_steps=4,
                       eval_every=2, seed=seed, stop_at=0.0)
    return Engine(parties, SubspaceMap([128, 128], 8, seed=1), directions_for(2), cfg)


def test_test_split_is_recorded_when_first_read_and_equals_an_upfront_recording() -> None:
    engine = _engine()
    party = engine.parties[0]
    assert "test" in party.latents and "test" in party.latents.pending  # waiting, not recorded
    assert "test" not in party.runner.latents
    results = engine.evaluate("test")
    assert "test" not in party.latents.pending
    stim = party.pools["test"].stimuli
    whole = make_runner(party.runner.model, "hidden").cache("whole", torch.as_tensor(stim.tokens))
    real = torch.as_tensor(np.asarray(stim.tokens) != stim.pad)
    assert not real.all()  # the pool has padding, which the engine's recording skips
    recorded = party.latents["test"]
    torch.testing.assert_close(recorded[real], whole[real], atol=1e-6, rtol=1e-5)
    assert (recorded[~real] == 0).all(-1).any()  # padding past a bucket's longest row: skipped
    assert set(results) == set(engine.directions)


def test_stepwise_engines_record_every_position() -> None:
    """A stepwise patch reads a source at every position of the target's sequence, which can
    lie past the source's own end: its pools are recorded whole."""
    task = MultiObject()
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="gru")).eval().requires_grad_(False)
    party = Party("m", task, "count", 128, make_runner(model, "hidden"))
    cfg = EngineConfig(n_train=64, n_val=32, n_test=32, pool_size=128, stepwise=True)
    Engine([party], SubspaceMap([128], 8, seed=1), [(0, 0)], cfg)
    whole = make_runner(model, "hidden").cache("whole",
                                               torch.as_tensor(party.pools["train"].tokens))
    torch.testing.assert_close(party.latents["train"], whole, atol=1e-6, rtol=1e-5)


def test_reaching_stop_at_records_when_since_the_process_started() -> None:
    from simbench_plugins._causal import process_started, train_summary

    engine = _engine()
    before = time.time()
    log = engine.train(progress=False)
    assert log.stopped.startswith("validation IIA reached 0.0")
    assert before <= log.reached_at <= time.time()
    summary = train_summary(log)
    assert summary["reached_s"] > 0
    assert abs(summary["reached_s"] - (log.reached_at - process_started())) < 0.01
    assert "test_seconds" not in summary  # set by whoever evaluates (run_engine)


def test_top_directions_are_the_svds_up_to_each_columns_sign() -> None:
    from simbench.interventions.init import top_directions

    g = torch.Generator().manual_seed(1)
    h = torch.randn(3000, 24, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, 24,
                                                                               dtype=torch.float64)
    h = h @ torch.linalg.qr(torch.randn(24, 24, generator=g, dtype=torch.float64)).Q
    ours = top_directions(h, 6)
    _, _, vt = torch.linalg.svd(h, full_matrices=False)
    signs = torch.sign((ours * vt[:6].T).sum(0))
    assert set(signs.tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(ours * signs, vt[:6].T, atol=1e-10, rtol=0)


def test_process_started_is_when_the_command_was_launched() -> None:
    """The start ``reached_s`` counts from is the launch, to a few clock ticks: psutil's
    create_time alone rests on a boot time in whole seconds (up to a second early)."""
    from simbench_plugins._causal import process_started

    code = "from simbench_plugins._causal import process_started; print(repr(process_started()))"
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    started = float(out.stdout)
    assert launched - 0.05 <= started <= launched + 0.5
    assert process_started() <= time.time()
    created = psutil.Process().create_time()
    assert created - 0.05 <= process_started() <= created + 1.05
