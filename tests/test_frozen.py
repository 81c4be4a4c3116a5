"""Causal measures borrow the caller's networks and give them back exactly as they were.

A measure runs a network frozen (eval mode, no gradients) on its own device. The network is
the caller's: a notebook goes on training it, a harness worker scores the same cached system
in the next job. After a measure, returning or raising, every parameter and buffer is the
same tensor on the same device, each parameter's ``requires_grad`` and gradient are as they
were, and every submodule keeps its train/eval mode.
"""

from __future__ import annotations

import pytest
import torch

import simbench
from simbench.interventions.frozen import frozen_on
from simbench.systems.torch import TorchSystem

TINY = dict(n_train=64, n_val=16, n_test=16, pool_size=64, max_steps=2, eval_every=2,
            progress=False)


class Mixer(torch.nn.Module):
    """A user's network: a causal mixer with dropout and a buffer (site ``hidden`` = ``mix``)."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(34, width)
        self.mix = torch.nn.Linear(width, width)
        self.drop = torch.nn.Dropout(0.1)
        self.out = torch.nn.Linear(width, 34)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.mix(self.emb(tokens).cumsum(1) * self.scale))
        return self.out(self.drop(h))


def user_network(seed: int) -> Mixer:
    """Mixed state, as a user mid-way through their own training leaves it."""
    m = Mixer(16, seed).train()
    m.mix.eval()  # one submodule in eval mode, the rest training
    m.emb.weight.requires_grad_(False)  # one parameter frozen by the user, the rest trainable
    m.out.weight.grad = torch.full_like(m.out.weight, 0.25)  # a gradient the user has pending
    return m


def snapshot(module: torch.nn.Module) -> dict:
    return {
        "params": {n: (p, p.data_ptr(), p.device, p.requires_grad, p.grad,
                       p.detach().clone()) for n, p in module.named_parameters()},
        "buffers": {n: (b, b.data_ptr(), b.device) for n, b in module.named_buffers()},
        "modes": {n: m.training for n, m in module.named_modules()},
    }


def assert_unchanged(module: torch.nn.Module, before: dict) -> None:
    after = snapshot(module)
    assert after["modes"] == before["modes"]
    assert after["buffers"].keys() == before["buffers"].keys()
    for name, (b, ptr, dev) in before["buffers"].items():
        b2, ptr2, dev2 = after["buffers"][name]
        assert (b2 is b, ptr2, dev2) == (True, ptr, dev), name
    assert after["params"].keys() == before["params"].keys()
    for name, (p, ptr, dev, flag, grad, value) in before["params"].items():
        p2, ptr2, dev2, flag2, grad2, _ = after["params"][name]
        assert p2 is p and ptr2 == ptr and dev2 == dev, name
        assert flag2 == flag, f"{name}: requires_grad {flag} -> {flag2}"
        assert grad2 is grad, name
        torch.testing.assert_close(p2.detach(), value, atol=0, rtol=0)


def pair() -> tuple[TorchSystem, TorchSystem]:
    return tuple(TorchSystem(user_network(i), "multi_object", sites={"hidden": "mix"},
                             system_id=f"user{i}") for i in (0, 1))


def test_frozen_on_restores_device_grads_and_modes_also_on_error():
    net = user_network(0)
    before = snapshot(net)
    with frozen_on(net, "meta"):  # a device move that cannot be undone by copying back
        assert all(p.device.type == "meta" and not p.requires_grad for p in net.parameters())
        assert not any(m.training for m in net.modules())
    assert_unchanged(net, before)
    with pytest.raises(RuntimeError, match="midway"), frozen_on(net, "meta"):
        raise RuntimeError("midway")
    assert_unchanged(net, before)


@pytest.mark.slow
@pytest.mark.parametrize("measure,params", [
    ("mas", dict(k=4, stepwise=True)),
    ("das", dict(k=4, stepwise=True)),
    ("model_stitch", dict(rank=2)),
    ("latent_stitch", dict(record_n=120)),
    ("clmas", dict(k=4, eps=0.5, record_n=120)),
])
def test_a_measure_leaves_the_networks_as_it_found_them(measure, params):
    systems = pair()[:1] if measure == "das" else pair()
    before = [snapshot(s.module) for s in systems]
    s = simbench.score(measure, *systems, site="hidden", seed=0, device="cpu", **params,
                       **TINY)
    assert s.value == s.value  # a number came out
    for system, snap in zip(systems, before):
        assert_unchanged(system.module, snap)


def test_a_measure_that_raises_midway_leaves_them_too(tmp_path):
    systems = pair()
    before = [snapshot(s.module) for s in systems]
    with pytest.raises(simbench.SimbenchError, match="no such alignment file"):
        simbench.score("mas", *systems, site="hidden", k=4, stepwise=True, device="cpu",
                       load=str(tmp_path / "missing.safetensors"), **TINY)
    for system, snap in zip(systems, before):
        assert_unchanged(system.module, snap)


def test_a_measure_that_fails_on_its_device_moves_them_back():
    """Scoring on torch's "meta" device moves the networks there and fails at the first
    value it needs: they are back on their own device, as the same tensors."""
    from simbench.registry import get_registry

    systems = pair()
    before = [snapshot(s.module) for s in systems]
    measure = get_registry().measure("mas")
    params = measure.resolve_params(dict(k=4, stepwise=True, **TINY))
    with pytest.raises((RuntimeError, NotImplementedError)):
        measure.score(list(systems), site="hidden", task=None, seed=0, device="meta", **params)
    for system, snap in zip(systems, before):
        assert_unchanged(system.module, snap)


def test_recurrent_layers_are_made_ready_for_cudnn_backward_only_where_nothing_changes() -> None:
    """cuDNN runs an RNN backward only in train mode: single-layer or dropout-free RNNs are put
    in train mode (same computation), a multi-layer RNN with dropout is left for cuDNN off."""
    import torch
    from torch import nn

    from simbench.interventions.frozen import cudnn_backward_ready

    plain = nn.Sequential(nn.GRU(4, 8, batch_first=True), nn.Linear(8, 2), nn.Dropout(0.5)).eval()
    assert cudnn_backward_ready(plain)
    assert plain[0].training and not plain[1].training and not plain[2].training
    x = torch.randn(3, 5, 4)
    gru = plain[0]
    out_train = gru(x)[0]
    gru.eval()
    torch.testing.assert_close(out_train, gru(x)[0], atol=0, rtol=0)
    stacked = nn.LSTM(4, 8, num_layers=2, dropout=0.3).eval()
    assert not cudnn_backward_ready(stacked) and not stacked.training
