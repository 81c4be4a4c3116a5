"""A user's own task as a plugin: the README's example package pip-installed into a fresh
environment (listed, self-tested, trained on and recorded from the shell), the guide identical
to it, and ``simbench tasks --check`` naming the method and the fix for each broken rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from byo_helpers import EXAMPLE_TASK
from conftest import pip_install_child

import simbench.registry as registry_module
from simbench.cli import main
from simbench.recording import load_recording
from simbench.tasks.validation import check_task

sys.path.insert(0, str(EXAMPLE_TASK))
from simbench_evidence_task import BALANCED, Evidence

sys.path.remove(str(EXAMPLE_TASK))


def test_docs_embed_the_task_plugin_verbatim() -> None:
    """The task tutorial shows exactly the code the install test runs: it includes the
    package's files by path (MkDocs snippets), so it cannot drift from them."""
    page = (EXAMPLE_TASK.parents[1] / "docs" / "tutorials" / "task-plugin.md").read_text()
    for path in ("pyproject.toml", "simbench_evidence_task/__init__.py"):
        assert (EXAMPLE_TASK / path).is_file()
        assert f'--8<-- "tests/example_task_plugin/{path}"' in page, f"the tutorial lacks {path}"


@pytest.mark.slow
def test_example_task_pip_installs_lists_checks_trains_and_records(tmp_path: Path) -> None:
    """`pip install` the example into a fresh venv; the shell sees the task and uses it.

    As for the measure-plugin example: a venv without pip whose ``.pth`` makes this project's
    venv a site directory (simbench, pip and setuptools importable) while the plugin lands in
    the new venv only; the install is offline.
    """
    python, env = pip_install_child(tmp_path, EXAMPLE_TASK, OMP_NUM_THREADS="1")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from simbench.cli import main; sys.exit(main())"
        return subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=300)

    listed = cli("tasks", "--json")
    assert listed.returncode == 0, listed.stderr
    tasks = {t["name"]: t for t in json.loads(listed.stdout)}
    ev = tasks["evidence"]
    assert ev["variables"] == ["left", "right", "diff"]
    assert ev["vocab_size"] == 10 and ev["special_tokens"] == {
        "pad": "<pad>", "bos": "fix", "eos": "done"}
    assert ev["plugin"] == "simbench-evidence-task:evidence"
    assert tasks["multi_object"]["vocab_size"] == 34  # the built-ins are unchanged

    checked = cli("tasks", "--check", "evidence")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "task 'evidence' (plugin simbench-evidence-task:evidence): ok" in checked.stdout

    trained = cli("zoo", "train", "--task", "evidence", "--arch", "gru", "--seed", "1",
                  "--out", "nets", "--max-steps", "40", "--d-model", "16", "--batch-size",
                  "32", "--eval-every", "20", "--all-counts", "--quiet", "--threads", "1")
    assert trained.returncode in (0, 1), trained.stderr  # 1: stopped below the target
    assert "wrote nets/gru_evidence_s1.safetensors" in trained.stdout
    side = json.loads((tmp_path / "nets" / "gru_evidence_s1.json").read_text())
    assert side["task"] == "evidence" and side["train_counts"] == "all"
    assert side["config"]["vocab_size"] == 10 and side["config"]["d_model"] == 16
    assert (side["config"]["pad_id"], side["config"]["eos_id"]) == (0, 9)

    recorded = cli("record", "nets/gru_evidence_s1.safetensors", "--out", "net.nc", "--n", "40",
                   "--sites", "hidden")
    assert recorded.returncode == 0, recorded.stderr
    ds = load_recording(tmp_path / "net.nc").site("hidden")
    assert ds.sizes["unit"] == 16 and ds.attrs["task"] == "evidence"
    assert set(np.unique(ds["token"].values)) <= set(Evidence.vocab)
    assert ds["token"].values[:, 0].tolist() == ["fix"] * 40
    assert all(str(i).startswith("evidence-") for i in ds["stimulus_id"].values)
    np.testing.assert_array_equal(
        ds["diff"].values, ds["right"].values - ds["left"].values + BALANCED)


# ---- the self-test on broken tasks -----------------------------------------------------------
class Unseeded(Evidence):
    name = "unseeded"

    def sample(self, n: int, seed: int, **kw: Any) -> Any:
        return super().sample(n, int(np.random.default_rng().integers(1 << 30)), **kw)


class ShortCausalModel(Evidence):
    name = "short_causal_model"

    def causal_model(self, tokens: Any) -> dict[str, np.ndarray]:
        return {k: v[:, :-1] for k, v in super().causal_model(tokens).items()}


class ForeignTokens(Evidence):
    name = "foreign_tokens"

    def sample(self, n: int, seed: int, **kw: Any) -> Any:
        stim = super().sample(n, seed, **kw)
        stim.tokens[:, 1] = 12
        return stim


class PadIsEos(Evidence):
    name = "pad_is_eos"
    eos_token = "<pad>"


class ReservedVariable(Evidence):
    name = "reserved_variable"
    variables = ("left", "right", "token")


class SignedDiff(Evidence):
    """diff without the offset: -1 would read as undefined."""

    name = "signed_diff"

    def causal_model(self, tokens: Any) -> dict[str, np.ndarray]:
        out = super().causal_model(tokens)
        out["diff"] = np.where(out["diff"] >= 0, out["diff"] - BALANCED, -1)
        return out


class AlwaysLeft(Evidence):
    """A counterfactual that ignores the values it is given."""

    name = "always_left"

    def counterfactual(self, *args: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
        cf, mask = super().counterfactual(*args, **kw)
        cf[mask & (cf != self.eos)] = self.token_id("left")
        return cf, mask


class BadAlias(Evidence):
    name = "bad_alias"
    token_aliases: ClassVar[dict[str, str]] = {"l": "LL", "go": "fix"}


@pytest.mark.parametrize(("task", "method", "words"), [
    (Unseeded, "sample", "same seed gave different stimuli"),
    (ShortCausalModel, "causal_model", "tokens are (64, 10)"),
    (ForeignTokens, "sample", "token id 12 (sequence 0, position 1) is outside the vocabulary"),
    (PadIsEos, "eos_token", "eos_token and pad_token are the same token '<pad>'"),
    (ReservedVariable, "variables", "['token'] are names of the recording schema"),
    (SignedDiff, "causal_model", "-1 means undefined"),
    (AlwaysLeft, "counterfactual", "does not reproduce the target's determined tokens"),
    (BadAlias, "token_aliases", "alias 'l' names 'LL'"),
])
def test_check_names_the_method_and_the_fix_of_each_broken_rule(task: type, method: str,
                                                                 words: str) -> None:
    problems = check_task(task)
    assert problems, f"{task.__name__} passed its self-test"
    hit = [p for p in problems if p.method == method and words in p.message]
    assert hit, [str(p) for p in problems]
    assert all(p.fix for p in problems)


@pytest.mark.slow
def test_the_shipped_tasks_and_the_example_pass_their_self_test() -> None:
    from simbench.tasks import BUILTIN_TASKS

    for cls in (*BUILTIN_TASKS, Evidence):
        assert check_task(cls) == [], cls.name


def test_cli_check_reports_a_broken_plugin_task_and_exits_1(
        fake_dists: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task plugin installed as a distribution; `simbench tasks --check` finds its bug."""
    fake_dists("broken-task", "broken_task", f"""
        import sys
        sys.path.insert(0, {str(EXAMPLE_TASK)!r})
        import numpy as np
        import simbench
        from simbench_evidence_task import Evidence

        class Drifting(Evidence):
            name = "drifting"
            calls = 0

            def sample(self, n, seed, **kw):
                Drifting.calls += 1
                return super().sample(n, seed + Drifting.calls, **kw)

        @simbench.hookimpl
        def simbench_tasks():
            return [Drifting]
    """)
    monkeypatch.delenv("SIMBENCH_PLUGINS", raising=False)
    monkeypatch.setattr(registry_module, "_REGISTRY", None)
    assert main(["tasks", "--check", "drifting"]) == 1
    out = capsys.readouterr().out
    assert "task 'drifting' (plugin broken-task:broken_task): 1 problem(s)" in out
    assert "- sample: two calls with the same seed gave different stimuli" in out
    assert "fix: draw every random number from np.random.default_rng(seed)" in out
    assert main(["tasks", "--check", "multi_object", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report == {"name": "multi_object", "plugin": "simbench:tasks", "ok": True,
                      "problems": []}
    monkeypatch.setattr(registry_module, "_REGISTRY", None)


def test_a_task_whose_special_tokens_collide_is_refused_where_it_is_used() -> None:
    """Padding that is also the end token would stop generation on padding (and pad with the
    end token): refused with the task, the field and the fix, not only by --check."""
    from simbench.errors import TaskError

    task = PadIsEos()
    with pytest.raises(TaskError, match=r"task 'pad_is_eos' declares pad_token and eos_token "
                       r"as the same token '<pad>'") as err:
        task.sample(4, 0)
    assert err.value.field == "eos_token" and "simbench tasks --check" in err.value.fix
    with pytest.raises(TaskError, match="same token"):
        _ = task.eos
    assert Evidence().eos == 9  # distinct specials are fine
