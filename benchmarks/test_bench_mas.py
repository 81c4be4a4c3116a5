"""Speed of the intervention engine against a straightforward MAS, in the same run.

- ``mas-step``: one training step (two Multi-Object GRUs, hidden site, k = 32, batch 128 per
  direction, all 4 directions) of the engine against the baseline in ``naive_mas.py`` (full
  d x d orthogonal matrices through the matrix exponential, every direction a separate forward
  pass from BOS). Target: >= 5x interventions per second. The paper's reference code took a
  median 3.2 s per step at these settings on this kind of machine; target <= 0.32 s.
- ``mas-step-gru-tf-site-cache``: a GRU-transformer step with every pass into the transformer
  run from its tokens against passes that start at the transformer's recorded site.
- ``mas-parity``: both trained for the same steps on the same interventions; their test IIA
  must agree within 0.01 in every direction (asserted; extra_info holds both).
- ``mas-n3``: three GRU seeds in one training against the three pairwise trainings: each pair's
  cross-model IIA both ways, and the cost (the paper's open question).

Run: ``.venv/bin/pytest benchmarks/test_bench_mas.py --benchmark-enable`` (add ``-k step`` for
the quick part). Ratios print at the end (benchmarks/conftest.py). ``SIMBENCH_BENCH_DEVICE``
picks the engine's device (default ``cpu``; ``auto`` or ``cuda`` for the GPU: the step is then
timed up to the GPU finishing it, and the CPU-only baseline is skipped).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import torch
from torch.nn.utils import parametrize

from benchmarks.naive_mas import NaiveMAS
from simbench.devices import resolve_device

GRUS = ("gru_multi_s1", "gru_multi_s2", "gru_multi_s3")
PARITY_TOLERANCE = 0.01  # largest test-IIA gap per direction between engine and baseline
DEVICE = resolve_device(os.environ.get("SIMBENCH_BENCH_DEVICE", "cpu"))
ON_CPU = DEVICE == "cpu"


def engine_for(names: tuple[str, ...], k: int = 32, device: str = DEVICE, **cfg: Any):
    from contextlib import ExitStack

    from simbench_plugins import _causal

    from simbench.interventions.engine import Engine, EngineConfig, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.systems.torch import TorchSystem

    systems = [TorchSystem.from_zoo(z) for z in names]
    stack = ExitStack()  # kept on the engine: dropping it would hand the networks back
    nets = _causal.Networks(device, stack)  # the benchmark's own systems: frozen for good
    parties = _causal.build_parties(systems, nets, site="hidden", task=None, variable="")
    config = EngineConfig(seed=0, device=device, **cfg)
    engine = Engine(parties, SubspaceMap([p.width for p in parties], k), directions_for(
        len(parties)), config)
    engine.networks = stack
    return engine


@pytest.fixture(scope="module")
def pair_engine():
    return engine_for(GRUS[:2], n_train=2048, n_val=256, n_test=500, pool_size=1000)


def batches_of(engine, size: int = 128) -> dict:
    """Fixed rows per direction, on the host as the engine's own training loop draws them."""
    g = torch.Generator().manual_seed(0)
    return {d: torch.randint(0, len(engine.data["train"][d].iv), (size,), generator=g).numpy()
            for d in engine.trained}


def training_step(engine, batches: dict):
    """One optimiser-free training step of ``engine`` (loss, backward, clear gradients); on a
    GPU it returns once the GPU has finished the step."""
    params = list(engine.imap.parameters())
    cuda = engine.cfg.device.startswith("cuda")

    def step() -> None:
        with parametrize.cached():
            loss = engine.step_loss(batches)
        loss.backward()
        for p in params:
            p.grad = None
        if cuda:
            torch.cuda.synchronize()

    return step


@pytest.mark.parametrize("impl", ["baseline_naive", "engine"])
def test_step(benchmark: Any, pair_engine, impl: str) -> None:
    benchmark.group = "mas-step-k32-b128-4dirs"
    benchmark.extra_info["device"] = DEVICE
    batches = batches_of(pair_engine)
    if impl != "engine" and not ON_CPU:
        pytest.skip("the naive baseline runs on the CPU only")
    if impl == "engine":
        step = training_step(pair_engine, batches)
    else:
        models = [p.runner.model for p in pair_engine.parties]
        naive = NaiveMAS(models, "hidden", 32, 128)

        def step() -> None:
            loss = naive.loss(pair_engine, batches)
            loss.backward()
            naive.zero_grad(set_to_none=True)

    rounds = 5 if ON_CPU else 30
    benchmark.pedantic(step, rounds=rounds, warmup_rounds=1 if ON_CPU else 3, iterations=1)
    benchmark.extra_info["interventions_per_step"] = 128 * len(batches)


@pytest.mark.parametrize("impl", ["baseline_torch_householder", "wy"])
def test_step_orthogonal_map(benchmark: Any, pair_engine, impl: str) -> None:
    """The subspaces' orthogonal map: torch's ``parametrizations.orthogonal`` (householder,
    its backward applies the reflections one at a time) against the same map in compact WY
    form (:class:`simbench.interventions.subspace.Householder`), on the engine's step above."""
    from torch.nn.utils import parametrizations

    from simbench.interventions.subspace import seeded_orthogonal

    benchmark.group = "mas-step-orthogonal-map"
    subs = [sub.proj for sub in pair_engine.imap.subspaces]

    def swap(to_torch: bool) -> None:
        for lin in subs:
            parametrize.remove_parametrizations(lin, "weight", leave_parametrized=True)
            if to_torch:
                parametrizations.orthogonal(lin, "weight")
            else:
                seeded_orthogonal(lin, None)

    before = [lin.weight.detach().clone() for lin in subs]
    if impl.startswith("baseline"):
        swap(True)
    try:
        for lin, w in zip(subs, before):  # the same subspaces either way
            torch.testing.assert_close(lin.weight.detach(), w, atol=1e-5, rtol=0)
        step = training_step(pair_engine, batches_of(pair_engine))
        benchmark.pedantic(step, rounds=15 if ON_CPU else 30, warmup_rounds=2, iterations=1)
    finally:
        if impl.startswith("baseline"):
            swap(False)


@pytest.fixture(scope="module")
def gru_tf_engine():
    return engine_for((GRUS[0], "tf_multi_s1"), k=16, n_train=2048, n_val=256, n_test=500,
                      pool_size=1000)


@pytest.mark.parametrize("impl", ["baseline_one_pass", "length_buckets"])
def test_step_transformer(benchmark: Any, gru_tf_engine, impl: str) -> None:
    """GRU vs transformer (the paper's finding 2): the transformer has no recurrence to continue
    from, so each patched row is a full pass; length buckets cut each pass after the last token
    its rows need. The baseline is one padded pass over all rows (what the runner did before)."""
    from simbench.interventions.runners import Runner

    benchmark.group = "mas-step-gru-tf-k16-b128-4dirs"
    step = training_step(gru_tf_engine, batches_of(gru_tf_engine))
    runners = [p.runner for p in gru_tf_engine.parties]

    def one_pass(self, cont, run, upto=None):  # the whole width, all rows at once, no cut
        rows = torch.arange(cont.cf.shape[0], device=cont.cf.device)
        return run(rows, cont.targets.shape[1], cont.cf.shape[1], None)

    saved = Runner.in_buckets
    try:
        if impl == "baseline_one_pass":
            for r in runners:
                r.in_buckets = one_pass.__get__(r)  # type: ignore[method-assign]
        benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    finally:
        for r in runners:
            r.__dict__.pop("in_buckets", None)
    assert Runner.in_buckets is saved


@pytest.mark.parametrize("impl", ["baseline_from_tokens", "from_site"])
def test_step_transformer_site_cache(benchmark: Any, gru_tf_engine, impl: str) -> None:
    """GRU vs transformer, length buckets both: every patched pass into the transformer from
    its tokens (the baseline: layer 0 recomputed at every step) against passes that start at
    the recorded site (``EngineConfig.cache_below``: a patch at resid.0 cannot change layer
    0, so it runs once per counterfactual sequence, before timing here)."""
    benchmark.group = "mas-step-gru-tf-site-cache"
    batches = batches_of(gru_tf_engine)
    gru_tf_engine.cfg.cache_below = impl == "from_site"
    try:
        step = training_step(gru_tf_engine, batches)
        benchmark.pedantic(step, rounds=5, warmup_rounds=1, iterations=1)
    finally:
        gru_tf_engine.cfg.cache_below = True
    benchmark.extra_info["device"] = DEVICE


def test_parity(benchmark: Any, pair_engine) -> None:
    """Same data, same steps: the engine and the baseline reach the same IIA."""
    benchmark.group = "mas-parity"
    if not ON_CPU:
        pytest.skip("the naive baseline runs on the CPU only")
    steps = int(os.environ.get("SIMBENCH_PARITY_STEPS", "1000"))

    def train_both() -> dict:
        torch.manual_seed(0)
        models = [p.runner.model for p in pair_engine.parties]
        naive = NaiveMAS(models, "hidden", 32, 128)
        opt = torch.optim.Adam(naive.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            b = {d: torch.randint(0, 2048, (128,), generator=g) for d in pair_engine.trained}
            loss = naive.loss(pair_engine, b)
            opt.zero_grad()
            loss.backward()
            opt.step()
        naive_s = time.perf_counter() - t0
        pair_engine.cfg.max_steps, pair_engine.cfg.patience = steps, 10 ** 6
        pair_engine.cfg.stop_at = 2.0
        log = pair_engine.train(progress=False)
        engine_iia = pair_engine.iia("test")
        naive_iia = naive.iia(pair_engine, "test")
        return {"engine": engine_iia, "naive": naive_iia, "engine_s": log.seconds,
                "naive_s": naive_s}

    out = benchmark.pedantic(train_both, rounds=1, iterations=1)
    diffs = {f"{s}->{t}": abs(out["engine"][(s, t)] - out["naive"][(s, t)])
             for s, t in out["engine"]}
    benchmark.extra_info.update({"engine_iia": {f"{s}->{t}": v for (s, t), v in
                                                out["engine"].items()},
                                 "naive_iia": {f"{s}->{t}": v for (s, t), v in
                                               out["naive"].items()},
                                 "engine_s": out["engine_s"], "naive_s": out["naive_s"],
                                 "max_abs_diff": max(diffs.values())})
    print("parity", benchmark.extra_info)
    assert max(diffs.values()) <= PARITY_TOLERANCE, (
        f"engine and baseline disagree by more than {PARITY_TOLERANCE} in test IIA: {diffs}")


def test_three_at_once_against_pairs(benchmark: Any) -> None:
    benchmark.group = "mas-n3"
    cfg = dict(n_train=10_000, n_val=1_000, n_test=1_000, stop_at=0.97)

    def run() -> dict:
        out: dict[str, Any] = {}
        t0 = time.perf_counter()
        three = engine_for(GRUS, k=16, **cfg)
        three.train(progress=False)
        res = three.iia("test")
        out["n3_seconds"] = time.perf_counter() - t0
        out["n3"] = {f"{GRUS[s]}->{GRUS[t]}": v for (s, t), v in res.items() if s != t}
        out["pairs_seconds"] = 0.0
        out["pairs"] = {}
        for a in range(3):
            for b in range(a + 1, 3):
                t0 = time.perf_counter()
                eng = engine_for((GRUS[a], GRUS[b]), k=16, **cfg)
                eng.train(progress=False)
                r = eng.iia("test")
                out["pairs_seconds"] += time.perf_counter() - t0
                out["pairs"][f"{GRUS[a]}->{GRUS[b]}"] = r[(0, 1)]
                out["pairs"][f"{GRUS[b]}->{GRUS[a]}"] = r[(1, 0)]
        return out

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    print("n3 vs pairs", out)
