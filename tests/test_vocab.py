"""A task's vocabulary is the task's: built-in ids unchanged, a task with its own tokens trains
and records, stimulus ids name content, and a network is recorded on a recording's stimuli."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

import simbench
from simbench.cli import main
from simbench.errors import CheckpointError, RecordingError, TaskError
from simbench.recording import Recording, load_recording, save_recording, site_dataset
from simbench.stimuli import read_stimulus_file, stimuli_from_recording
from simbench.systems.torch import TorchSystem
from simbench.tasks import Arithmetic, CountingTask, Modulo, MultiObject, Rounding, SameObject
from simbench.tasks.base import content_id
from simbench.zoo.checkpoint import save_model
from simbench.zoo.models import ModelConfig
from simbench.zoo.training import TrainConfig, train

OLD_VOCAB = (
    "PAD", "BOS", "EOS", "T", "D0", "D1", "D2", "C", "R",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    "16", "17", "18", "19", "20", "+", "-", "=", ",",
)


class Flashes(CountingTask):
    """A toy task with its own 7 tokens, pad last and no token shared with the built-ins:
    ``<s> (L|R)*n go x*n </s>``."""

    name = "flashes"
    title = "Flashes"
    vocab = ("L", "Rt", "go", "x", "</s>", "<s>", "<pad>")
    pad_token = "<pad>"
    bos_token = "<s>"
    eos_token = "</s>"
    trigger_token = "go"
    token_aliases: ClassVar[dict[str, str]] = {}
    demo_tokens = ("L", "Rt")
    response_token = "x"
    all_counts = (1, 2, 3, 4, 5, 6)
    held_out_counts = (3,)
    max_len = 16

    @staticmethod
    def f(n: np.ndarray) -> np.ndarray:
        return np.asarray(n, dtype=np.int64)


def test_builtin_tasks_keep_their_exact_vocabulary_and_ids():
    for cls in (MultiObject, SameObject, Modulo, Rounding, Arithmetic):
        task = cls()
        assert tuple(task.vocab) == OLD_VOCAB
        assert (task.pad, task.bos, task.eos) == (0, 1, 2)
        assert [task.token_id(t) for t in ("T", "D0", "R", "0", "20", ",")] == [3, 4, 8, 9, 29, 33]
    multi = MultiObject()
    assert multi.trigger == 3 and multi.response_id == 8 and list(multi.demo_ids) == [4, 5, 6]
    np.testing.assert_array_equal(multi.token_ids(["BOS", "D", "T", "R", "EOS"]), [1, 4, 3, 8, 2])
    with pytest.raises(TaskError, match=r"'X', 'Y'"):
        multi.token_ids(["BOS", "X", "Y", "X"])


def test_a_task_with_its_own_vocabulary_samples_encodes_and_scores():
    task = Flashes()
    assert (task.pad, task.bos, task.eos, task.trigger) == (6, 5, 4, 2)
    stim = task.sample(50, 1, counts="all")
    assert (stim.tokens[:, 0] == 5).all() and stim.tokens.max() == 6
    assert ((stim.tokens == 6) == ~stim.valid).all()  # padding is the task's own pad id
    row = task.decode(stim.tokens[:1])[0]
    n = int(stim.counts[0])
    assert row == ["<s>", *row[1: n + 1], "go", *["x"] * n, "</s>"]
    assert set(row[1: n + 1]) <= {"L", "Rt"}
    tok = task.encode("<s> L Rt L go x x x </s>")
    assert task.causal_model(tok)["count"].tolist() == [[0, 1, 2, 3, 3, 2, 1, 0, 0]]
    cf, mask = task.counterfactual(tok, [1], variable="count", source_value=[2])
    assert task.decode(cf) == [["<s>", "L", "Rt", "L", "go", "x", "x", "x", "x", "</s>"]]
    assert mask[0].tolist() == [False] * 5 + [True] * 5  # Rt L go are teacher-forced inputs
    with pytest.raises(TaskError, match="'D0'"):
        task.encode("<s> D0 go")  # built-in tokens are not this task's


def test_stimulus_ids_identify_their_tokens_whatever_n():
    task = MultiObject()
    small, big = task.sample(600, 0, counts="all"), task.sample(1000, 0, counts="all")
    for stim in (small, big):
        assert len(set(stim.ids)) == len(stim)  # repeats are suffixed, nothing is dropped
    tokens_of = {}
    for stim in (small, big):
        for sid, row in zip(stim.ids, task.decode(stim.tokens)):
            assert tokens_of.setdefault(str(sid), row) == row  # one id, one sequence
    # the id is the content hash, recomputable from the token strings
    first = task.decode(small.tokens[:1])[0]
    assert small.ids[0] == content_id("multi_object", first)
    # the same sequence in two samples has the same id (its first copy in each)
    shared = {" ".join(r) for r in task.decode(small.tokens)} & {
        " ".join(r) for r in task.decode(big.tokens)}
    assert len(shared) > 20
    ids_small = {" ".join(r): i for r, i in zip(task.decode(small.tokens)[::-1], small.ids[::-1])}
    ids_big = {" ".join(r): i for r, i in zip(task.decode(big.tokens)[::-1], big.ids[::-1])}
    assert all(ids_small[s] == ids_big[s] for s in shared)
    # a repeated sequence (count 1 has only 3) carries a deterministic counter
    ones = small.ids[small.counts == 1]
    assert any(i.endswith("-2") for i in ones)
    np.testing.assert_array_equal(task.sample(600, 0, counts="all").ids, small.ids)


@pytest.mark.slow
def test_a_tiny_gru_trains_and_records_on_a_task_with_its_own_vocabulary(tmp_path):
    task = Flashes()
    cfg = TrainConfig(max_steps=4, eval_every=2, batch_size=16, warmup=1, decay_steps=4)
    model, meta = train(task, "gru", 0, "cpu", config=cfg, progress=False, threads=1,
                        model_config=ModelConfig(d_model=8))
    assert model.config.vocab_size == 7 and model.readout.out_features == 7
    assert (model.config.pad_id, model.config.eos_id) == (6, 4)
    assert meta["config"]["vocab_size"] == 7 and meta["steps"] == 4
    assert 0.0 <= meta["heldout_trial_acc"] <= 1.0  # evaluated by free-running generation
    system = TorchSystem(model, task, system_id="tiny")
    rec = system.record(n=30, seed=2)
    ds = rec.site("hidden")
    stim = task.sample(30, 2, counts="all")
    np.testing.assert_array_equal(ds["stimulus_id"].values, stim.ids)
    assert all(str(i).startswith("flashes-") for i in ds["stimulus_id"].values)
    np.testing.assert_array_equal(ds["token"].values, np.asarray(task.vocab)[stim.tokens])
    np.testing.assert_array_equal(ds["valid"].values, stim.tokens != 6)
    assert set(np.unique(ds["token"].values[ds["valid"].values])) <= set(task.vocab[:6])
    # generation stops at the task's own end token and pads with its own pad id
    gen = system.generate(stim.tokens[:4], torch.as_tensor(stim.trigger_pos[:4] + 1),
                          response_mask=torch.as_tensor(stim.response_mask[:4]))
    assert set(gen.numpy().ravel().tolist()) <= set(range(7))
    # the checkpoint keeps the task's vocabulary; another task's vocabulary is refused
    path = tmp_path / "tiny.safetensors"
    save_model(model, path, meta)
    with pytest.raises(CheckpointError, match=r"7 tokens.*'multi_object' has 34 tokens"):
        TorchSystem.from_checkpoint(path, task=MultiObject())
    back = TorchSystem.from_checkpoint(path, task=task)
    assert back.model.config.vocab_size == 7


def test_a_zoo_network_refuses_a_task_of_another_vocabulary_size():
    zoo = TorchSystem.from_zoo("gru_multi_s1")
    with pytest.raises(CheckpointError, match=r"34 tokens, but task 'flashes' has 7"):
        TorchSystem(zoo.module, Flashes(), system_id="gru_multi_s1", meta=zoo.meta)


def _brain(tmp_path, n=600):
    """A recording made on sample(600, 0) by another network, as a user would bring it."""
    other = TorchSystem.from_zoo("gru_multi_s2").record(n=n, seed=0, sites=["hidden"])
    ds = other.site("hidden")
    brain = Recording(system_id="brain", sites={"hidden": site_dataset(
        ds["activity"].values, stimulus_ids=ds["stimulus_id"].values, site="hidden",
        system_id="brain", task="multi_object", tokens=ds["token"].values,
        valid=ds["valid"].values)}, task="multi_object")
    return save_recording(brain, tmp_path / "brain.nc")


@pytest.mark.slow
def test_cka_of_a_network_against_a_recording_uses_the_recordings_stimuli(tmp_path):
    brain = _brain(tmp_path)
    score = simbench.score("cka", "gru_multi_s1", brain, site="hidden", n_boot=0)
    # the same network recorded on the recording's 600 stimuli, paired file to file
    net = TorchSystem.from_zoo("gru_multi_s1")
    stim = stimuli_from_recording(load_recording(brain), net.task_def, site="hidden")
    assert len(stim) == 600
    mine = save_recording(net.record(stim, sites=["hidden"]), tmp_path / "net.nc")
    ref = simbench.score("cka", mine, brain, site="hidden", n_boot=0)
    assert score.n_samples == ref.n_samples == int(load_recording(brain).site("hidden")[
        "valid"].values.sum())
    assert score.value == pytest.approx(ref.value, rel=1e-9)
    assert 0.3 < score.value < 1.0
    rsa = simbench.score("rsa", brain, "gru_multi_s1", site="hidden", n_draws=1,
                         n_vectors=100)
    assert np.isfinite(rsa.value)


def test_foreign_tokens_in_a_recording_are_named_with_the_vocabulary(tmp_path):
    rec = load_recording(_brain(tmp_path, n=40))
    ds = rec.site("hidden")
    tok = ds["token"].values.astype(object)
    tok[3, 1] = "blip"
    tok[5, 2] = "blop"
    bad = Recording(system_id="brain", sites={"hidden": site_dataset(
        ds["activity"].values, stimulus_ids=ds["stimulus_id"].values, site="hidden",
        system_id="brain", task="multi_object", tokens=tok.astype(str),
        valid=ds["valid"].values)}, task="multi_object")
    with pytest.raises(RecordingError, match=r"'blip' \(1 steps\).*'blop'") as err:
        stimuli_from_recording(bad, MultiObject(), site="hidden")
    assert "D0 D1 D2" in str(err.value)  # the vocabulary is listed


def test_simbench_record_accepts_a_stimulus_file(tmp_path, capsys):
    text = tmp_path / "stimuli.txt"
    text.write_text("# two sequences\nBOS D0 D1 T R R EOS\n\nBOS D2 T R EOS\n")
    out = tmp_path / "rec.nc"
    assert main(["record", "gru_multi_s1", "--stimuli", str(text), "--out", str(out),
                 "--sites", "hidden", "--device", "auto"]) == 0  # auto: CUDA if present
    ds = load_recording(out).site("hidden")
    assert ds["token"].values[0].tolist() == ["BOS", "D0", "D1", "T", "R", "R", "EOS"]
    assert ds["token"].values[1, :5].tolist() == ["BOS", "D2", "T", "R", "EOS"]
    assert ds["count"].values[0].tolist() == [0, 1, 2, 2, 1, 0, 0]
    assert ds["stimulus_id"].values[0] == content_id(
        "multi_object", ["BOS", "D0", "D1", "T", "R", "R", "EOS"])
    # a recording as the stimulus file: its ids and tokens are kept
    brain = _brain(tmp_path, n=40)
    out2 = tmp_path / "rec2.nc"
    assert main(["record", "gru_multi_s1", "--stimuli", str(brain), "--out", str(out2),
                 "--sites", "hidden"]) == 0
    got, want = load_recording(out2).site("hidden"), load_recording(brain).site("hidden")
    np.testing.assert_array_equal(got["stimulus_id"].values, want["stimulus_id"].values)
    np.testing.assert_array_equal(got["token"].values, want["token"].values)
    text.write_text("BOS D0 zap T R EOS\n")
    with pytest.raises(RecordingError, match="'zap'"):
        read_stimulus_file(text, MultiObject())


class _Tiny(torch.nn.Module):
    """A user's own module over a 7-token vocabulary (no zoo config)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(7, 5)
        self.out = torch.nn.Linear(5, 7)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens))


def test_a_users_module_on_its_own_vocabulary_is_probed_and_generates_with_its_ids():
    task = Flashes()
    system = TorchSystem(_Tiny(), task, sites={"emb": "embed"}, system_id="tiny")
    assert system.site_dims == {"emb": 5}  # probed with the task's own tokens (ids 0..6)
    stim = task.sample(6, 3, counts="all")
    gen = system.generate(stim.tokens, torch.as_tensor(stim.trigger_pos + 1),
                          response_mask=torch.as_tensor(stim.response_mask)).numpy()
    for row, n_prefix in zip(gen, stim.trigger_pos + 1):
        tail = row[n_prefix:].tolist()
        if 4 in tail:  # after the task's end token, only its pad id
            assert set(tail[tail.index(4) + 1:]) <= {6}
    ds = system.record(stim, sites=["emb"]).site("emb")
    assert set(np.unique(ds["token"].values)) <= set(task.vocab)
