"""Runaway plugins are contained: a name clash, a ``sys.exit`` or a wrong return value in one
plugin fails that plugin (or that score) with a message naming it; every other plugin and every
command keeps working.

The plugins here are real modules with real ``.dist-info`` entry points on ``PYTHONPATH`` (the
``fake_dists`` fixture), loaded by the installed console script in a fresh process, as a user's
shell would load them.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import GOOD_PLUGIN, run_cli

from simbench.errors import PluginWarning
from simbench.registry import DISABLE_VAR, ONLY_VAR, Registry

TWO_MEASURES = '''
    import simbench
    from simbench.measure import Measure

    def const(measure_name):
        return type(measure_name, (Measure,), {{"name": measure_name, "family": "correlative",
                                              "access": ("recording", "recording")}})()

    @simbench.hookimpl
    def simbench_measures():
        return [const("{first}"), const("{second}")]
'''

EXIT_AT_IMPORT = "import sys\nsys.exit(7)\n"

EXIT_IN_HOOK = '''
    import sys
    import simbench

    @simbench.hookimpl
    def simbench_measures():
        sys.exit(7)
'''

SCORING = '''
    import sys
    import simbench
    from simbench.measure import Measure

    class ExitInScore(Measure):
        name = "exit_in_score"
        family = "correlative"
        access = ("recording", "recording")

        def score(self, systems, **kw):
            sys.exit(7)

    class ReturnsDict(Measure):
        name = "returns_dict"
        family = "correlative"
        access = ("recording", "recording")

        def score(self, systems, **kw):
            return {"value": 1.0}

    @simbench.hookimpl
    def simbench_measures():
        return [ExitInScore(), ReturnsDict()]
'''


def _rows(stdout: str) -> dict[str, str]:
    """`simbench plugins` table rows by plugin name."""
    return {line.split()[0]: line for line in stdout.splitlines()[2:] if line.strip()}


def _measures(done: Any) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return {m["name"]: m["plugin"]["dist"] for m in json.loads(done.stdout)}


# ---- duplicate names -------------------------------------------------------------------------
@pytest.mark.slow
def test_duplicate_measure_name_fails_only_the_second_claimant(fake_dists: Any) -> None:
    """Every command still runs; `plugins` names both claimants; the others all load."""
    root = fake_dists("one-dist", "sbtest_dup_one", GOOD_PLUGIN.format(name="same"))
    fake_dists("two-dist", "sbtest_dup_two", TWO_MEASURES.format(first="two_only",
                                                                 second="same"))
    fake_dists("three-dist", "sbtest_three", GOOD_PLUGIN.format(name="const_three"))
    env = {"PYTHONPATH": str(root)}
    unset = (ONLY_VAR, DISABLE_VAR)

    listed = run_cli("plugins", env=env, drop=unset)
    assert listed.returncode == 0, listed.stderr
    warning_lines = listed.stderr.splitlines()
    assert len(warning_lines) == 1
    assert warning_lines[0].startswith("simbench: warning: simbench plugin "
                                       "'two-dist:sbtest_dup_two' failed to load: duplicate "
                                       "measure name 'same'")
    rows = _rows(listed.stdout)
    failed = rows["sbtest_dup_two"]
    assert "FAILED: duplicate measure name 'same'" in failed
    assert "one-dist:sbtest_dup_one" in failed and "two-dist:sbtest_dup_two" in failed
    others = {name: row for name, row in rows.items() if name != "sbtest_dup_two"}
    assert len(others) >= 3 and all(" ok " in row for row in others.values()), others

    measures = _measures(run_cli("measures", "--json", env=env, drop=unset))
    assert measures["same"] == "one-dist" and measures["const_three"] == "three-dist"
    assert "two_only" not in measures  # the plugin failed as a whole

    # Follow each hint literally: it must give a clean start with the chosen claimant.
    hints = dict(re.findall(rf"{DISABLE_VAR}=(\S+) keeps '([^']+)'", failed))
    assert set(hints.values()) == {"one-dist:sbtest_dup_one", "two-dist:sbtest_dup_two"}
    for disabled, kept in hints.items():
        again = run_cli("plugins", env={**env, DISABLE_VAR: disabled}, drop=(ONLY_VAR,))
        assert again.returncode == 0 and again.stderr == ""
        assert "FAILED" not in again.stdout and disabled.split(":")[1] not in _rows(again.stdout)
        measures = _measures(run_cli("measures", "--json", env={**env, DISABLE_VAR: disabled},
                                     drop=(ONLY_VAR,)))
        assert measures["same"] == kept.split(":")[0]
        assert measures["const_three"] == "three-dist"  # nobody else was unloaded
        assert ("two_only" in measures) == (kept == "two-dist:sbtest_dup_two")

    # The other hint: uninstall one distribution (here: remove what pip would remove).
    shutil.rmtree(root / "two_dist-1.0.dist-info")
    (root / "sbtest_dup_two.py").unlink()
    clean = run_cli("plugins", env=env, drop=unset)
    assert clean.returncode == 0 and clean.stderr == "" and "FAILED" not in clean.stdout


def test_disable_matches_entry_point_distribution_or_label(fake_dists: Any) -> None:
    fake_dists("one-dist", "sbtest_sel_one", GOOD_PLUGIN.format(name="const_sel_one"))
    fake_dists("two-dist", "sbtest_sel_two", GOOD_PLUGIN.format(name="const_sel_two"))
    both = ["sbtest_sel_one", "sbtest_sel_two"]
    for selector in ("sbtest_sel_two", "two-dist", "two-dist:sbtest_sel_two", " two-dist ,x"):
        reg = Registry()
        reg.load_entry_points(only=both, disable=selector.split(","))
        assert list(reg.measures) == ["const_sel_one"], selector


# ---- sys.exit and wrong return values ----------------------------------------------------------
def test_sys_exit_at_import_is_that_plugins_failure(fake_dists: Any) -> None:
    fake_dists("good-dist", "sbtest_exit_good", GOOD_PLUGIN.format(name="const_exit_good"))
    fake_dists("exit-dist", "sbtest_exit_import", EXIT_AT_IMPORT)
    reg = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.load_entry_points(only=["sbtest_exit_good", "sbtest_exit_import"])
    status = {p.name: p.error for p in reg.plugins}
    assert status == {"sbtest_exit_good": None,
                      "sbtest_exit_import": "import failed: called sys.exit(7)"}
    assert [w.category for w in caught] == [PluginWarning]
    assert "const_exit_good" in reg.measures


@pytest.mark.slow
def test_sys_exit_in_a_plugin_never_ends_a_command(fake_dists: Any, pair_files: Any) -> None:
    """At import, in a hook and in ``score()``: each is reported; the command goes on."""
    root = fake_dists("good-dist", "sbtest_exit_good", GOOD_PLUGIN.format(name="const_exit_good"))
    fake_dists("exit-import-dist", "sbtest_exit_import", EXIT_AT_IMPORT)
    fake_dists("exit-hook-dist", "sbtest_exit_hook", EXIT_IN_HOOK)
    fake_dists("scoring-dist", "sbtest_scoring", SCORING)
    env = {"PYTHONPATH": str(root), ONLY_VAR: "sbtest_exit_good,sbtest_exit_import,"
           "sbtest_exit_hook,sbtest_scoring"}

    listed = run_cli("plugins", env=env, drop=(DISABLE_VAR,))
    assert listed.returncode == 0, listed.stderr
    rows = _rows(listed.stdout)
    assert "FAILED: import failed: called sys.exit(7)" in rows["sbtest_exit_import"]
    assert "FAILED: hook called sys.exit(7)" in rows["sbtest_exit_hook"]
    assert " ok " in rows["sbtest_exit_good"] and " ok " in rows["sbtest_scoring"]
    assert len(listed.stderr.splitlines()) == 2  # one warning per failed plugin

    a, b = map(str, pair_files)
    done = run_cli("score", "exit_in_score", a, b, "--site", "hidden", env=env,
                   drop=(DISABLE_VAR,))
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert ("measure 'exit_in_score' (plugin 'scoring-dist:sbtest_scoring') called "
            "sys.exit(7)") in done.stderr
    assert "report it to the authors of 'scoring-dist'" in done.stderr


@pytest.mark.slow
def test_score_returning_something_else_names_the_plugin(fake_dists: Any,
                                                         pair_files: Any) -> None:
    root = fake_dists("scoring-dist", "sbtest_scoring", SCORING)
    a, b = map(str, pair_files)
    done = run_cli("score", "returns_dict", a, b, "--site", "hidden",
                   env={"PYTHONPATH": str(root), ONLY_VAR: "sbtest_scoring"},
                   drop=(DISABLE_VAR,))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "AttributeError" not in done.stderr
    assert ("measure 'returns_dict' (plugin 'scoring-dist:sbtest_scoring') returned dict "
            "{'value': 1.0} instead of a simbench.Score") in done.stderr


@pytest.mark.slow
def test_sys_exit_in_score_is_a_plugin_error_in_python(fake_dists: Any, pair_files: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import simbench
    import simbench.registry as registry_module
    from simbench.errors import PluginError

    fake_dists("scoring-dist", "sbtest_scoring", SCORING)
    monkeypatch.setenv(ONLY_VAR, "sbtest_scoring")
    monkeypatch.delenv(DISABLE_VAR, raising=False)
    monkeypatch.setattr(registry_module, "_REGISTRY", None)
    with pytest.raises(PluginError, match=r"called sys\.exit\(7\)") as err:
        simbench.score("exit_in_score", *pair_files, site="hidden")
    assert isinstance(err.value.__cause__, SystemExit)
    with pytest.raises(PluginError, match="returned dict"):
        simbench.score("returns_dict", *pair_files, site="hidden")


def test_unknown_task_says_when_plugins_were_filtered(monkeypatch: pytest.MonkeyPatch,
                                                      fake_dists: Any) -> None:
    """SIMBENCH_PLUGINS means the same for tasks as for measures, and the error says so."""
    import simbench.registry as registry_module
    from simbench.errors import TaskError

    fake_dists("one-dist", "sbtest_notasks", GOOD_PLUGIN.format(name="const_notasks"))
    monkeypatch.setattr(registry_module, "_REGISTRY", None)
    monkeypatch.setenv(ONLY_VAR, "sbtest_notasks")
    with pytest.raises(TaskError, match=rf"{ONLY_VAR}=sbtest_notasks limits which plugins"):
        registry_module.task_by_name("multi_object")
    monkeypatch.setenv(ONLY_VAR, "sbtest_notasks,tasks")
    assert registry_module.get_registry(refresh=True).make_task("multi_object").name == \
        "multi_object"


@pytest.mark.slow
def test_plugin_tasks_work_wherever_a_task_name_does(fake_dists: Any, tmp_path: Path) -> None:
    """A task from a plugin is listed by `simbench tasks` and found by every lookup."""
    plugin = '''
        import simbench
        from simbench.tasks import MultiObject

        class Renamed(MultiObject):
            name = "renamed_multi"
            title = "Multi-Object, under another name"

        @simbench.hookimpl
        def simbench_tasks():
            return [Renamed]
    '''
    root = fake_dists("task-dist", "sbtest_task", plugin)
    env = {"PYTHONPATH": str(root), ONLY_VAR: "tasks,sbtest_task"}
    listed = run_cli("tasks", "--json", env=env, drop=(DISABLE_VAR,))
    assert listed.returncode == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)][-1] == "renamed_multi"
    recorded = run_cli("record", "gru_multi_s1", "--task", "renamed_multi", "--n", "4",
                       "--out", str(tmp_path / "r.nc"), env=env, drop=(DISABLE_VAR,))
    assert recorded.returncode == 0, recorded.stderr
    assert "(renamed_multi)" in recorded.stdout
