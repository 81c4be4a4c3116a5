"""Specs: parsing, job expansion and keys, and bad specs that must say what and where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench_helpers import PLUGIN, make_recordings, spec_text, write_spec

from simbench.bench.jobs import expand, prepare
from simbench.bench.spec import load_spec, parse_spec
from simbench.errors import SpecError


def _error(root: Path, text: str) -> SpecError:
    path = write_spec(root, text)
    with pytest.raises(SpecError) as info:
        prepare(load_spec(path))
    return info.value


def _line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


@pytest.mark.slow
def test_expansion_counts_categories_and_sweeps(recs: Path) -> None:
    measures = '[measures.lin]\nmeasure = "bench_linear"\nn_boot = [5, 10]\nsites = ["hidden"]'
    spec = load_spec(write_spec(recs, spec_text(measures=measures, seeds="[0, 1]")))
    jobs = prepare(spec)
    # seeds: 3 pairs; gru_vs_tf: 3; cross_task: 3 -> 9 pairs x 2 n_boot x 1 site x 2 seeds
    assert len(jobs) == 9 * 2 * 2
    assert {j.variant for j in jobs} == {"lin[n_boot=5]", "lin[n_boot=10]"}
    assert {j.categories for j in jobs} == {("seeds",), ("gru_vs_tf",), ("cross_task",)}
    assert len({j.key for j in jobs}) == len(jobs)
    first = jobs[0]
    assert first.params == {"n_boot": 5, "sleep": 0.0, "fail": False, "fail_on": "",
                            "swallow": False}
    assert first.sources[0] == str(recs / "gru1.nc")


def test_keys_ignore_aliases_and_defaults_but_not_content(recs: Path) -> None:
    base = spec_text()
    keys = {j.key for j in expand(load_spec(write_spec(recs, base)))}
    renamed = base.replace("gru1", "first_gru").replace('"first_gru.nc"', '"gru1.nc"')
    assert {j.key for j in expand(load_spec(write_spec(recs, renamed, "b.toml")))} == keys
    explicit = base.replace('measure = "bench_linear"', 'measure = "bench_linear"\nn_boot = 20')
    assert {j.key for j in expand(load_spec(write_spec(recs, explicit, "c.toml")))} == keys
    make_recordings(recs, n_stim=12)  # new content under the same file names
    assert {j.key for j in expand(load_spec(write_spec(recs, base, "d.toml")))}.isdisjoint(keys)


@pytest.mark.slow
def test_keys_are_stable_across_processes(recs: Path) -> None:
    path = write_spec(recs)
    here = sorted(j.key for j in expand(load_spec(path)))
    code = ("import sys, simbench.registry as r; r._REGISTRY = r.Registry();"
            "from simbench.bench.spec import load_spec; from simbench.bench.jobs import expand;"
            f"print(' '.join(sorted(j.key for j in expand(load_spec({str(path)!r})))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.split()
    assert out == here


def test_within_pairs_both_orders_for_asymmetric_measures(recs: Path) -> None:
    import simbench.registry as registry_module

    spec = load_spec(write_spec(recs))
    registry_module._REGISTRY.measures["bench_linear"].__class__.symmetric = False
    try:
        jobs = expand(spec)
    finally:
        registry_module._REGISTRY.measures["bench_linear"].__class__.symmetric = True
    seed_pairs = {j.systems for j in jobs if "seeds" in j.categories}
    assert ("gru1", "gru2") in seed_pairs and ("gru2", "gru1") in seed_pairs


def test_toml_syntax_error_names_the_line(recs: Path) -> None:
    err = _error(recs, spec_text() + "\n[[pairs]\n")
    assert "not valid TOML" in str(err) and "line" in str(err)


def test_unknown_top_level_key(recs: Path) -> None:
    text = spec_text().replace('seeds = [0]', 'seeds = [0]\nseedz = [1]')
    err = _error(recs, text)
    assert "unknown key 'seedz'" in str(err)
    assert f":{_line_of(text, 'seedz')}" in str(err.file)
    assert "did you mean 'seeds'" in str(err)


def test_unknown_measure_names_the_line(recs: Path) -> None:
    text = spec_text(measures='[measures.lin]\nmeasure = "bench_linaer"')
    err = _error(recs, text)
    assert "unknown measure 'bench_linaer'" in str(err)
    assert f":{_line_of(text, 'bench_linaer')}" in str(err.file)
    assert "did you mean 'bench_linear'" in str(err)


def test_unknown_measure_parameter(recs: Path) -> None:
    text = spec_text(measures='[measures.lin]\nmeasure = "bench_linear"\nn_bootz = 3')
    err = _error(recs, text)
    assert "unknown key 'n_bootz'" in str(err) and "did you mean 'n_boot'" in str(err)
    assert f":{_line_of(text, 'n_bootz')}" in str(err.file)


def test_bad_parameter_value(recs: Path) -> None:
    text = spec_text(measures='[measures.lin]\nmeasure = "bench_linear"\nn_boot = [5, -1]')
    err = _error(recs, text)
    assert "n_boot" in str(err) and "outside" in str(err)


def test_unknown_system_in_pairs(recs: Path) -> None:
    text = spec_text(extra='[[pairs]]\nname = "extra"\npairs = [["gru1", "gru9"]]')
    err = _error(recs, text)
    assert "unknown system or group 'gru9'" in str(err)
    assert f":{_line_of(text, 'gru9')}" in str(err.file)


def test_unknown_key_in_pairs(recs: Path) -> None:
    text = spec_text(extra='[[pairs]]\nname = "extra"\nwithin = "*"\nsitez = ["hidden"]')
    err = _error(recs, text)
    assert "unknown key 'sitez' in [[pairs]]" in str(err)
    assert f":{_line_of(text, 'sitez')}" in str(err.file)
    assert err.field == "pairs[3].sitez"


def test_unknown_site_names_system_and_pair(recs: Path) -> None:
    text = spec_text().replace('sites = ["embedding", "hidden"]', 'sites = ["hidden", "cell"]')
    err = _error(recs, text)
    assert "site 'cell' does not exist in system 'gru1'" in str(err)
    assert "pair gru1 vs gru2" in str(err)


def test_missing_recording_names_the_system(recs: Path) -> None:
    text = spec_text(systems={"ghost": '{ recording = "ghost.nc", arch = "gru" }'},
                     extra='[[pairs]]\nname = "g"\npairs = [["gru1", "ghost"]]')
    err = _error(recs, text)
    assert "system 'ghost'" in str(err)
    assert f":{_line_of(text, 'ghost.nc')}" in str(err.file)


def test_causal_measure_on_recordings_names_the_pair(recs: Path) -> None:
    measures = '[measures.causal]\nmeasure = "bench_causal"'
    err = _error(recs, spec_text(measures=measures))
    text = str(err)
    assert "measure 'causal' cannot score the pair gru1 vs gru2" in text
    assert "[[pairs]] 'seeds'" in text and "recording" in text


def test_unknown_category_in_expectation(recs: Path) -> None:
    text = spec_text(extra='[[expect]]\nhigher = "seeds"\nlower = "sedes"')
    err = _error(recs, text)
    assert "unknown pair category 'sedes'" in str(err)
    assert f":{_line_of(text, 'sedes')}" in str(err.file)


def test_unknown_tag_in_selector(recs: Path) -> None:
    text = spec_text(extra='[[pairs]]\nname = "x"\nwithin = { archi = "gru" }')
    err = _error(recs, text)
    assert "no system has the tag 'archi'" in str(err)


def test_expectation_needs_both_sides(recs: Path) -> None:
    err = _error(recs, spec_text(extra='[[expect]]\nhigher = "seeds"'))
    assert "either an ordering" in str(err)


def test_missing_plugin_file(recs: Path) -> None:
    err = _error(recs, spec_text().replace(str(PLUGIN), "nope.py"))
    assert "nope.py" in str(err) and "does not exist" in str(err)


@pytest.mark.slow
def test_lenient_spec_drops_what_is_missing(recs: Path) -> None:
    text = spec_text(
        measures='[measures.lin]\nmeasure = "bench_linear"\n[measures.gone]\nmeasure = "nope"',
        systems={"zoo1": '{ zoo = "no_such_model", arch = "gru", task = "count" }'})
    spec = parse_spec(text, path=recs / "s.toml", lenient=True)
    jobs = prepare(spec)
    assert jobs and all(j.label == "lin" and "zoo1" not in j.systems for j in jobs)
    assert any("'nope' is not installed" in n for n in spec.notes)
    assert any("system 'zoo1'" in n for n in spec.notes)


def test_shipped_specs_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`simbench bench run paper` works from any directory; a local file of that name wins."""
    monkeypatch.chdir(tmp_path)
    paper = load_spec("paper")
    assert paper.name == "paper" and paper.path.name == "paper.toml"
    assert len(prepare(paper)) == 158
    (tmp_path / "paper").write_text('name = "local"\n')
    with pytest.raises(SpecError) as info:  # the local file is read, and it lacks [systems]
        load_spec("paper")
    assert str(tmp_path / "paper") in str(info.value)
    with pytest.raises(SpecError) as info:
        load_spec("papr")
    assert "shipped spec: demo, " in info.value.fix and ", paper" in info.value.fix


# ---- strict value types ----------------------------------------------------------------------
def _measure_error(recs: Path, lines: str) -> tuple[SpecError, str, Path]:
    text = spec_text(measures=f'[measures.lin]\nmeasure = "bench_linear"\n{lines}')
    path = write_spec(recs, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value, text, path


@pytest.mark.parametrize(("line", "key", "kind"), [
    ("n_boot = true", "n_boot", "an integer"),          # a boolean is not an integer (was 1)
    ("n_boot = 2.5", "n_boot", "an integer"),
    ('n_boot = "5"', "n_boot", "an integer"),
    ("fail_on = 3", "fail_on", "a string"),             # a number is not a string (was "3")
    ("fail = 1", "fail", "a boolean"),                  # an integer is not a boolean
    ('fail = "yes"', "fail", "a boolean"),
    ("sleep = false", "sleep", "a number"),
    ("n_boot = [5, true]", "n_boot", "an integer"),     # sweeps: every item
    ('fail_on = ["tf1", 2]', "fail_on", "a string"),
])
def test_spec_values_have_the_parameter_type(recs: Path, line: str, key: str,
                                             kind: str) -> None:
    err, text, path = _measure_error(recs, line)
    assert f"parameter '{key}' of measure 'bench_linear' must be {kind}" in err.message
    assert err.file == f"{path}:{_line_of(text, line)}"
    assert err.field == f"measures.lin.{key}"
    assert f"file {path}:{_line_of(text, line)}, field 'measures.lin.{key}':" in str(err)


def test_integers_are_accepted_where_a_number_is_expected(recs: Path) -> None:
    measures = ('[measures.lin]\nmeasure = "bench_linear"\nsleep = 0\n'
                '[measures.c]\nmeasure = "bench_const"\nvalue = [1, 0.5]\n')
    spec = load_spec(write_spec(recs, spec_text(measures=measures)))
    assert spec.measures["lin"].params["sleep"] == (0.0,)
    assert spec.measures["c"].params["value"] == (1.0, 0.5)
    assert all(type(v) is float for v in spec.measures["c"].params["value"])


def test_top_level_strings_are_strings(recs: Path) -> None:
    text = spec_text().replace('name = "test"', "name = 3")
    path = write_spec(recs, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "'name' must be a str, got 3" in info.value.message
    assert info.value.file == f"{path}:1"


def test_unknown_keys_in_every_table_say_where(recs: Path) -> None:
    """One check serves the top level, measures (and their params table), [[pairs]],
    [[expect]] and pair selectors: each names the key, its line and the closest known key."""
    cases = [
        (spec_text(measures='[measures.lin]\nmeasure = "bench_linear"\n'
                   '[measures.lin.params]\nn_bootz = 3'), "n_bootz", "n_boot",
         "in [measures.lin.params]"),
        (spec_text(extra='[[expect]]\nhigher = "seeds"\nlowr = "gru_vs_tf"'), "lowr", "lower",
         "in [[expect]]"),
        (spec_text(extra='[[expect]]\nhigher = { categry = "seeds" }\nlower = "gru_vs_tf"'),
         "categry", "category", "in a pair selector"),
    ]
    for text, key, close, where in cases:
        path = write_spec(recs, text)
        with pytest.raises(SpecError) as info:
            load_spec(path)
        assert f"unknown key '{key}' {where}" in info.value.message
        assert f"did you mean '{close}'" in str(info.value)
        assert info.value.file == f"{path}:{_line_of(text, key)}"


# ---- job_timeout -------------------------------------------------------------------------------
def test_job_timeout_top_level_and_per_measure(recs: Path) -> None:
    measures = ('[measures.lin]\nmeasure = "bench_linear"\njob_timeout = 0\n'
                '[measures.c]\nmeasure = "bench_const"\n')
    text = "job_timeout = 90\n" + spec_text(measures=measures)
    spec = load_spec(write_spec(recs, text))
    assert spec.job_timeout == 90.0 and spec.measures["c"].job_timeout is None
    assert spec.measures["lin"].job_timeout == 0.0
    assert spec.timeout_for("lin") == 0.0 and spec.timeout_for("c") == 90.0
    assert load_spec(write_spec(recs, spec_text(), "plain.toml")).timeout_for("lin") is None
    assert "job_timeout" not in spec.measures["lin"].params  # not a measure parameter


@pytest.mark.parametrize("value", ["-1", "true", '"60"', "nan"])
def test_job_timeout_must_be_seconds(recs: Path, value: str) -> None:
    measures = f'[measures.lin]\nmeasure = "bench_linear"\njob_timeout = {value}\n'
    text = spec_text(measures=measures)
    path = write_spec(recs, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "job_timeout" in info.value.message
    assert info.value.file == f"{path}:{_line_of(text, 'job_timeout')}"
    assert info.value.field == "measures.lin.job_timeout"


# ---- parsing to view -----------------------------------------------------------------------------
def test_a_spec_parsed_to_view_imports_nothing(recs: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """The plugins a spec names (a .py file, a module) are listed, never imported, and the
    registry is not consulted: measures and tasks it does not know are taken as written."""
    marker = recs / "imported.txt"
    evil = recs / "evil.py"
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    (recs / "evil_mod.py").write_text(evil.read_text())
    monkeypatch.syspath_prepend(str(recs))
    text = spec_text(measures='[measures.x]\nmeasure = "not_installed"\nk = [1, 2]\n'
                     'kernel = "rbf"').replace(
        f'plugins = ["{PLUGIN}"]', 'plugins = ["evil.py", "evil_mod", "os"]\ntask = "no_task"')
    spec = parse_spec(text, path=recs / "s.toml", trusted=False)
    assert not marker.exists() and "evil_mod" not in sys.modules
    assert spec.plugins == (str(recs / "evil.py"), "evil_mod", "os") and not spec.trusted
    assert spec.measures["x"].params == {"k": (1, 2), "kernel": ("rbf",)}
    import simbench.registry as registry_module

    assert registry_module._REGISTRY.plugins == []  # the fresh registry stayed empty
    with pytest.raises(SpecError):  # the same spec, trusted, runs the file
        parse_spec(text, path=recs / "s.toml")
    assert marker.read_text() == "ran"
