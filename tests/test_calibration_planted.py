"""Planted identity: a re-parametrized zoo network computes the same function, and its activity
is the original's with units permuted by the returned permutation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from simbench.calibration.planted import reparametrize
from simbench.errors import SimbenchError
from simbench.tasks import MultiObject
from simbench.zoo import load_model

ZOO_IDS = ["gru_multi_s1", "lstm_multi_s1", "tf_multi_s1"]


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.as_tensor(MultiObject().sample(48, 7, counts="all").tokens)


@pytest.fixture
def float64() -> Iterator[None]:
    """The models build their initial states in the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.mark.parametrize("zid", ZOO_IDS)
@pytest.mark.parametrize("permute_inputs", [True, False])
def test_same_logits_and_permuted_activity(zid: str, permute_inputs: bool,
                                           tokens: torch.Tensor, float64: None) -> None:
    model, _ = load_model(zid)
    model = model.double()  # float64: agreement to 1e-9 shows exactness, not luck in rounding
    before = {k: v.clone() for k, v in model.state_dict().items()}
    planted = reparametrize(model, seed=3, permute_inputs=permute_inputs)
    with torch.no_grad():
        logits, acts = model.run(tokens, record=model.sites)
        logits2, acts2 = planted.model.run(tokens, record=model.sites)
        forward2 = planted.model(tokens)
    torch.testing.assert_close(logits2, logits, atol=1e-9, rtol=0)
    torch.testing.assert_close(forward2, logits, atol=1e-9, rtol=0)
    assert set(planted.site_perms) == set(model.sites)
    for site in model.sites:
        perm = torch.as_tensor(planted.site_perms[site])
        torch.testing.assert_close(acts2[site], acts[site][..., perm], atol=1e-9, rtol=0)
        moved = not np.array_equal(planted.site_perms[site], np.arange(len(perm)))
        # hidden units always move; embedding/residual dims only with permute_inputs
        inputs_site = site == "embedding" or (model.arch == "transformer")
        assert moved == (permute_inputs or not inputs_site), site
    # the weights really differ, and the original is untouched
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    changed = [k for k, v in planted.model.state_dict().items() if not torch.equal(v, before[k])]
    if model.arch == "transformer":  # LayerNorms, embedding and read-out move with the basis
        assert len(changed) == (28 if permute_inputs else 12)
    else:
        assert len(changed) == (6 if permute_inputs else 5)


@pytest.mark.parametrize("zid", ZOO_IDS)
def test_float32_logits_agree_to_1e5(zid: str, tokens: torch.Tensor) -> None:
    model, _ = load_model(zid)
    planted = reparametrize(model, seed=4)
    with torch.no_grad():
        a, b = model(tokens), planted.model(tokens)
    assert a.dtype == torch.float32
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)  # logits are O(10): relative too


def test_transformer_heads_and_mlp_units_move(tokens: torch.Tensor) -> None:
    model, _ = load_model("tf_multi_s1")
    planted = reparametrize(model, seed=0)
    assert {"residual", "heads.0", "heads.1", "mlp.0", "mlp.1"} <= set(planted.unit_perms)
    for key in ("heads.0", "mlp.1"):
        perm = planted.unit_perms[key]
        assert sorted(perm.tolist()) == list(range(len(perm)))
        assert not np.array_equal(perm, np.arange(len(perm)))
    # generation (free running, token by token) is unchanged too
    with torch.no_grad():
        a = model.generate(tokens[:8], 5, 10)
        b = planted.model.generate(tokens[:8], 5, 10)
    torch.testing.assert_close(a, b)


def test_seeded(tokens: torch.Tensor) -> None:
    model, _ = load_model("gru_multi_s1")
    a, b = reparametrize(model, 1), reparametrize(model, 1)
    c = reparametrize(model, 2)
    np.testing.assert_array_equal(a.site_perms["hidden"], b.site_perms["hidden"])
    assert not np.array_equal(a.site_perms["hidden"], c.site_perms["hidden"])


def test_a_permutation_missing_one_weight_is_not_exact(tokens: torch.Tensor) -> None:
    """The check has teeth: leave the read-out unpermuted and the logits change."""
    model, _ = load_model("gru_multi_s1")
    planted = reparametrize(model, seed=3)
    with torch.no_grad():
        planted.model.readout.weight.copy_(model.readout.weight)
        diff = (planted.model(tokens) - model(tokens)).abs().max()
    assert diff > 0.1


def test_unknown_architectures_are_refused() -> None:
    with pytest.raises(SimbenchError, match=r"no exact re-parametrization .* 'Linear'"):
        reparametrize(torch.nn.Linear(2, 2), 0)
