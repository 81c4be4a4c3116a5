"""The shipped zoo (real trained models): accuracy re-checked, the patch API's semantics,
checkpoint safety, training determinism and the CLI."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from simbench.cli import main
from simbench.errors import CheckpointError, SimbenchError, SiteError
from simbench.registry import task_by_name
from simbench.tasks import MultiObject
from simbench.zoo import ZOO_DIR, list_models, load_model
from simbench.zoo.checkpoint import load_checkpoint
from simbench.zoo.training import (
    EVAL_N,
    EVAL_SEED,
    TrainConfig,
    evaluate,
    teacher_forced_trials,
    train,
)

MODELS = list_models()
IDS = [m["id"] for m in MODELS]


def test_the_zoo_is_complete_and_small():
    arches = [(m["task"], m["arch"]) for m in MODELS]
    assert arches.count(("multi_object", "gru")) >= 3
    assert arches.count(("multi_object", "lstm")) >= 2
    assert arches.count(("multi_object", "transformer")) >= 2
    for task in ("same_object", "modulo", "rounding", "arithmetic"):
        assert arches.count((task, "gru")) >= 2, task
    size = sum(p.stat().st_size for p in ZOO_DIR.glob("*.safetensors"))
    assert size < 8_000_000


@pytest.mark.slow
@pytest.mark.parametrize("zid", IDS)
def test_shipped_model_reaches_its_recorded_accuracy(zid):
    """Re-evaluated on the recorded seeded sets. Greedy free-running trial accuracy equals
    "argmax right at every response position" under teacher forcing (inputs outside the
    response mask are teacher-forced either way), so one forward pass per set suffices here;
    test_free_running_evaluation_matches runs the real generation."""
    model, meta = load_model(zid)
    assert meta["accuracy"] >= 0.99 and meta["all_trial_acc"] >= 0.99
    task = task_by_name(meta["task"])
    for key, kw in (("heldout", {"held_out": True}), ("all", {"counts": "all"})):
        stim = task.sample(EVAL_N, EVAL_SEED, **kw)
        trials = teacher_forced_trials(model, torch.as_tensor(stim.tokens),
                                       torch.as_tensor(stim.response_mask))
        assert trials.mean() == pytest.approx(meta[f"{key}_trial_acc"], abs=1e-9), key


@pytest.mark.parametrize("zid", ["gru_multi_s1", "lstm_multi_s2", "gru_rounding_s1"])
def test_free_running_evaluation_matches(zid):
    model, meta = load_model(zid)
    got = evaluate(model, meta["task"])
    for key in ("heldout_trial_acc", "all_trial_acc", "heldout_token_acc"):
        assert got[key] == pytest.approx(meta[key], abs=1e-9)


@pytest.fixture(scope="module")
def gru():
    return load_model("gru_multi_s1")[0]


@pytest.fixture(scope="module")
def lstm():
    return load_model("lstm_multi_s1")[0]


def _pair():
    """Two sequences with different prefixes (so different states at position 3) and the same
    tokens from position 4 on."""
    a = MultiObject().encode(["BOS D D D D T R R R R EOS", "BOS C C C D T R R R R EOS"])
    return torch.as_tensor(a)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_hidden_patch_continues_the_recurrence(name, request):
    model = request.getfixturevalue(name)
    tok = _pair()
    with torch.no_grad():
        logits, rec = model.run(tok, record=("hidden",))
        mask = torch.zeros(tok.shape, dtype=torch.bool)
        mask[0, 3] = True
        values = rec["hidden"].flip(0)  # row 0 gets row 1's state at position 3
        patched, prec = model.run(tok, edits={"hidden": (mask, values)}, record=("hidden",))
    # after the patch, sequence 0 is sequence 1 (the LSTM needs both h and c for this)
    assert torch.allclose(patched[0, 3:], logits[1, 3:], atol=1e-5)
    assert torch.equal(patched[0, :3], logits[0, :3])
    assert torch.equal(prec["hidden"][0, 3], rec["hidden"][1, 3])
    assert not torch.allclose(logits[0, 3:], logits[1, 3:], atol=1e-3)


def test_edit_forms_agree(gru):
    tok = torch.as_tensor(MultiObject().sample(16, 2, counts="all").tokens)
    gen = torch.Generator().manual_seed(0)
    mask = torch.rand(tok.shape, generator=gen) < 0.2
    noise = torch.randn(*tok.shape, 128, generator=gen)
    with torch.no_grad():
        ref, rec = gru.run(tok, record=("hidden",))
        a, _ = gru.run(tok, edits={"hidden": (mask, lambda h, b, t: h + noise[b, t])})

        def per_step(t, h):
            return torch.where(mask[:, t, None], h + noise[:, t], h)

        b, _ = gru.run(tok, edits={"hidden": per_step})
        same, _ = gru.run(tok, edits={"hidden": (mask, rec["hidden"])})
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(same, ref)
    assert not torch.allclose(a, ref, atol=1e-3)


@pytest.mark.slow
def test_transformer_sites_and_generation():
    model, _ = load_model("tf_multi_s1")
    stim = MultiObject().sample(32, 5, counts="all")
    tok = torch.as_tensor(stim.tokens)
    with torch.no_grad():
        logits, rec = model.run(tok, record=model.sites)
        assert torch.equal(rec["hidden"], rec["resid.0"])
        mask = torch.zeros(tok.shape, dtype=torch.bool)
        mask[:, 2] = True
        patched, _ = model.run(tok, edits={"resid.0": (mask, torch.zeros_like(rec["resid.0"]))})
    assert torch.equal(patched[:, :2], logits[:, :2])  # causal: earlier positions untouched
    assert not torch.allclose(patched[:, 2:], logits[:, 2:])
    gen = model.generate(tok, torch.as_tensor(stim.trigger_pos + 1),
                         response_mask=torch.as_tensor(stim.response_mask))
    trial, _ = MultiObject().score(gen.numpy(), stim.tokens, stim.response_mask)
    assert trial.mean() >= 0.95
    with pytest.raises(SiteError, match=r"embedding, hidden, resid\.0, resid\.1"):
        model.run(tok, record=("resid.7",))


def test_generation_stops_at_eos_and_pads(gru):
    stim = MultiObject().sample(8, 1, counts=[3])
    tok = torch.as_tensor(stim.tokens)
    out = gru.generate(tok[:, :5], 5, max_new=10)  # prefix BOS D D D T, then free running
    for row in MultiObject().decode(out.numpy()):
        assert row == ["BOS", *row[1:4], "T", "R", "R", "R", "EOS"]


def _copy_checkpoint(tmp_path, zid="lstm_multi_s1"):
    for ext in (".safetensors", ".json"):
        shutil.copy(ZOO_DIR / f"{zid}{ext}", tmp_path / f"{zid}{ext}")
    return tmp_path / f"{zid}.safetensors"


def test_sha256_mismatch_is_refused(tmp_path):
    path = _copy_checkpoint(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 mismatch") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "rebuild" in str(err.value)


def test_manifest_sha256_is_checked(tmp_path):
    path = _copy_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="manifest expects"):
        load_checkpoint(path, expected_sha256="0" * 64)


def test_pickles_are_refused_without_unpickling(tmp_path):
    path = _copy_checkpoint(tmp_path)
    model, _ = load_checkpoint(path)
    torch.save(model.state_dict(), path)  # a zip with a pickle inside
    with pytest.raises(CheckpointError, match=r"torch\.save archive") as err:
        load_checkpoint(path)
    assert "safetensors" in str(err.value) and str(path) in str(err.value)
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="Python pickle"):
        load_checkpoint(path)


def test_unknown_architecture_task_and_zoo_id_list_valid_ones():
    with pytest.raises(SimbenchError, match="gru, lstm, transformer"):
        train("multi_object", "rnn", 0, "cpu")
    with pytest.raises(SimbenchError, match="multi_object, same_object"):
        train("counting", "gru", 0, "cpu")
    with pytest.raises(CheckpointError, match="gru_multi_s1"):
        load_model("gru_multi_s99")


@pytest.mark.slow
def test_training_is_deterministic_on_the_cpu():
    cfg = TrainConfig(max_steps=4, eval_every=2, batch_size=16)
    a, meta = train("multi_object", "gru", 7, "cpu", config=cfg, progress=False, final_eval=False)
    b, _ = train("multi_object", "gru", 7, "cpu", config=TrainConfig(**cfg.to_dict()), final_eval=False,
                 progress=False)
    c, _ = train("multi_object", "gru", 8, "cpu", config=TrainConfig(**cfg.to_dict()), final_eval=False,
                 progress=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert meta["stopped"] == "step cap" and meta["steps"] == 4


def test_cli_zoo_list_tasks_and_errors(capsys, tmp_path):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert "gru_multi_s1" in out and "tf_multi_s2" in out and "resid.0" in out
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "cumu_val, rem_ops" in out and "count, phase" in out
    assert main(["zoo", "train", "--task", "multi_object", "--arch", "rnn"]) == 2
    assert "gru, lstm, transformer" in capsys.readouterr().err
    assert main(["zoo", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["id"] for m in listed} == set(IDS)


@pytest.mark.slow
def test_cli_train_writes_a_verified_checkpoint(capsys, tmp_path):
    code = main(["zoo", "train", "--task", "multi_object", "--arch", "lstm", "--seed", "1",
                 "--device", "cpu", "--out", str(tmp_path), "--max-steps", "3"])
    err = capsys.readouterr()
    assert code == 1 and "step cap (3 steps) BELOW the target" in err.out
    _, meta = load_checkpoint(tmp_path / "lstm_multi_s1.safetensors")
    assert meta["steps"] == 3 and meta["stopped"] == "step cap" and meta["task"] == "multi_object"
    assert np.isfinite(meta["heldout_trial_acc"])
    assert task_by_name(meta["task"]).name == "multi_object"


def test_zoo_functions_survive_importing_every_zoo_module():
    """``simbench.zoo.train`` stays the function once every zoo submodule has been imported
    (a submodule of the same name used to replace it: "'module' object is not callable")."""
    import importlib
    import pkgutil
    import types

    import simbench.zoo as zoo

    for module in pkgutil.iter_modules(zoo.__path__):
        importlib.import_module(f"simbench.zoo.{module.name}")
    shadowed = [name for name in zoo.__all__ if isinstance(getattr(zoo, name), types.ModuleType)]
    assert shadowed == []
    assert callable(zoo.train)


@pytest.mark.slow
def test_build_one_refuses_a_model_below_the_bar(tmp_path):
    """Every attempt misses 0.99: a clear error, and no checkpoint or manifest written."""
    import simbench.zoo as zoo
    from simbench.errors import TrainingError

    cfg = TrainConfig(max_steps=2, eval_every=2, batch_size=8)
    with pytest.raises(TrainingError, match=r"gru_multi_s99 missed the zoo's bar of 0.99 trial "
                       r"accuracy in all 2 attempts \(seed 99: .*; seed 1099: ") as err:
        zoo.build_one("multi_object", "gru", 99, directory=tmp_path, config=cfg, retries=1,
                      progress=False)
    assert "nothing was written" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert zoo.list_models(tmp_path) == []
    # the package function is still callable after build_one imported the training module
    _, meta = zoo.train("multi_object", "gru", 0, "cpu", config=cfg, progress=False,
                        final_eval=False)
    assert meta["steps"] == 2 and meta["stopped"] == "step cap"


def test_zoo_training_uses_the_one_device_resolver():
    import simbench.zoo.training as training
    from simbench.devices import resolve_device

    assert training.resolve_device is resolve_device
