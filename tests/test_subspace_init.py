"""Data-driven starting subspaces for MAS: Procrustes-matched principal directions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import simbench
from simbench.interventions.init import init_from_data, procrustes
from simbench.interventions.maps import SubspaceMap


def _party(tokens: np.ndarray, latents: torch.Tensor) -> SimpleNamespace:
    pool = SimpleNamespace(tokens=tokens, allowed=np.ones(tokens.shape, dtype=bool))
    return SimpleNamespace(pools={"train": pool}, latents={"train": latents})


def test_rotated_copy_gets_matching_coordinates() -> None:
    """A system whose latents are another's rotated (and widened) gets the rotated subspace:
    both give the same coordinates on every stimulus before any training."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(40, 6, 12, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, 12)
    q = torch.linalg.qr(torch.randn(20, 12, generator=g, dtype=torch.float64)).Q  # 20 x 12
    tokens = np.arange(40 * 6).reshape(40, 6)
    a, b = _party(tokens, h.float()), _party(tokens, (h @ q.T).float())  # b is 20 wide
    imap = SubspaceMap([12, 20], 4, seed=0)
    assert init_from_data(imap, [a, b], "pca")
    ua, ub = imap.U(0).detach().double(), imap.U(1).detach().double()
    torch.testing.assert_close(ua.T @ ua, torch.eye(4, dtype=torch.float64), atol=1e-5, rtol=0)
    za = (h - h.mean((0, 1))) @ ua
    zb = (h @ q.T - (h @ q.T).mean((0, 1))) @ ub
    torch.testing.assert_close(za, zb, atol=1e-4, rtol=0)
    # the first system's subspace holds its top principal directions
    flat = (h - h.mean((0, 1))).reshape(-1, 12)
    explained = (flat @ ua).square().sum() / flat.square().sum()
    top4 = torch.linalg.eigvalsh(flat.T @ flat).flip(0)[:4].sum() / flat.square().sum()
    assert explained == pytest.approx(float(top4), abs=1e-5)


def test_different_stimuli_keep_the_random_start() -> None:
    h = torch.randn(10, 3, 5)
    a, b = _party(np.zeros((10, 3), int), h), _party(np.ones((10, 3), int), h)
    imap = SubspaceMap([5, 5], 2, seed=0)
    before = imap.U(0).detach().clone()
    assert not init_from_data(imap, [a, b], "pca")
    assert torch.equal(imap.U(0).detach(), before)
    assert not init_from_data(imap, [a, a], "random")


def test_procrustes_recovers_an_orthonormal_map() -> None:
    g = torch.Generator().manual_seed(1)
    h = torch.linalg.qr(torch.randn(200, 7, generator=g, dtype=torch.float64)).Q  # whitened
    u = torch.linalg.qr(torch.randn(7, 3, generator=g, dtype=torch.float64)).Q
    torch.testing.assert_close(procrustes(h, h @ u), u, atol=1e-10, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("init, low, high", [("random", 0.0, 0.2), ("pca", 0.2, 1.0)])
def test_pca_start_is_already_aligned_on_zoo_seeds(init: str, low: float, high: float) -> None:
    """Two GRU seeds after one step: the random start is at chance, the data start is not."""
    s = simbench.score("mas", "gru_multi_s1", "gru_multi_s2", site="hidden", k=32, seed=0,
                       device="cpu", progress=False, init=init, max_steps=1, eval_every=1,
                       n_test=200, n_val=200, pool_size=400)
    assert s.attrs["init"] == init
    assert low <= s.value <= high


def test_data_start_matches_raw_coordinates() -> None:
    """The ``data`` start matches the *raw* coordinates (means included: an interchange swaps
    raw coordinates), where the centred ``pca`` start leaves the means' difference."""
    g = torch.Generator().manual_seed(2)
    h = torch.randn(40, 6, 12, generator=g, dtype=torch.float64) * torch.linspace(3, 0.1, 12)
    h = h + torch.linspace(2, -2, 12)  # a mean the subspace carries
    q = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64)).Q
    tokens = np.arange(40 * 6).reshape(40, 6)
    a, b = _party(tokens, h.float()), _party(tokens, (h @ q.T).float())
    imap = SubspaceMap([12, 12], 4, seed=0)
    assert init_from_data(imap, [a, b], "data")
    ua, ub = imap.U(0).detach().double(), imap.U(1).detach().double()
    torch.testing.assert_close(h @ ua, (h @ q.T) @ ub, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown subspace init"):
        init_from_data(imap, [a, b], "auto")


SMALL = dict(k=16, seed=0, device="cpu", progress=False, max_steps=1, eval_every=1, n_test=100,
             n_val=150, n_train=300, pool_size=300)


@pytest.mark.slow
def test_auto_start_takes_the_data_start_for_gru_seeds() -> None:
    s = simbench.score("mas", "gru_multi_s1", "gru_multi_s2", site="hidden", **SMALL)
    check = s.attrs["init_check"]
    assert s.attrs["init"] == "data"
    assert check["data"] >= check["random"] + check["margin"]
    assert s.value > 0.3  # one step from an aligned start (random: ~0.1)


@pytest.mark.slow
def test_auto_start_keeps_the_random_start_where_the_data_does_not_align() -> None:
    """GRU vs LSTM: the data start aligns no more trials than chance, so the pair trains from
    the random start, exactly as with ``init = random``."""
    auto = simbench.score("mas", "gru_multi_s1", "lstm_multi_s1", site="hidden", **SMALL)
    rand = simbench.score("mas", "gru_multi_s1", "lstm_multi_s1", site="hidden", init="random",
                          **SMALL)
    assert auto.attrs["init"] == "random" and rand.attrs["init"] == "random"
    assert auto.attrs["init_check"]["data"] < auto.attrs["init_check"]["random"] + 0.1
    assert "init_check" not in rand.attrs
    assert auto.value == pytest.approx(rand.value, abs=1e-9)


@pytest.mark.slow
def test_a_validated_start_that_reaches_stop_at_takes_no_step() -> None:
    """``validate_start``: the starting map is validated first and counts as the best seen; a
    network against itself through the whole site (U = I for both) reaches stop_at there."""
    from simbench.interventions.engine import Engine, EngineConfig, Party, directions_for
    from simbench.interventions.init import set_subspaces
    from simbench.interventions.runners import make_runner
    from simbench.tasks import MultiObject
    from simbench.zoo import load_model

    model = load_model("gru_multi_s1")[0].eval()
    for p in model.parameters():
        p.requires_grad_(False)
    parties = [Party(f"m{i}", MultiObject(), ("count", "phase"), 128,
                     make_runner(model, "hidden"))
               for i in range(2)]
    cfg = EngineConfig(n_train=128, n_val=64, n_test=32, pool_size=128, max_steps=3,
                       eval_every=1, seed=3, stop_at=0.9, validate_start=True)
    eng = Engine(parties, SubspaceMap([128, 128], 128, seed=1), directions_for(2), cfg)
    set_subspaces(eng.imap, [torch.eye(128), torch.eye(128)])
    log = eng.train(progress=False)
    assert log.steps == 0 and log.best_step == 0 and "at the start" in log.stopped
    assert log.history[0]["step"] == 0 and log.best_val >= 0.9
    eng.cfg.stop_at = 1.01  # unreachable: trains, and the start stays the best seen so far
    log = eng.train(progress=False)
    assert log.steps == 3 and log.history[0]["step"] == 0
    assert log.best_val >= log.history[0]["val"]
