"""Model stitching and latent stitching: full-state counterfactuals, the inverse stitch, both
measures end to end on untrained GRUs (tiny step caps), and the rank-2 finding on the zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import simbench
from simbench.interventions.data import make_pool, sample_interventions
from simbench.interventions.maps import InverseStitch, StitchMap
from simbench.recording import Recording, site_dataset
from simbench.systems import RecordedSystem
from simbench.systems.torch import TorchSystem
from simbench.tasks import EOS, TRIGGER, VOCAB, MultiObject
from simbench.tasks.base import RESP
from simbench.zoo.models import ModelConfig, build_model

TINY = dict(n_train=128, n_val=32, n_test=32, max_steps=2, eval_every=2, pool_size=96,
            progress=False, device="cpu")


def net(seed: int) -> TorchSystem:
    torch.manual_seed(seed)
    return TorchSystem(build_model(ModelConfig(arch="gru")).eval(), "multi_object",
                       system_id=f"gru{seed}")


def test_full_state_counterfactual_takes_the_sources_phase():
    """A stitch replaces the whole latent: a source in its response phase (c still to emit)
    patched into a target still counting demo tokens means: emit c responses now, then EOS."""
    pool = make_pool(MultiObject(), "count", 300, seed=0)
    iv = sample_interventions(pool, pool, 400, np.random.default_rng(0), carry=("phase",))
    var = pool.stimuli.variables
    s_phase = var["phase"][iv.src_idx, iv.spos]
    t_phase = var["phase"][iv.tgt_idx, iv.tpos]
    rows = np.flatnonzero((s_phase == 1) & (t_phase == 0))
    assert len(rows) > 20
    for i in rows[:20]:
        c = pool.values[iv.src_idx[i], iv.spos[i]]
        tail = iv.cf_tokens[i, iv.tpos[i] + 1:]
        assert list(tail[: c + 1]) == [RESP] * c + [EOS]
    rows = np.flatnonzero((s_phase == 0) & (t_phase == 1))
    for i in rows[:20]:  # demo-phase source into a responding target: trigger, then f(c)
        c = pool.values[iv.src_idx[i], iv.spos[i]]
        tail = iv.cf_tokens[i, iv.tpos[i] + 1:]
        assert list(tail[: c + 2]) == [TRIGGER] + [RESP] * c + [EOS]


def test_inverse_stitch_is_the_pseudo_inverse():
    smap = StitchMap([6, 5], [(1, 0)], rank=5, bias=True)
    with torch.no_grad():
        smap.maps["1->0"][1].bias.normal_()
    inv = InverseStitch(smap, 1, 0)
    h1 = torch.randn(4, 5)
    h0 = smap.code(1, 0, h1)  # full-rank 5 -> 6: the inverse recovers h1 exactly
    torch.testing.assert_close(inv.code(0, 1, h0), h1, atol=1e-5, rtol=0)
    torch.testing.assert_close(inv.code(1, 0, h1), h0)


def test_model_stitch_end_to_end_and_rank_sweep_parses():
    from simbench.cli.core import expand_sweep
    from simbench.registry import get_registry

    m = get_registry().measure("model_stitch")
    swept, grid = expand_sweep(m, {"rank": "1,2,4,16"})
    assert swept == ["rank"] and [g["rank"] for g in grid] == [1, 2, 4, 16]
    s = simbench.score("model_stitch", net(0), net(1), site="hidden", task="multi_object",
                       rank=2, **TINY)
    assert 0.0 <= s.value <= 1.0  # default: count and phase jointly, nothing left to carry
    assert s.attrs["carried"] == [] and tuple(s.attrs["variables"][1]) == ("count", "phase")
    assert np.isnan(s.breakdown["iia_trial"].sel(source="gru1", target="gru0"))
    inv = simbench.score("model_stitch", net(0), net(1), site="hidden", task="multi_object",
                         rank=2, via_inverse=True, **TINY)
    assert "trained_iia_2_to_1" in inv.attrs


def test_latent_stitch_into_a_network_and_into_a_recording():
    a, b = net(0), net(1)
    s = simbench.score("latent_stitch", a, b, site="hidden", task="multi_object",
                       record_n=120, **TINY)
    assert s.attrs["value_kind"] == "iia" and 0.0 <= s.value <= 1.0
    task = MultiObject()
    stim = task.sample(120, 0, counts="all")
    with torch.no_grad():
        _, h = b.model.run(torch.as_tensor(stim.tokens), record=("hidden",))
    ds = site_dataset(h["hidden"].numpy(), stimulus_ids=stim.ids, site="hidden",
                      system_id="rec", tokens=np.asarray(VOCAB)[stim.tokens],
                      valid=stim.tokens != 0, variables=stim.variables)
    rec = RecordedSystem(Recording("rec", {"hidden": ds}, task="multi_object"))
    r = simbench.score("latent_stitch", a, rec, site="hidden", **TINY)
    assert r.attrs["value_kind"] == "cl_r2" and r.value == r.attrs["cl_fit"]["r2"]


def test_model_stitch_refuses_a_recording_target():
    from simbench.errors import AccessError

    rec = RecordedSystem(Recording("rec", {}, task="multi_object"))
    with pytest.raises(AccessError, match="cannot be run"):
        simbench.score("model_stitch", net(0), rec, site="hidden", **TINY)


@pytest.mark.slow
def test_rank_two_stitch_from_the_benchmark_map():
    """Paper: model stitching is near perfect already at rank 2 between Multi-Object GRUs.

    The map is trained by benchmarks/test_bench_clmas.py (shipped under recordings/alignments)
    and evaluated here on fresh held-out counterfactuals: IIA >= 0.9.
    """
    from pathlib import Path

    from simbench.zoo import read_manifest

    path = Path(__file__).resolve().parents[1] / "recordings" / "alignments" / \
        "stitch_rank2.safetensors"
    assert path.exists() and "gru_multi_s2" in read_manifest()["models"]
    s = simbench.score("model_stitch", "gru_multi_s1", "gru_multi_s2", site="hidden", rank=2,
                       load=str(path), n_train=64, n_val=32, n_test=400, pool_size=400,
                       progress=False, device="cpu")
    assert s.value >= 0.9
