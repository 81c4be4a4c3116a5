"""The causal engines keep every tensor on the configured device and never wait for it per step.

Two checks that need no GPU but fail the way a GPU run would:

- ``meta`` device: the engine is built and trained on torch's ``meta`` device (tensors with
  shapes but no data). A tensor made on the CPU and mixed into the step fails there exactly as
  it would on ``cuda``, and so does every read-back of a value (``int(t)``, ``t.item()``,
  ``bool(t)``, ``t.nonzero()``), which on a GPU would stall the step until the device is idle.
- a :class:`~torch.overrides.TorchFunctionMode` on the CPU that records, during training
  steps, every tensor factory called from simbench without ``device=`` and every read-back.

The tests marked ``gpu`` run the measures on CUDA against the CPU (skipped without a GPU).
"""

from __future__ import annotations

import itertools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import simbench_plugins
import torch
from torch.overrides import TorchFunctionMode

import simbench
from simbench.interventions.cl_engine import CLEngine
from simbench.interventions.engine import Engine, EngineConfig, Party, directions_for
from simbench.interventions.frozen import cudnn_backward_ready
from simbench.interventions.maps import OrthogonalStitchMap, StitchMap, SubspaceMap
from simbench.interventions.recorded import party_from_arrays
from simbench.interventions.runners import make_runner
from simbench.tasks import MultiObject
from simbench.zoo.models import ModelConfig, build_model

# where simbench's code was imported from (a source tree, or an installed copy)
SIMBENCH_CODE = tuple(str(Path(m.__file__).resolve().parent) for m in (simbench, simbench_plugins))
STEPS = 3


def model(arch: str, seed: int, device: str) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = build_model(ModelConfig(arch=arch)).eval().to(device)
    for p in m.parameters():
        p.requires_grad_(False)
    if torch.device(device).type == "cuda":  # as frozen_on sets up a measure's networks
        assert cudnn_backward_ready(m)
    return m


def config(device: str, **changes: Any) -> EngineConfig:
    return EngineConfig(**{**dict(n_train=256, n_val=64, n_test=48, pool_size=128,
                                  batch_size=64, seed=3, device=device), **changes})


def recorded(seed: int) -> Party:
    """A recording-only party, its activity recorded on the CPU as a recording would be."""
    task = MultiObject()
    stim = task.sample(300, seed, counts="all")
    with torch.no_grad():
        _, rec = model("gru", seed, "cpu").run(torch.as_tensor(stim.tokens), record=("hidden",))
    return party_from_arrays(f"rec{seed}", task, "count", stim.tokens, rec["hidden"].numpy(),
                             stim.variables, seed=0)


def mas_engine(device: str, archs: tuple[str, str] = ("gru", "gru"), site: str = "hidden",
               stepwise: bool = False) -> Engine:
    task = MultiObject()
    parties = [Party(f"m{i}", task, "count", 128, make_runner(model(a, i, device), site))
               for i, a in enumerate(archs)]
    return Engine(parties, SubspaceMap([128, 128], 8, seed=1), directions_for(2),
                  config(device, stepwise=stepwise))


def model_stitch_engine(device: str) -> Engine:
    task = MultiObject()
    parties = [Party(f"m{i}", task, "count", 128, make_runner(model("gru", i, device), "hidden"))
               for i in range(2)]
    cfg = config(device, carry=("phase",))
    return Engine(parties, StitchMap([128, 128], [(0, 1)], 2, seed=0), [(0, 1)], cfg,
                  trained=[(0, 1)])


def clmas_engine(device: str) -> CLEngine:
    task = MultiObject()
    pa = Party("m0", task, "count", 128, make_runner(model("gru", 0, device), "hidden"))
    pb = recorded(1)
    return CLEngine([pa, pb], SubspaceMap([128, pb.width], 8, seed=0),
                    [(0, 0), (1, 0), (0, 1), (1, 1)], config(device), eps=0.5,
                    behaviour=[(0, 0), (1, 0)], latent=[(0, 1), (1, 1)])


def latent_stitch_engine(device: str) -> CLEngine:
    task = MultiObject()
    pa = Party("m0", task, "count", 128, make_runner(model("gru", 0, device), "hidden"))
    pb = recorded(1)
    return CLEngine([pa, pb], OrthogonalStitchMap([128, pb.width], [(0, 1)], seed=0), [(0, 1)],
                    config(device), eps=0.0, behaviour=[], latent=[(0, 1)])


ENGINES: dict[str, Callable[[str], Engine]] = {
    "mas-gru-hidden": mas_engine,
    "mas-gru-transformer": lambda dev: mas_engine(dev, ("gru", "transformer")),
    "mas-lstm-embedding": lambda dev: mas_engine(dev, ("lstm", "gru"), site="embedding"),
    "mas-stepwise-gru-embedding": lambda dev: mas_engine(dev, site="embedding", stepwise=True),
    "mas-stepwise-gru-hidden": lambda dev: mas_engine(dev, stepwise=True),
    "mas-stepwise-transformer": lambda dev: mas_engine(dev, ("transformer", "transformer"),
                                                       stepwise=True),
    "model-stitch": model_stitch_engine,
    "clmas": clmas_engine,
    "latent-stitch": latent_stitch_engine,
}


def train_steps(engine: Engine, n: int = STEPS) -> list[torch.Tensor]:
    """``n`` steps of the loop :meth:`Engine.train` runs (no validation: that reads back)."""
    opt = torch.optim.Adam([p for p in engine.imap.parameters() if p.requires_grad], lr=1e-3)
    return list(itertools.islice(engine.training_steps(opt), n))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ENGINES))
def test_training_steps_run_on_the_meta_device(name: str) -> None:
    """Fails on a CPU tensor mixed into a step, or on any value read back during one."""
    engine = ENGINES[name]("meta")
    losses = train_steps(engine)
    assert [loss.device.type for loss in losses] == ["meta"] * STEPS
    assert {p.device.type for p in engine.imap.parameters()} == {"meta"}
    for split in engine.data.values():
        for d in split.values():
            assert {d.cf.device.type, d.tgt_idx.device.type, d.cf_mask.device.type} == {"meta"}
    for party in engine.parties:
        assert {t.device.type for t in party.latents.values()} == {"meta"}


class Watch(TorchFunctionMode):
    """Records factory calls from simbench code without ``device=``, and value read-backs."""

    FACTORIES = frozenset({"zeros", "ones", "full", "empty", "arange", "tensor", "as_tensor",
                           "randn", "rand", "randint", "randperm", "linspace", "eye"})
    READS = frozenset({"item", "tolist", "__bool__", "__int__", "__float__", "__index__",
                       "nonzero", "cpu", "numpy", "any_nonzero"})

    def __init__(self) -> None:
        super().__init__()
        self.no_device: list[str] = []
        self.reads: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in self.FACTORIES and "device" not in (kwargs or {}):
            where = _caller()
            if where:
                self.no_device.append(f"torch.{name} at {where}")
        elif name in self.READS:
            where = _caller()
            if where:
                self.reads.append(f"{name} at {where}")
        return func(*args, **(kwargs or {}))


def _caller() -> str | None:
    """The simbench line that called torch directly (None when the call came from elsewhere,
    e.g. the optimiser's host-side step counter); ``to_device`` is the sanctioned transfer."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.endswith(PLUMBING):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    file = frame.f_code.co_filename
    if not file.startswith(SIMBENCH_CODE) or file.endswith("devices.py"):
        return None
    return f"{Path(file).name}:{frame.f_lineno}"


PLUMBING = ("torch/overrides.py", "torch/_tensor.py", "torch/utils/_device.py")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mas-gru-hidden", "mas-stepwise-transformer", "clmas"])
def test_no_device_less_tensor_and_no_read_back_per_step(name: str) -> None:
    engine = ENGINES[name]("cpu")
    opt = torch.optim.Adam([p for p in engine.imap.parameters() if p.requires_grad], lr=1e-3)
    steps = engine.training_steps(opt)
    next(steps)  # the first step draws the shuffles
    with Watch() as watch:
        losses = list(itertools.islice(steps, STEPS))
    assert len(losses) == STEPS and all(bool(torch.isfinite(loss)) for loss in losses)
    assert watch.no_device == [], "tensors made without device=: " + "; ".join(watch.no_device)
    assert watch.reads == [], "values read back in a training step: " + "; ".join(watch.reads)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mas-gru-hidden", "mas-gru-transformer",
                                  "mas-stepwise-gru-hidden", "mas-stepwise-gru-embedding",
                                  "mas-stepwise-transformer"])
def test_host_plan_equals_the_plan_read_back(name: str) -> None:
    """Host-planned rows (numpy) and device rows (tensors) give the same logits bit for bit:
    the plan made on the host (buckets, cuts, patched entries) is the one the device gives."""
    engine = ENGINES[name]("cpu")
    rows = torch.arange(64)  # all of n_val: 128 rows in four length buckets
    planned, cont_h = engine.patched_logits("val", 1, [(0, rows.numpy()), (1, rows.numpy())])
    read, cont_d = engine.patched_logits("val", 1, [(0, rows), (1, rows)])
    assert cont_h.host is not None and cont_d.host is None
    assert torch.equal(cont_h.targets, cont_d.targets) and torch.equal(cont_h.mask, cont_d.mask)
    assert torch.equal(planned, read)


def test_to_device_keeps_values_and_dtype() -> None:
    import numpy as np

    from simbench.devices import to_device

    rows = np.array([3, 1, 2], dtype=np.int64)
    on_cpu = to_device(rows, "cpu")
    assert on_cpu.dtype == torch.int64 and on_cpu.tolist() == [3, 1, 2]
    on_meta = to_device(rows, "meta")
    assert on_meta.device.type == "meta" and on_meta.shape == (3,)
    if torch.cuda.is_available():
        on_gpu = to_device(rows, "cuda")
        assert on_gpu.device.type == "cuda" and on_gpu.cpu().tolist() == [3, 1, 2]


# ---- on a GPU ---------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ZOO = ("gru_multi_s1", "gru_multi_s2")
BUDGET = dict(n_train=512, n_val=128, n_test=256, pool_size=300, max_steps=30, eval_every=10,
              progress=False)
GPU_TOLERANCE = 0.06  # float order differs on the GPU; training then drifts a little


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(ENGINES))
def test_cuda_steps_stay_on_the_gpu_and_never_synchronise(name: str) -> None:
    """On CUDA every tensor of the step is on the GPU, and CUDA's sync debug mode sees no
    synchronising call from simbench's code during training steps."""
    engine = ENGINES[name]("cuda")
    train_steps(engine, 1)  # warm-up: cuDNN plans, the first shuffles
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            losses = train_steps(engine, STEPS)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    ours = [f"{Path(w.filename).name}:{w.lineno}: {w.message}" for w in caught
            if str(w.filename).startswith(SIMBENCH_CODE)]
    assert ours == [], "synchronising calls in a training step: " + "; ".join(ours)
    assert {loss.device.type for loss in losses} == {"cuda"}
    assert {p.device.type for p in engine.imap.parameters()} == {"cuda"}
    assert all(bool(torch.isfinite(loss)) for loss in losses)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("measure,params", [
    ("mas", dict(k=16)),
    ("das", dict(k=16)),  # one network against its causal model
    ("clmas", dict(k=16, eps=0.5, record_n=400)),
    ("model_stitch", dict(rank=2)),
    ("latent_stitch", dict(record_n=400)),
])
def test_cuda_scores_equal_the_cpu_scores(measure: str, params: dict[str, Any]) -> None:
    systems = ZOO[:1] if measure == "das" else ZOO
    cpu = simbench.score(measure, *systems, site="hidden", seed=0, device="cpu", **params,
                         **BUDGET)
    gpu = simbench.score(measure, *systems, site="hidden", seed=0, device="cuda", **params,
                         **BUDGET)
    assert gpu.attrs["device"].startswith("cuda")
    assert gpu.value == pytest.approx(cpu.value, abs=GPU_TOLERANCE), (measure, gpu.value,
                                                                      cpu.value)
