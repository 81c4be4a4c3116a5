"""Model stitching and latent stitching: full-state counterfactuals, the inverse stitch, both
measures end to end on zoo GRUs against a control, and the rank-2 finding on the zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import simbench
from simbench.interventions.data import make_pool, sample_interventions
from simbench.interventions.maps import InverseStitch, StitchMap
from simbench.recording import Recording
from simbench.systems import RecordedSystem
from simbench.systems.torch import TorchSystem
from simbench.tasks import EOS, TRIGGER, MultiObject
from simbench.tasks.base import RESP
from simbench.zoo.models import ModelConfig, build_model

TINY = dict(n_train=128, n_val=32, n_test=32, max_steps=2, eval_every=2, pool_size=96,
            progress=False, device="cpu")
ZOO = ("gru_multi_s1", "gru_multi_s2")
# twenty steps on two zoo GRUs: seconds, and far enough for each stitch to beat its control
ZOO_BUDGET = dict(n_train=512, n_val=64, n_test=64, pool_size=200, batch_size=64, lr=1e-2,
                  max_steps=20, eval_every=20, progress=False, device="cpu", seed=0)


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


@pytest.mark.slow
def test_model_stitch_end_to_end_and_rank_sweep_parses():
    """A rank-2 stitch between two zoo GRUs learns in twenty steps: its IIA into the target
    rises far above a random stitch's (about 0.05 here: a trial counts only when every
    response token is right)."""
    from simbench.cli.core import expand_sweep
    from simbench.registry import get_registry

    m = get_registry().measure("model_stitch")
    swept, grid = expand_sweep(m, {"rank": "1,2,4,16"})
    assert swept == ["rank"] and [g["rank"] for g in grid] == [1, 2, 4, 16]
    s = simbench.score("model_stitch", *ZOO, site="hidden", rank=2, **ZOO_BUDGET)
    assert s.value >= 0.2, s.value
    # default: count and phase jointly, nothing left to carry
    assert s.attrs["carried"] == [] and tuple(s.attrs["variables"][1]) == ("count", "phase")
    assert s.attrs["train"]["steps"] == 20 and s.attrs["train"]["val_metric"] == "iia"
    assert np.isnan(s.breakdown["iia_trial"].sel(source=ZOO[1], target=ZOO[0]))
    assert s.value == float(s.breakdown["iia_trial"].sel(source=ZOO[0], target=ZOO[1]))
    inv = simbench.score("model_stitch", net(0), net(1), site="hidden", task="multi_object",
                         rank=2, via_inverse=True, **TINY)
    iia = inv.breakdown["iia_trial"]
    assert inv.attrs["trained_iia_2_to_1"] == float(iia.sel(source="gru1", target="gru0"))
    assert inv.value == float(iia.sel(source="gru0", target="gru1"))


@pytest.mark.slow
def test_latent_stitch_into_a_network_beats_a_random_map():
    """Trained on counterfactual latents only, the orthogonal map still makes the target network
    behave: IIA into it well above a random orthogonal map's (0.05 at this budget)."""
    s = simbench.score("latent_stitch", *ZOO, site="hidden", record_n=300, **ZOO_BUDGET)
    assert s.attrs["value_kind"] == "iia" and s.value >= 0.15, s.value
    assert s.attrs["train"]["val_metric"] == "r2"


@pytest.mark.slow
def test_latent_stitch_into_a_recording_beats_its_shuffled_control():
    """Into a recording the score is the held-out R^2 of counterfactual latents: clearly better
    for the real recording than for the same activity with its states' labels permuted, and
    better than leaving the target latent unpatched."""
    from simbench_recordings import make_population

    rec = TorchSystem.from_zoo(ZOO[1]).record(n=300, seed=0)
    real, ctrl = (simbench.score("latent_stitch", ZOO[0], RecordedSystem(r), site="hidden",
                                 **ZOO_BUDGET)
                  for r in (rec, make_population.shuffled(rec, seed=0)))
    assert real.attrs["value_kind"] == "cl_r2" and real.value == real.attrs["cl_fit"]["r2"]
    assert real.value > ctrl.value + 0.5, (real.value, ctrl.value)
    assert real.value > real.attrs["cl_fit"]["r2_unpatched"] + 0.3


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
