"""TorchSystem: zoo models and a user's own module, recorded into the recording schema."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from simbench.errors import SiteError, TaskError
from simbench.recording import load_recording, save_recording
from simbench.systems.torch import TorchSystem
from simbench.tasks import Arithmetic, MultiObject


def test_zoo_recording_round_trip_and_variables(tmp_path):
    system = TorchSystem.from_zoo("gru_multi_s1")
    assert system.access == "accessible" and system.sites == ("embedding", "hidden")
    rec = system.record(n=200, seed=3)
    path = save_recording(rec, tmp_path / "gru.nc")
    back = load_recording(path)
    assert back.system_id == "gru_multi_s1" and back.task == "multi_object"
    task = MultiObject()
    for site in system.sites:
        a, b = rec.site(site), back.site(site)
        np.testing.assert_array_equal(a["activity"].values, b["activity"].values)
        for coord in ("stimulus_id", "token", "valid", "count", "phase"):
            np.testing.assert_array_equal(a[coord].values, b[coord].values)
    ds = back.site("hidden")
    tokens = task.encode([" ".join(t for t in row if t != "PAD") for row in ds["token"].values])
    truth = task.causal_model(tokens)
    width = tokens.shape[1]
    np.testing.assert_array_equal(ds["count"].values[:, :width], truth["count"])
    np.testing.assert_array_equal(ds["phase"].values[:, :width], truth["phase"])
    # the activity is the model's own: the hidden site equals a fresh run
    with torch.no_grad():
        _, direct = system.run(tokens[:5], record=("hidden",))
    got = ds["activity"].values[:5, :width]
    valid = ds["valid"].values[:5, :width]
    np.testing.assert_allclose(got[valid], direct["hidden"].numpy()[valid], atol=1e-6)


def test_arithmetic_recording_has_its_variables():
    rec = TorchSystem.from_zoo("gru_arith_s1").record(n=50, seed=1)
    ds = rec.site("hidden")
    assert {"cumu_val", "rem_ops"} <= set(ds.coords)
    assert ds["cumu_val"].values.max() <= 20 and ds["rem_ops"].values.max() <= Arithmetic.max_ops


class TinyLM(nn.Module):
    """A user's own model: embedding, two causal mixing layers, a read-out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(34, 16)
        self.layers = nn.ModuleList([nn.Linear(16, 16), nn.Linear(16, 16)])
        self.out = nn.Linear(16, 34)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens)
        for layer in self.layers:
            h = torch.tanh(layer(h.cumsum(1)))
        return self.out(h)


def test_user_module_by_module_path(tmp_path):
    # the README's example
    system = TorchSystem(TinyLM(), "multi_object", sites={"hidden": "layers.0", "emb": "emb"},
                         system_id="tiny")
    rec = system.record(n=100, seed=0)
    assert rec.site("hidden")["activity"].shape[::2] == (100, 16)
    save_recording(rec, tmp_path / "tiny.nc")
    assert system.site_dims == {"hidden": 16, "emb": 16}
    # a hook patch changes what follows, and only from the patched position on
    tok = torch.as_tensor(MultiObject().sample(4, 0, counts="all").tokens)
    logits, rec_ = system.run(tok, record=("hidden",))
    mask = torch.zeros(tok.shape, dtype=torch.bool)
    mask[:, 3] = True
    patched, _ = system.run(tok, edits={"hidden": (mask, torch.zeros_like(rec_["hidden"]))})
    assert torch.equal(patched[:, :3], logits[:, :3])
    assert not torch.allclose(patched[:, 3:], logits[:, 3:])


def test_bad_site_path_lists_the_module_paths():
    with pytest.raises(SiteError, match=r"emb, layers, layers\.0, layers\.1, out"):
        TorchSystem(TinyLM(), "multi_object", sites={"hidden": "layer.0"})
    with pytest.raises(SiteError, match="hidden"):
        TorchSystem.from_zoo("gru_multi_s1").record(n=5, sites=["resid.0"])


def test_recording_1000_stimuli_is_fast():
    # timing lives in benchmarks/test_bench_zoo.py; here: 1,000 stimuli in one batched call
    system = TorchSystem.from_zoo("gru_multi_s2")
    rec = system.record(n=1000, seed=0)
    assert rec.site("hidden")["activity"].shape[0] == 1000


class Pooled(nn.Module):
    """A module whose ``pool`` site outputs [B, d], which a recording cannot use."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(34, 4)
        self.norm = nn.LayerNorm(4)
        self.pool = nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(self.emb(tokens)).mean(1))


def test_record_that_raises_gives_back_each_modules_mode():
    system = TorchSystem(Pooled(), MultiObject(), sites={"pooled": "pool"}, system_id="p")
    system.module.train()
    system.module.norm.eval()  # a mixed state, e.g. a frozen normalisation layer
    with pytest.raises(SiteError, match="not \\[B, T, d\\]"):
        system.record(n=4, seed=0)
    assert system.module.training and system.module.emb.training
    assert not system.module.norm.training


def test_task_objects_and_names_give_the_same_system():
    by_object = TorchSystem(TinyLM(), MultiObject(), sites={"hidden": "layers.0"})
    by_name = TorchSystem(TinyLM(), "multi_object", sites={"hidden": "layers.0"})
    assert by_object.task == by_name.task == "multi_object"
    a = by_object.record(n=8, seed=2).site("hidden")["activity"].values
    b = by_name.record(n=8, seed=2).site("hidden")["activity"].values
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TaskError, match=r"(?s)unknown task .multi_objekt.*did you mean"):
        TorchSystem(TinyLM(), "multi_objekt", sites={"hidden": "layers.0"})
