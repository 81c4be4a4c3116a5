"""MAS and DAS on the shipped zoo: the paper's findings, the measure's failure mode, bad input.

Full-size trainings live in ``benchmarks/mas_findings.py``, which ships its alignments under
``recordings/alignments/``. These tests reload them and score them on fresh counterfactuals
(another seed), so the findings are re-checked in seconds; a short real training shows the
engine learns from scratch, and a random subspace shows the measure can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import simbench
from simbench.errors import AccessError, ParameterError, SiteError, TaskError

ALIGN = Path(__file__).resolve().parents[1] / "recordings" / "alignments"
GRUS = ("gru_multi_s1", "gru_multi_s2")
FAST = dict(n_train=32, n_val=32, n_test=400, pool_size=300, progress=False)


def reload(name: str, measure: str, systems: tuple[str, ...], site: str, k: int,
           **extra) -> simbench.Score:
    """Score a shipped alignment on counterfactuals it was never trained or selected on."""
    return simbench.score(measure, *systems, site=site, seed=101, k=k, device="cpu",
                          load=str(ALIGN / f"{name}.safetensors"), **{**FAST, **extra})


@pytest.fixture(scope="module")
def gru_hidden() -> simbench.Score:
    return reload("mas_gru_gru_hidden", "mas", GRUS, "hidden", 16)


@pytest.mark.slow
def test_gru_seeds_align_at_hidden(gru_hidden):
    assert gru_hidden.value >= 0.9
    iia = gru_hidden.breakdown["iia_trial"].values
    assert iia.shape == (2, 2)
    assert min(iia[0, 1], iia[1, 0]) >= 0.85  # both cross-model directions
    assert gru_hidden.ci[0] <= gru_hidden.value <= gru_hidden.ci[1]


@pytest.mark.slow
def test_gru_seeds_align_at_embedding_stepwise():
    stepwise = reload("mas_gru_gru_embedding_stepwise", "mas", GRUS, "embedding", 16,
                      stepwise=True, n_test=200)
    single = reload("mas_gru_gru_embedding", "mas", GRUS, "embedding", 16, n_test=200)
    assert stepwise.value >= 0.9
    # one position's input vector cannot carry a count: single-position stays far lower
    assert single.value < stepwise.value - 0.3


@pytest.mark.slow
def test_mas_reaches_das_with_four_dimensions():
    das16 = reload("das_gru_k16", "das", GRUS[:1], "hidden", 16)
    das4 = reload("das_gru_k4", "das", GRUS[:1], "hidden", 4)
    mas4 = reload("mas_gru_gru_k4", "mas", GRUS, "hidden", 4)
    assert das16.value >= 0.9
    assert abs(mas4.value - das4.value) <= 0.05


@pytest.mark.slow
def test_transformer_hidden_does_not_align_with_gru(gru_hidden):
    tf = reload("mas_gru_tf_hidden", "mas", ("gru_multi_s1", "tf_multi_s1"), "hidden", 16,
                n_test=150)
    assert tf.value <= gru_hidden.value - 0.3


@pytest.mark.slow
def test_random_subspace_is_near_chance(gru_hidden):
    control = simbench.score("mas", *GRUS, site="hidden", k=16, control=True, seed=101, **FAST)
    assert control.value < 0.35
    assert control.value < gru_hidden.value - 0.5


@pytest.mark.slow
def test_training_from_scratch_beats_the_random_control():
    trained = simbench.score("mas", *GRUS, site="hidden", k=16, seed=5, n_train=2000,
                             n_val=200, n_test=200, pool_size=400, max_steps=60,
                             eval_every=20, progress=False)
    assert trained.attrs["train"]["steps"] <= 60
    assert trained.value >= 0.5


@pytest.mark.slow
def test_save_then_load_reproduces_the_score(tmp_path):
    kw = dict(site="hidden", k=8, seed=3, n_train=256, n_val=64, n_test=128, pool_size=200,
              max_steps=10, eval_every=5, progress=False)
    path = tmp_path / "a.safetensors"
    first = simbench.score("mas", *GRUS, save=str(path), **kw)
    again = simbench.score("mas", *GRUS, load=str(path), **kw)
    assert path.with_suffix(".json").exists()
    assert again.value == first.value
    with pytest.raises(simbench.SimbenchError, match="k = 8"):
        simbench.score("mas", *GRUS, load=str(path), **{**kw, "k": 4})


@pytest.mark.slow
def test_three_systems_in_one_training():
    s = simbench.score("mas", *GRUS, "gru_multi_s3", site="hidden", k=8, seed=0, n_train=128,
                       n_val=32, n_test=32, pool_size=100, max_steps=2, eval_every=1,
                       progress=False)
    assert s.breakdown["iia_trial"].shape == (3, 3)
    assert s.attrs["directions"] == 9


@pytest.mark.slow
def test_cross_task_variable_mapping():
    s = simbench.score("mas", "gru_multi_s1", "gru_arith_s1", site="hidden", k=8,
                       variable="count:rem_ops", values="1:4", seed=0, n_train=128, n_val=32,
                       n_test=32, pool_size=200, max_steps=2, eval_every=1, progress=False)
    assert s.attrs["variables"] == ["count", "rem_ops"]
    assert 0.0 <= s.value <= 1.0


@pytest.mark.slow
def test_rounding_and_multi_object_share_count():
    s = simbench.score("mas", "gru_multi_s1", "gru_rounding_s1", site="hidden", k=8, seed=0,
                       n_train=128, n_val=32, n_test=32, pool_size=200, max_steps=1,
                       progress=False)
    assert s.attrs["variables"] == [["count", "phase"], ["count", "phase"]]


# ---- bad input ----------------------------------------------------------------------------
def test_different_tasks_without_a_mapping_names_both():
    with pytest.raises(TaskError, match=r"arithmetic.*multi_object|multi_object.*arithmetic") as e:
        simbench.score("mas", "gru_multi_s1", "gru_arith_s1", site="hidden", progress=False)
    assert "--variable" in str(e.value)


def test_k_larger_than_the_site():
    with pytest.raises(ParameterError, match="larger than the width"):
        simbench.score("mas", *GRUS, site="hidden", k=500, progress=False)


def test_recording_handed_to_mas_points_to_clmas(tmp_path):
    from simbench.systems.torch import TorchSystem

    rec = TorchSystem.from_zoo("gru_multi_s2").record(n=20, seed=0)
    with pytest.raises(AccessError, match="clmas"):
        simbench.score("mas", "gru_multi_s1", rec, site="hidden", progress=False)


def test_site_that_cannot_be_patched():
    with pytest.raises(SiteError, match="nowhere"):
        simbench.score("mas", *GRUS, site="nowhere", progress=False)


def test_variable_the_task_does_not_have():
    with pytest.raises(TaskError, match="cumu_val"):
        simbench.score("das", "gru_multi_s1", site="hidden", variable="cumu_val", progress=False)


class CausalMixer(torch.nn.Module):
    """A user's own language-model-like network: any width, sites named by module path."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(34, width)
        self.mix = torch.nn.Linear(width, width)
        self.out = torch.nn.Linear(width, 34)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.mix(self.emb(tokens).cumsum(1))))


def test_user_modules_of_different_widths_align_stepwise():
    from simbench.systems.torch import TorchSystem

    a = TorchSystem(CausalMixer(16, 0), "multi_object", sites={"hidden": "mix"}, system_id="a")
    b = TorchSystem(CausalMixer(24, 1), "multi_object", sites={"hidden": "mix"}, system_id="b")
    s = simbench.score("mas", a, b, site="hidden", k=4, stepwise=True, seed=0, n_train=64,
                       n_val=16, n_test=16, pool_size=64, max_steps=3, eval_every=3,
                       progress=False)
    assert s.breakdown["iia_trial"].shape == (2, 2)
    assert s.systems == ("a", "b")


@pytest.mark.slow
def test_cli_sweeps_k_and_plots(tmp_path, capsys):
    import json

    from simbench.cli import main

    png = tmp_path / "k.png"
    code = main(["score", "das", "gru_multi_s1", "--site", "hidden", "--k", "1,2", "--json",
                 "--max_steps", "2", "--n_train", "100", "--n_val", "20", "--n_test", "40",
                 "--pool_size", "100", "--progress", "false", "--plot", str(png)])
    assert code == 0
    out = capsys.readouterr().out
    scores = json.loads(out[: out.rindex("]") + 1])
    assert [s["attrs"]["k"] for s in scores] == [1, 2]
    assert png.stat().st_size > 1000
