"""Bring your own experiment, end to end: a task simbench does not ship (the example plugin,
pip-installed), two networks trained on it, an "animal" recorded as spike times, CLMAS between
them, and a spec whose leaderboard ranks the networks against the recording.

The animal's units are Poisson neurons driven by network 1's hidden state on each trial; the
control population fires from another trial's state, so it ignores the trial's flashes. CLMAS
into each network with the animal as the source must score clearly above the same with the
control (the intervals do not overlap).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from byo_helpers import pip_install_example_task, simulate_animal, train_tiny, use_site

from simbench.bench.jobs import prepare
from simbench.bench.leaderboard import build
from simbench.bench.runner import run_spec
from simbench.bench.spec import load_spec
from simbench.bench.store import Store
from simbench.recording import load_recording, save_recording
from simbench.recording_task import task_problems
from simbench.registry import task_by_name
from simbench.tasks.validation import check_task
from simbench.zoo.checkpoint import save_model

CLMAS_BUDGET = ('k = 4\nn_train = 2000\nn_val = 200\nn_test = 300\nmax_steps = 150\n'
                'eval_every = 25\npool_size = 400\nprogress = false\n')

SPEC = f"""
name = "evidence"
seeds = [0]
sites = ["hidden"]
task = "evidence"
target = "animal"
job_timeout = 0

[systems]
gru1 = {{ source = "nets/gru_evidence_s1.safetensors", arch = "gru" }}
gru2 = {{ source = "nets/gru_evidence_s2.safetensors", arch = "gru" }}
animal = {{ recording = "animal.nc", arch = "brain" }}
control = {{ recording = "control.nc", arch = "brain" }}

[measures.clmas]
{CLMAS_BUDGET}
[measures.cka]
n_boot = 0
[measures.mas]
{CLMAS_BUDGET}
[measures.das]
{CLMAS_BUDGET}
[measures.rsa]
n_draws = 1
n_vectors = 100

[[pairs]]
name = "networks_vs_animal"
pairs = [["gru1", "animal"], ["gru2", "animal"]]
measures = ["clmas", "cka"]
[[pairs]]
name = "networks_vs_control"
pairs = [["gru1", "control"], ["gru2", "control"]]
measures = ["clmas", "cka"]
[[pairs]]
name = "seeds"
pairs = [["gru1", "gru2"]]
measures = ["mas", "cka", "rsa"]
[[pairs]]
name = "task"
each = {{ arch = "gru" }}
measures = ["das"]

[[expect]]
finding = "the animal that encodes the flashes aligns better than its control"
higher = "networks_vs_animal"
lower = "networks_vs_control"
"""


@pytest.mark.slow
def test_networks_on_a_users_task_align_with_its_animal_above_the_control(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = use_site(pip_install_example_task(tmp_path), monkeypatch)
    assert reg.task_plugin_of("evidence").dist == "simbench-evidence-task"
    task = task_by_name("evidence")
    assert check_task(task) == []

    nets = tmp_path / "nets"
    models = {}
    for seed in (1, 2):
        model, meta = train_tiny(task, seed)
        assert model.config.vocab_size == 10 and meta["all_trial_acc"] > 0.9
        save_model(model, nets / f"gru_evidence_s{seed}.safetensors", meta)
        models[seed] = model

    stim = task.sample(600, 7, counts="all")
    animal = save_recording(simulate_animal(models[1], task, stim, seed=0),
                            tmp_path / "animal.nc")
    control = save_recording(simulate_animal(models[1], task, stim, seed=0, control=True,
                                             system_id="control"), tmp_path / "control.nc")
    rec = load_recording(animal)
    # tokens, variables and coverage fit the task (the control's too: only its rates differ)
    assert task_problems(rec, task) == task_problems(load_recording(control), task) == []
    ds = rec.site("hidden")
    assert ds.attrs["task"] == "evidence" and ds.sizes["unit"] == 60
    assert ds["token"].values[0, 0] == "fix" and ds["diff"].values.max() <= 8

    spec_path = tmp_path / "evidence.toml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    jobs = prepare(spec)
    # clmas and cka on 4 (network, population) pairs; mas, cka, rsa on the two networks; das
    # of each network against the task's causal model
    assert len(jobs) == 2 * 4 + 3 + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coverage warnings: 600 trials, ~19 reach the extremes
        with Store(tmp_path / "evidence.sqlite") as store:
            summary = run_spec(spec, store, jobs=jobs, device="cpu", progress=False)
            assert not summary.failed, summary.failed
            board = build(spec, store, target="animal")
            board_control = build(spec, store, target="control")

    def scores(b, measure):  # type: ignore[no-untyped-def]
        (ranking,) = [r for r in b.rankings if r.variant == measure]
        return {system: (value, ci) for _, system, value, ci, _ in ranking.rows}

    on_animal, on_control = scores(board, "clmas"), scores(board_control, "clmas")
    assert set(on_animal) == set(on_control) == {"gru1", "gru2"}
    for net in ("gru1", "gru2"):
        (a, (a_lo, _a_hi)), (c, (_c_lo, c_hi)) = on_animal[net], on_control[net]
        assert a > c + 0.08 and a_lo > c_hi, (net, on_animal[net], on_control[net])
        assert c < 0.6  # the control stays near what the network gets with noise as source
    (validity,) = [v for v in board.validity if v.variant == "clmas"]
    assert validity.fraction == 1.0
    cka_animal, cka_control = scores(board, "cka"), scores(board_control, "cka")
    assert all(np.isfinite(v) for v, _ in (*cka_animal.values(), *cka_control.values()))

    seeds = {v.variant: v for v in board.matrices if v.site == "hidden"}
    for measure in ("mas", "rsa"):
        assert measure in seeds
    assert np.isfinite(seeds["mas"].values).any()
    (das,) = [e for e in board.entries if e.measure == "das" and e.systems == ("gru1",)]
    assert das.value > 0.5  # a trained network follows its task's causal model
    table = {net: {"animal": on_animal[net], "control": on_control[net]} for net in on_animal}
    (tmp_path / "table.json").write_text(json.dumps(table, indent=1))
    print(json.dumps(table))  # the table in docs/tutorials/own-experiment.md comes from this run (pytest -s)
