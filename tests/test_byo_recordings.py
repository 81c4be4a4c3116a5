"""A user's recording: causal variables computed from its tokens when it lacks them, and a
stimulus bootstrap of the CLMAS headline over the recording's own trials."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from byo_helpers import EXAMPLE_TASK

import simbench
from simbench.cli import main
from simbench.errors import RecordingError
from simbench.recording import Recording, load_recording, save_recording, site_dataset
from simbench.recording_task import (
    DerivedVariablesWarning,
    derive_variables,
    recorded_variables,
    task_notes,
    task_problems,
)
from simbench.registry import task_by_name
from simbench.stats import binomial_ci


def _recording(path: Path, task_name: str = "multi_object", n: int = 600, *,
               keep: tuple[str, ...] = (), tokens: np.ndarray | None = None) -> Path:
    """A recording of ``n`` of the task's stimuli (random activity) with only the causal
    variables in ``keep``."""
    task = task_by_name(task_name)
    stim = task.sample(n, 0, counts="all")
    tok = task.token_strings(stim.tokens) if tokens is None else tokens
    activity = np.random.default_rng(0).normal(size=(*stim.tokens.shape, 3))
    ds = site_dataset(activity, stimulus_ids=stim.ids, site="hidden", system_id="brain",
                      tokens=tok, valid=stim.valid,
                      variables={k: v for k, v in stim.variables.items() if k in keep})
    return save_recording(Recording("brain", {"hidden": ds}, task=task_name), path)


def _register_example(monkeypatch) -> Any:  # type: ignore[no-untyped-def]
    """The example task plugin registered from its source directory (as an entry point would
    register it) in a fresh process-wide registry; returns the task."""
    import simbench.registry as registry_module

    monkeypatch.syspath_prepend(str(EXAMPLE_TASK))
    import simbench_evidence_task

    reg = registry_module.Registry()
    reg.load_entry_points()
    reg.add_plugin(simbench_evidence_task,
                   registry_module.PluginInfo("evidence", "simbench-evidence-task", "0.1.0",
                                              "simbench_evidence_task"))
    monkeypatch.setattr(registry_module, "_REGISTRY", reg)
    return task_by_name("evidence")


@pytest.mark.slow
def test_variables_a_recording_lacks_are_computed_from_its_tokens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = task_by_name("multi_object")
    path = _recording(tmp_path / "no_vars.nc")
    rec = load_recording(path)
    stim = task.sample(600, 0, counts="all")
    with pytest.warns(DerivedVariablesWarning, match=r"no coordinate for 'count', 'phase'; "
                      r"computed from the recorded tokens by task 'multi_object'"):
        variables, derived = recorded_variables(rec.site("hidden"), task, file=path,
                                                site="hidden")
    assert derived == ["count", "phase"]
    for name in ("count", "phase"):
        np.testing.assert_array_equal(variables[name], stim.variables[name])
    # validate --task accepts it (the old check refused: "no 'count' coordinate")
    assert task_problems(rec, task) == []
    assert task_notes(rec, task) == [
        f"file {path}, site 'hidden': no coordinate for 'count', 'phase'; computed from the "
        "tokens by task 'multi_object''s causal model"]
    assert main(["validate", str(path), "--task", "multi_object"]) == 0
    assert "ok for task 'multi_object'" in capsys.readouterr().out
    # a recorded variable is kept as recorded; only the missing one is computed
    half = load_recording(_recording(tmp_path / "count_only.nc", keep=("count",)))
    assert list(derive_variables(half.site("hidden"), task)) == ["phase"]


def test_variables_that_cannot_be_computed_are_a_problem_naming_why(tmp_path: Path) -> None:
    task = task_by_name("multi_object")
    stim = task.sample(600, 0, counts="all")
    tok = task.token_strings(stim.tokens)
    tok[0, 1] = "+"  # an arithmetic token: in the vocabulary, outside the counting grammar
    path = _recording(tmp_path / "grammar.nc", tokens=tok)
    rec = load_recording(path)
    with pytest.raises(RecordingError, match=r"cannot compute the causal variable\(s\) 'count', "
                       r"'phase' of task 'multi_object' from the recorded tokens.*'\+'") as err:
        derive_variables(rec.site("hidden"), task, file=path, site="hidden")
    assert err.value.file == str(path) and err.value.field == "count"
    problems = task_problems(rec, task)
    assert len(problems) == 2 and "it cannot be computed from the tokens" in problems[0]
    assert task_notes(rec, task) == []


def test_an_evidence_recording_from_spike_times_gets_its_variables(tmp_path: Path,
                                                                    monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(EXAMPLE_TASK))
    from simbench_evidence_task import Evidence

    task = Evidence()
    ids = task.encode(["fix - L R - L - go left done", "fix R - - R - L go right done"])
    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.uniform(0, 1.5, 40)) for _ in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spikes between the two trials are dropped
        rec = simbench.from_spike_times(spikes, [0.0, 1.0], bin_width=0.05, trial_duration=0.5,
                                        system_id="rat", site="hidden", task="evidence",
                                        tokens=task.token_strings(ids), outside="drop",
                                        pad_token=task.pad_token)
    with pytest.warns(DerivedVariablesWarning):
        variables, derived = recorded_variables(rec.site("hidden"), task)
    assert derived == ["left", "right", "diff"]
    assert variables["diff"].tolist() == [[4, 4, 3, 4, 4, 3, 3, 3, 3, 3],
                                          [4, 5, 5, 5, 6, 6, 5, 5, 5, 5]]


@pytest.mark.slow
def test_clmas_offers_a_stimulus_bootstrap_of_its_headline(tmp_path: Path,
                                                         monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from byo_helpers import simulate_animal, train_tiny

    from simbench.systems.torch import TorchSystem

    task = _register_example(monkeypatch)
    model, _ = train_tiny(task, 1, steps=150)
    animal = save_recording(simulate_animal(model, task, task.sample(400, 7, counts="all"),
                                            seed=0), tmp_path / "animal.nc")
    net = TorchSystem(model, task, system_id="gru")
    budget = {"k": 4, "n_train": 1000, "n_val": 100, "n_test": 400, "max_steps": 50,
              "eval_every": 25, "pool_size": 300, "progress": False, "site": "hidden"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coverage: 400 trials
        wilson = simbench.score("clmas", net, str(animal), **budget)
        boot = simbench.score("clmas", net, str(animal), n_boot=300, **budget)
    assert boot.value == wilson.value  # the same alignment and interventions
    hits = round(wilson.value * wilson.n_samples)
    assert wilson.ci == pytest.approx(binomial_ci(hits, wilson.n_samples))
    assert wilson.attrs["ci_method"] == "Wilson interval over the held-out interventions"
    n_test = boot.attrs["recorded_stimuli"]["test"]
    assert boot.attrs["ci_method"] == (
        f"stimulus bootstrap: 300 resamples of 'animal''s {n_test} held-out stimuli (the "
        "sources), percentile interval")
    lo, hi = boot.ci
    assert lo < boot.value < hi and (lo, hi) != pytest.approx(wilson.ci)
    assert lo >= 0.0 and hi <= 1.0


@pytest.mark.slow
def test_clmas_computes_the_variables_a_recording_lacks(tmp_path: Path,
                                                        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """CLMAS on a recording without its causal-variable coordinates derives them from the
    tokens (with a warning) and scores as on the full recording."""
    from byo_helpers import simulate_animal, train_tiny

    from simbench.systems.torch import TorchSystem

    task = _register_example(monkeypatch)
    model, _ = train_tiny(task, 1, steps=150)
    rec = simulate_animal(model, task, task.sample(400, 7, counts="all"), seed=0)
    full = save_recording(rec, tmp_path / "full.nc")
    ds = rec.site("hidden").drop_vars(list(task.variables))
    bare = save_recording(Recording(rec.system_id, {"hidden": ds}, task=rec.task),
                          tmp_path / "bare.nc")
    net = TorchSystem(model, task, system_id="gru")
    budget = {"k": 4, "n_train": 500, "n_val": 100, "n_test": 200, "max_steps": 25,
              "eval_every": 25, "pool_size": 300, "progress": False, "site": "hidden"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", DerivedVariablesWarning)
        want = simbench.score("clmas", net, str(full), **budget)
    with pytest.warns(DerivedVariablesWarning, match="left"):
        got = simbench.score("clmas", net, str(bare), **budget)
    assert got.value == pytest.approx(want.value, abs=1e-12)
