"""A zoo architecture is one file plus one registration: a toy Elman RNN, defined and
registered here without touching the library, trains with its own defaults, saves and loads as
a verified checkpoint, records, gets an exact planted copy, is laid out for the validity check
and planned by the harness with its own cost weight."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from bench_helpers import PLUGIN, make_recordings, write_spec
from torch import nn

from simbench.bench.jobs import expand
from simbench.bench.runner import PRIOR_SECONDS, expected_seconds
from simbench.bench.spec import load_spec
from simbench.calibration.planted import reparametrize
from simbench.cli import main
from simbench.systems.torch import TorchSystem
from simbench.zoo import zoo_id
from simbench.zoo.archs import Arch, archs, get_arch, register, unregister
from simbench.zoo.checkpoint import load_checkpoint, save_model
from simbench.zoo.models import ModelConfig, RecurrentModel, reparametrize_recurrent
from simbench.zoo.training import default_train_config, train


class ElmanModel(RecurrentModel):
    """Embedding -> one tanh RNN layer -> read-out; site ``hidden`` is h_t (the recurrent
    base's one-state defaults do the rest)."""

    arch = "elman"
    gates = 1

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        d = config.d_model
        self.rnn = nn.RNN(d, d, batch_first=True)
        self.readout = nn.Linear(d, config.vocab_size)


TOY = Arch("elman", ElmanModel, site_order=("embedding", "hidden"), short="elm",
           aliases=("srn",), cost_weight=3.0, reparametrize=reparametrize_recurrent,
           train={"max_steps": 6, "eval_every": 3, "batch_size": 16})


@pytest.fixture
def toy() -> Iterator[Arch]:
    register(TOY)
    yield TOY
    unregister(TOY.name)


@pytest.mark.slow
def test_a_toy_architecture_trains_loads_records_and_plants(toy: Arch, tmp_path: Path) -> None:
    assert get_arch("srn") is toy and "elman" in archs()
    assert zoo_id("multi_object", "srn", 1) == "elm_multi_s1"
    assert default_train_config("elman").max_steps == 6
    model, meta = train("multi_object", "srn", 0, "cpu", progress=False, final_eval=False,
                        model_config=ModelConfig(d_model=16))
    assert isinstance(model, ElmanModel) and meta["arch"] == "elman" and meta["steps"] == 6
    path = tmp_path / "elm.safetensors"
    side = save_model(model, path, meta)
    loaded, lmeta = load_checkpoint(path, expected_sha256=side["sha256"])
    assert isinstance(loaded, ElmanModel) and lmeta["arch"] == "elman"
    tokens = torch.as_tensor(np.random.default_rng(0).integers(3, 20, (4, 9)))
    with torch.no_grad():
        # float16 weights on disk: the loaded model computes what the saved one does to ~1e-2
        assert torch.allclose(loaded(tokens), model(tokens), atol=0.05)
        planted = reparametrize(loaded, seed=2)
        logits, rec = loaded.run(tokens, record=("hidden",))
        p_logits, p_rec = planted.model.run(tokens, record=("hidden",))
    assert torch.allclose(p_logits, logits, atol=1e-5)
    perm = planted.site_perms["hidden"]
    assert not np.array_equal(perm, np.arange(16))
    assert torch.allclose(p_rec["hidden"], rec["hidden"][..., perm], atol=1e-5)
    recording = TorchSystem.from_checkpoint(path).record(n=12, seed=0)
    assert sorted(recording.sites) == ["embedding", "hidden"]
    assert recording.site("hidden")["activity"].shape[-1] == 16


def test_the_cli_trains_a_toy_at_a_width(toy: Arch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["zoo", "train", "--task", "same_object", "--arch", "elman", "--device", "cpu",
                 "--out", str(tmp_path), "--max-steps", "2", "--d-model", "8", "--quiet"])
    assert code == 1 and "step cap" in capsys.readouterr().out
    model, _ = load_checkpoint(tmp_path / "elm_same_s1.safetensors")
    assert model.site_dims == {"embedding": 8, "hidden": 8}


def test_the_harness_plans_a_toy_with_its_cost_weight(toy: Arch, tmp_path: Path) -> None:
    make_recordings(tmp_path)
    spec = load_spec(write_spec(tmp_path, f"""
name = "toy"
plugins = ["{PLUGIN}"]
sites = ["hidden"]
[systems]
toy1 = {{ recording = "gru1.nc", arch = "elman", task = "count" }}
gru1 = {{ recording = "gru2.nc", arch = "gru", task = "count" }}
gru2 = {{ recording = "gru3.nc", arch = "gru", task = "count" }}
[measures.c]
measure = "bench_causal"
[[pairs]]
name = "all"
within = "*"
"""))
    jobs = expand(spec)
    cost = expected_seconds(jobs, None, spec)
    by_systems = {j.systems: cost[j.key] for j in jobs}
    prior = PRIOR_SECONDS["causal"]
    assert by_systems[("gru1", "gru2")] == prior
    assert {v for k, v in by_systems.items() if "toy1" in k} == {3.0 * prior}
