"""The plugin registry: loading, isolation of broken plugins, name clashes, filtering, lookups.

Plugins are registered the two ways a real one can be: through ``Registry.add_plugin`` (what
``load_entry_points`` calls for each entry point) and through genuine entry points, either
from a ``.dist-info`` placed on ``sys.path`` or, in the last test, from a real ``pip install``
of ``tests/example_plugin`` into a temporary environment.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    EXAMPLE_PLUGIN,
    GOOD_PLUGIN,
    Broken,
    Causal,
    ToyPlugin,
    info,
    make_site,
    pip_install_child,
    write_recording,
)

import simbench
import simbench.registry as registry_module
from simbench.errors import AccessError, PluginError, PluginWarning, RegistryError
from simbench.measure import Measure
from simbench.recording import load_recording
from simbench.registry import Registry, get_registry


# ---- the example plugin, in process ---------------------------------------------------------
@pytest.mark.slow
def test_example_plugin_scores_rotated_copy_as_one(registry: Registry, pair_files: Any) -> None:
    a, b = pair_files
    result = simbench.score("procrustes", a, b, site="hidden", n_boot=50)
    assert result.value == pytest.approx(1.0, abs=1e-9)
    assert result.n_samples == 24 * 5
    assert result.ci is not None and result.ci[0] == pytest.approx(1.0, abs=1e-9)
    assert result.systems == ("a", "b")
    assert result.attrs["plugin"] == "simbench-example-plugin:procrustes"
    assert result.attrs["params"] == {"n_boot": 50, "intersect": False}


def test_example_plugin_unrelated_systems_score_below_one(
        registry: Registry, tmp_path: Path) -> None:
    a = write_recording(tmp_path / "a.nc", make_site("a", seed=0))
    b = write_recording(tmp_path / "b.nc", make_site("b", seed=1))
    result = simbench.score("procrustes", a, b, site="hidden", n_boot=20, seed=3)
    assert 0.0 < result.value < 0.9
    assert result.ci[0] < result.ci[1]
    again = simbench.score("procrustes", a, b, site="hidden", n_boot=20, seed=3)
    assert again.ci == result.ci  # same seed, same interval


def test_registration_records_provider(registry: Registry) -> None:
    assert registry.plugin_of("procrustes").dist == "simbench-example-plugin"
    described = registry.measure("procrustes").describe()
    assert described["family"] == "correlative"
    assert described["access"] == ["recording", "recording"]
    assert {p["name"]: p["default"] for p in described["params"]} == {
        "n_boot": 200, "intersect": False}


# ---- broken plugins --------------------------------------------------------------------------
def test_plugin_raising_on_import_is_a_warning_and_others_still_load(fake_dists: Any) -> None:
    fake_dists("good-dist", "sbtest_goodplug", GOOD_PLUGIN.format(name="const_good"))
    fake_dists("bad-dist", "sbtest_badplug", "raise RuntimeError('cannot find my weights')\n")
    reg = Registry()
    with pytest.warns(PluginWarning, match=r"bad-dist:sbtest_badplug.*cannot find my weights"):
        reg.load_entry_points(only=["sbtest_goodplug", "sbtest_badplug"])
    status = {p.name: p.error for p in reg.plugins}
    assert status["sbtest_goodplug"] is None
    assert "import failed: RuntimeError: cannot find my weights" in status["sbtest_badplug"]
    assert "const_good" in reg.measures


def test_own_plugins_load_before_third_party(fake_dists: Any) -> None:
    fake_dists("aaa-dist", "sbtest_first", GOOD_PLUGIN.format(name="const_first"))
    reg = Registry()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other plugins may be failing meanwhile; not our concern
        reg.load_entry_points()
    dists = [p.dist for p in reg.plugins]
    assert "aaa-dist" in dists
    own = [i for i, d in enumerate(dists) if d == "simbench"]
    assert own and max(own) < dists.index("aaa-dist")


def test_hook_that_raises_marks_plugin_failed(registry: Registry) -> None:
    class Exploding:
        @simbench.hookimpl
        def simbench_measures(self) -> list[Measure]:
            raise KeyError("config")

    with pytest.warns(PluginWarning, match=r"explode-dist:explode.*hook raised KeyError"):
        got = registry.add_plugin(Exploding(), info("explode"))
    assert got.error is not None and got in registry.plugins
    assert not registry.pm.has_plugin(got.label)
    assert "procrustes" in registry.measures  # the others are untouched


def test_hook_returning_a_non_measure_is_refused(registry: Registry) -> None:
    class Sloppy:
        @simbench.hookimpl
        def simbench_measures(self) -> list[Any]:
            return ["cka"]

    with pytest.warns(PluginWarning, match="not a simbench.Measure"):
        got = registry.add_plugin(Sloppy(), info("sloppy"))
    assert "not a simbench.Measure" in got.error


def test_measure_raising_during_scoring_names_the_plugin(
        registry: Registry, pair_files: Any) -> None:
    with pytest.raises(PluginError, match=r"toy_broken.*toys-dist:toys.*ZeroDivisionError") as err:
        simbench.score("toy_broken", *pair_files, site="hidden")
    assert isinstance(err.value.__cause__, ZeroDivisionError)
    assert "toys-dist" in err.value.fix


def test_duplicate_name_fails_the_whole_plugin_and_leaves_the_registry_as_it_was(
        registry: Registry, example_module: Any) -> None:
    """All or nothing: a plugin whose *second* item clashes registers none of its items."""
    before = (dict(registry.measures), dict(registry.tasks), registry.pm.get_plugins())

    class Fresh(Measure):
        name = "fresh"
        family = "correlative"
        access = ("recording", "recording")

    with pytest.warns(PluginWarning, match="duplicate measure name 'procrustes'") as warned:
        got = registry.add_plugin(ToyPlugin(Fresh(), example_module.Procrustes()),
                                  info("copycat"))
    message = str(warned[0].message)
    assert "simbench-example-plugin:procrustes" in message and "copycat-dist:copycat" in message
    assert got.error is not None and "duplicate measure name 'procrustes'" in got.error
    assert got.measures == [] and "fresh" not in registry.measures
    assert not registry.pm.has_plugin(got.label)
    assert (dict(registry.measures), dict(registry.tasks), registry.pm.get_plugins()) == before
    assert registry.plugin_of("procrustes").label == "simbench-example-plugin:procrustes"


def test_a_plugin_under_a_taken_label_leaves_the_first_one_registered(
        registry: Registry) -> None:
    with pytest.warns(PluginWarning, match="registration failed: ValueError"):
        got = registry.add_plugin(ToyPlugin(_named("toy_label")),
                                  info("procrustes", "simbench-example-plugin"))
    assert got.error and "toy_label" not in registry.measures
    assert registry.pm.has_plugin("simbench-example-plugin:procrustes")
    assert registry.plugin_of("procrustes").error is None


def test_a_plugin_naming_one_item_twice_is_refused(registry: Registry) -> None:
    with pytest.warns(PluginWarning, match="registers the measure name 'toy_twice' twice"):
        got = registry.add_plugin(ToyPlugin(_named("toy_twice"), _named("toy_twice")),
                                  info("twice"))
    assert got.error and "toy_twice" not in registry.measures


def test_tasks_are_registered_all_or_nothing_too(registry: Registry) -> None:
    from simbench.tasks import MultiObject, SameObject

    class Tasks:
        @simbench.hookimpl
        def simbench_tasks(self) -> list[type]:
            return [MultiObject]

    class Clash:
        @simbench.hookimpl
        def simbench_measures(self) -> list[Measure]:
            return [_named("toy_with_task")]

        @simbench.hookimpl
        def simbench_tasks(self) -> list[type]:
            return [SameObject, MultiObject]

    assert registry.add_plugin(Tasks(), info("tasks_a")).error is None
    with pytest.warns(PluginWarning, match="duplicate task name 'multi_object'"):
        got = registry.add_plugin(Clash(), info("tasks_b"))
    assert got.error and list(registry.tasks) == ["multi_object"]
    assert "toy_with_task" not in registry.measures
    assert registry.task_plugin_of("multi_object").name == "tasks_a"


def test_hooks_are_called_through_pluggy_for_each_plugin_alone(registry: Registry) -> None:
    """Each plugin's results are attributed to it, however many plugins implement a hook."""
    registry.add_plugin(ToyPlugin(_named("toy_one")), info("one"))
    registry.add_plugin(ToyPlugin(_named("toy_two")), info("two"))
    assert registry.plugin_of("toy_one").name == "one"
    assert registry.plugin_of("toy_two").name == "two"
    assert [p.name for p in registry.plugins if "toy_two" in p.measures] == ["two"]
    # pluggy itself knows every plugin under its label
    impls = registry.pm.hook.simbench_measures.get_hookimpls()
    assert {i.plugin_name for i in impls} >= {"one-dist:one", "two-dist:two",
                                              "simbench-example-plugin:procrustes"}


def test_unmarked_hook_functions_are_refused_not_ignored(registry: Registry) -> None:
    class Unmarked:
        def simbench_measures(self) -> list[Measure]:
            return [_named("toy_unmarked")]

    with pytest.warns(PluginWarning, match=r"not decorated with @simbench.hookimpl"):
        got = registry.add_plugin(Unmarked(), info("unmarked"))
    assert got.error and "toy_unmarked" not in registry.measures


def test_a_task_hook_returning_a_non_task_is_refused(registry: Registry) -> None:
    class Sloppy:
        @simbench.hookimpl
        def simbench_tasks(self) -> list[Any]:
            return ["multi_object"]

    with pytest.warns(PluginWarning, match="not a subclass of simbench.tasks.base.Task"):
        got = registry.add_plugin(Sloppy(), info("sloppy_tasks"))
    assert got.error and registry.tasks == {}


def _named(name: str) -> Measure:
    cls = type(name, (Measure,), {"name": name, "family": "correlative",
                                  "access": ("recording", "recording")})
    return cls()


def test_simbench_plugins_restricts_loading(fake_dists: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dists("one-dist", "sbtest_one", GOOD_PLUGIN.format(name="const_one"))
    fake_dists("two-dist", "sbtest_two", GOOD_PLUGIN.format(name="const_two"))
    monkeypatch.setattr(registry_module, "_REGISTRY", None)  # restored after the test
    monkeypatch.setenv("SIMBENCH_PLUGINS", "sbtest_one")  # by entry-point name
    reg = get_registry(refresh=True)
    assert [p.name for p in reg.plugins] == ["sbtest_one"]
    assert list(reg.measures) == ["const_one"]
    monkeypatch.setenv("SIMBENCH_PLUGINS", " two-dist , nothing-such")  # by distribution name
    reg = get_registry(refresh=True)
    assert [p.dist for p in reg.plugins] == ["two-dist"]


# ---- lookups and access ----------------------------------------------------------------------
def test_unknown_measure_suggests_the_closest_name(registry: Registry) -> None:
    with pytest.raises(RegistryError, match=r"(?s)unknown measure 'procrustez'.*did you mean 'procrustes'"):
        registry.measure("procrustez")
    with pytest.raises(RegistryError, match="did you mean 'toy_causal'"):
        simbench.score("toy_casual", "a.nc", "b.nc", site="hidden")


def test_causal_measure_on_two_recordings_is_refused(registry: Registry, pair_files: Any) -> None:
    with pytest.raises(AccessError) as err:
        simbench.score("toy_causal", *pair_files, site="hidden")
    message = str(err.value)
    assert "toy_causal" in message and "recording and cannot be run" in message
    assert str(pair_files[0]) in message  # names the file


def test_wrong_number_of_systems_is_refused(registry: Registry, pair_files: Any) -> None:
    with pytest.raises(AccessError, match="takes 2 systems, got 1"):
        simbench.score("procrustes", pair_files[0], site="hidden")


def test_unknown_parameter_suggests(registry: Registry, pair_files: Any) -> None:
    from simbench.errors import ParameterError

    with pytest.raises(ParameterError, match="did you mean 'n_boot'"):
        simbench.score("procrustes", *pair_files, site="hidden", n_bot=3)


def test_recording_objects_are_systems_too(registry: Registry, pair_files: Any) -> None:
    a, b = (load_recording(p) for p in pair_files)
    assert simbench.score("procrustes", a, b, site="hidden", n_boot=0).value == pytest.approx(1.0)


def test_broken_measure_helper_is_registered(registry: Registry) -> None:
    assert isinstance(registry.measure("toy_broken"), Broken)
    assert isinstance(registry.measure("toy_causal"), Causal)


# ---- the example plugin, pip-installed for real -----------------------------------------------
@pytest.mark.slow
def test_example_plugin_pip_installs_and_runs(tmp_path: Path, pair_files: Any) -> None:
    """`pip install` the README's example into a fresh venv; its CLI lists and scores with it.

    The venv is created from this interpreter without pip (fast); a ``.pth`` file makes the
    project's venv a site directory of it, so simbench, pip and setuptools are importable
    there while the plugin lands in the new venv only. The install is offline.
    """
    python, env = pip_install_child(tmp_path, EXAMPLE_PLUGIN)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from simbench.cli import main; sys.exit(main())"
        return subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    listed = cli("measures", "--json")
    assert listed.returncode == 0, listed.stderr
    measures = {m["name"]: m for m in json.loads(listed.stdout)}
    assert measures["procrustes"]["plugin"]["dist"] == "simbench-example-plugin"
    assert measures["procrustes"]["family"] == "correlative"

    a, b = pair_files
    scored = cli("score", "procrustes", str(a), str(b), "--site", "hidden", "--json",
                 "--n_boot", "20")
    assert scored.returncode == 0, scored.stderr
    payload = json.loads(scored.stdout)
    assert payload["value"] == pytest.approx(1.0, abs=1e-9)
    assert payload["n_samples"] == 24 * 5 and len(payload["ci"]) == 2
    assert payload["attrs"]["plugin"] == "simbench-example-plugin:procrustes"
    assert np.isfinite(payload["ci"]).all()

    missing = cli("score", "procrustes", str(a), str(b), "--site", "nope")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    assert "site 'nope'" in missing.stderr and "sites in this recording: hidden" in missing.stderr



def test_docs_embed_the_example_plugin_verbatim() -> None:
    """The measure tutorial shows exactly the code the install test runs: it includes the
    package's files by path (MkDocs snippets), so it cannot drift from them."""
    page = (EXAMPLE_PLUGIN.parents[1] / "docs" / "tutorials" / "measure-plugin.md").read_text()
    for path in ("pyproject.toml", "simbench_example_plugin/__init__.py"):
        assert (EXAMPLE_PLUGIN / path).is_file()
        assert f'--8<-- "tests/example_plugin/{path}"' in page, f"the tutorial lacks {path}"
