"""The ``simbench`` command line: listing, scoring, validating, and failing politely.

Most tests call ``simbench.cli.main`` in process against the test registry; a few run the
installed console script in a subprocess, to prove what a user sees: one clean line per
problem, a non-zero exit status, never a traceback, and a fast start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import GOOD_PLUGIN, make_site, run_cli, write_raw, write_recording

import simbench
import simbench.registry as registry_module
from simbench.cli import main
from simbench.errors import PluginWarning
from simbench.measure import Measure
from simbench.registry import Registry


# ---- help ----------------------------------------------------------------------------------
def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("measures", "plugins", "score", "check-recording"):
        assert command in out
    assert main([]) == 0  # no command: help, success
    assert "usage: simbench" in capsys.readouterr().out


def test_help_of_the_console_script() -> None:
    done = run_cli("--help")
    assert done.returncode == 0 and "usage: simbench" in done.stdout and done.stderr == ""


# ---- measures and plugins -------------------------------------------------------------------
def test_measures_json_describes_each_measure(registry: Registry,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measures", "--json"]) == 0
    measures = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(measures) == {"procrustes", "toy_broken", "toy_causal"}
    proc = measures["procrustes"]
    assert proc["family"] == "correlative"
    assert proc["access"] == ["recording", "recording"]
    assert proc["params"][0] == {"name": "n_boot", "default": 200, "type": "int",
                                 "help": "bootstrap resamples of stimuli for the confidence interval"}
    assert proc["plugin"] == {"name": "procrustes", "dist": "simbench-example-plugin",
                              "version": "1.0"}
    assert proc["citation"].startswith("Schönemann")
    assert measures["toy_causal"]["access"] == ["accessible", "accessible"]
    assert measures["toy_causal"]["family"] == "causal"


def test_measures_table(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["measures"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["measure", "family", "access", "symmetric", "better", "range", "plugin"]
    assert "recording x recording" in out and "simbench-example-plugin:procrustes" in out
    assert "--n-boot (int, default 200)" in out


def test_plugins_lists_failed_ones_with_the_reason(registry: Registry,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    class Exploding:
        @simbench.hookimpl
        def simbench_measures(self) -> list[Measure]:
            raise RuntimeError("no GPU here")

    from conftest import info

    with pytest.warns(PluginWarning):
        registry.add_plugin(Exploding(), info("explode"))
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("explode "))
    assert "FAILED: hook raised RuntimeError: no GPU here" in row
    ok_row = next(line for line in lines if line.startswith("procrustes "))
    assert " ok " in ok_row and "simbench-example-plugin 1.0" in ok_row

    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["explode"]["error"].startswith("hook raised")
    assert plugins["procrustes"]["error"] is None
    assert plugins["procrustes"]["measures"] == ["procrustes"]


@pytest.mark.slow
def test_broken_plugin_is_one_clean_warning_line(fake_dists: Any) -> None:
    root = fake_dists("good-dist", "sbtest_goodplug", GOOD_PLUGIN.format(name="const_good"))
    fake_dists("bad-dist", "sbtest_badplug", "import sbtest_no_such_dependency\n")
    env = {"PYTHONPATH": str(root), "SIMBENCH_PLUGINS": "sbtest_goodplug,sbtest_badplug"}
    done = run_cli("plugins", env=env)
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "simbench: warning: simbench plugin 'bad-dist:sbtest_badplug' failed to load: import "
        "failed: ModuleNotFoundError: No module named 'sbtest_no_such_dependency'"]
    assert "FAILED: import failed" in done.stdout
    good = next(line for line in done.stdout.splitlines() if line.startswith("sbtest_goodplug"))
    assert " ok " in good and "const_good" in good
    listed = run_cli("measures", "--json", env=env)  # the others still work
    assert [m["name"] for m in json.loads(listed.stdout)] == ["const_good"]


def test_duplicate_measures_at_load_fail_the_second_plugin_only(
        fake_dists: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_dists("one-dist", "sbtest_one", GOOD_PLUGIN.format(name="same"))
    fake_dists("two-dist", "sbtest_two", GOOD_PLUGIN.format(name="same"))
    monkeypatch.setattr(registry_module, "_REGISTRY", None)
    monkeypatch.setenv("SIMBENCH_PLUGINS", "sbtest_one,sbtest_two")
    assert main(["measures", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("simbench: warning: simbench plugin 'two-dist:sbtest_two' "
                                   "failed to load: duplicate measure name 'same'")
    listed = json.loads(captured.out)
    assert [(m["name"], m["plugin"]["dist"]) for m in listed] == [("same", "one-dist")]
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["sbtest_one"]["error"] is None and plugins["sbtest_one"]["measures"] == ["same"]
    error = plugins["sbtest_two"]["error"]
    assert "duplicate measure name 'same'" in error
    assert "one-dist:sbtest_one" in error and "two-dist:sbtest_two" in error
    assert plugins["sbtest_two"]["measures"] == []


# ---- score ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_score_prints_value_ci_and_samples(registry: Registry, pair_files: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    a, b = map(str, pair_files)
    assert main(["score", "procrustes", a, b, "--site", "hidden", "--n_boot", "20"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("procrustes(a, b) at site 'hidden': 1.0000  95% CI [1.0000, 1.0000]")
    assert "(n = 120 samples)" in out

    assert main(["score", "procrustes", a, b, "--site", "hidden", "--json", "--n_boot=20"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["value"] == pytest.approx(1.0) and payload["n_samples"] == 120
    assert payload["attrs"]["params"] == {"n_boot": 20, "intersect": False}


def test_score_sweeps_a_parameter(registry: Registry, pair_files: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    a, b = map(str, pair_files)
    assert main(["score", "procrustes", a, b, "--site", "hidden", "--n_boot", "0,5", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [p["attrs"]["params"]["n_boot"] for p in payload] == [0, 5]
    assert payload[0]["ci"] is None  # no resamples, no interval, and a note says so
    assert "n_boot = 0" in payload[0]["attrs"]["ci_note"]


def test_score_intersect_flag(registry: Registry, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    a = write_recording(tmp_path / "a.nc", make_site("a"))
    b = write_recording(tmp_path / "b.nc",
                        make_site("b", ids=[f"s{i:03d}" for i in range(12, 36)]))
    args = ["score", "procrustes", str(a), str(b), "--site", "hidden", "--n_boot", "0"]
    assert main(args) == 2
    assert "12 only in a, 12 only in b, 12 shared" in capsys.readouterr().err
    assert main([*args, "--intersect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == 12 * 5


@pytest.mark.parametrize(("measure", "site", "extra", "expected"), [
    ("procrustez", "hidden", [], "did you mean 'procrustes'"),
    ("procrustes", "hiden", [], "sites in this recording: hidden"),
    ("procrustes", "hidden", ["--n_boot", "lots"], "'n_boot' expects int"),
    ("procrustes", "hidden", ["--n_bot", "3"], "did you mean '--n-boot'"),
    ("procrustes", "hidden", ["--n_boot", "-1"], "outside [0"),
    ("toy_causal", "hidden", [], "recording and cannot be run"),
    ("toy_broken", "hidden", [], "plugin 'toys-dist:toys') raised ZeroDivisionError"),
])
def test_score_errors_exit_2_with_one_message(
        registry: Registry, pair_files: Any, capsys: pytest.CaptureFixture[str],
        measure: str, site: str, extra: list[str], expected: str) -> None:
    a, b = map(str, pair_files)
    assert main(["score", measure, a, b, "--site", site, *extra]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("simbench: error: ")
    assert expected in captured.err
    assert captured.out == ""


def test_score_of_a_file_that_is_not_netcdf(registry: Registry, pair_files: Any, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_text("not data")
    assert main(["score", "procrustes", str(junk), str(pair_files[1]), "--site", "hidden"]) == 2
    assert f"file {junk}: not a netCDF file" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_errors_without_traceback(tmp_path: Path) -> None:
    a = write_recording(tmp_path / "a.nc", make_site("a"))
    done = run_cli("score", "no_such_measure", str(a), str(a), "--site", "hidden")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert any(line.startswith("simbench: error: field 'measure': unknown measure "
                               "'no_such_measure'") for line in done.stderr.splitlines())
    bad_usage = run_cli("score", "x")  # argparse's own errors also exit 2, no traceback
    assert bad_usage.returncode == 2 and "Traceback" not in bad_usage.stderr


# ---- validate ------------------------------------------------------------------------------
def test_validate_good_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_recording(tmp_path / "good.nc", make_site("a"))
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"

    ds = make_site("a", ids=["same"] * 24)
    ds["activity"][0, 0, 0] = np.nan
    bad = write_raw(tmp_path / "bad.nc", {"hidden": ds})
    assert main(["validate", str(good), str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{good}: ok"
    assert lines[1] == f"{bad}: 2 problem(s)"
    assert lines[2].startswith(f"  - file {bad}, site 'hidden', field 'activity': 1 NaN/Inf")
    assert lines[3].startswith(f"  - file {bad}, site 'hidden', field 'stimulus_id': 1 duplicate")


def test_validate_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truncated = write_recording(tmp_path / "cut.nc", make_site("a"))
    truncated.write_bytes(truncated.read_bytes()[:2000])
    assert main(["validate", str(truncated), str(tmp_path / "absent.nc")]) == 1
    out = capsys.readouterr().out
    assert "truncated or corrupt" in out and "no such file" in out


@pytest.mark.slow
def test_validate_console_script(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"\x00" * 64)
    done = run_cli("validate", str(junk))
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert f"file {junk}: not a netCDF file" in done.stdout


# ---- startup -------------------------------------------------------------------------------
HEAVY = ("torch", "rsatoolbox")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["measures"], ["measures", "--json"], ["plugins"], ["--help"]])
def test_listing_commands_do_not_import_heavy_libraries(argv: list[str]) -> None:
    """`simbench --help` / `measures` must start fast: torch and rsatoolbox load only to score.

    Runs with every installed plugin (the built-ins included), as a user's shell would.
    """
    code = (
        "import contextlib, io, json, sys\n"
        "from simbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SIMBENCH_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_plugin_facing_core_modules_import_without_xarray() -> None:
    """Plugins import these at load time; xarray (~0.4 s) would eat half the start-up budget."""
    code = (
        "import sys\n"
        "import simbench.measure, simbench.pairing, simbench.registry, simbench.result\n"
        "import simbench.stats, simbench.hookspecs, simbench.markers, simbench.systems\n"
        "print(sorted(m for m in ('xarray', 'torch', 'rsatoolbox') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
