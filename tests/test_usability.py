"""What a new user meets first: sweeps from Python and the CLI, validation against a task,
recording errors before any network loads, and messages without numpy reprs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from conftest import make_site, rotated_copy, run_cli, write_raw, write_recording

import simbench
from simbench.cli import main
from simbench.errors import ParameterError, RecordingError
from simbench.recording import Recording, load_recording
from simbench.registry import Registry


# ---- sweeps ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_python_sweep_matches_the_cli(registry: Registry, pair_files: Any) -> None:
    from simbench.api import sweep

    a, b = pair_files
    listed = sweep("procrustes", a, b, site="hidden", n_boot=[0, 5])
    texted = sweep("procrustes", a, b, site="hidden", n_boot="0,5")
    assert [s.attrs["params"]["n_boot"] for s in listed] == [0, 5]
    assert [s.attrs["params"]["n_boot"] for s in texted] == [0, 5]
    assert listed[0].ci == texted[0].ci and not listed[0].has_interval
    assert listed[1].has_interval and listed[1].ci == texted[1].ci


def test_score_refuses_a_sweep_and_says_how(registry: Registry, pair_files: Any) -> None:
    a, b = pair_files
    for value in ([0, 5], "0,5"):
        with pytest.raises(ParameterError) as err:
            simbench.score("procrustes", a, b, site="hidden", n_boot=value)
        assert "is a sweep" in str(err.value) and "simbench.api.sweep" in str(err.value)


def test_string_parameters_sweep_with_choices_checked(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ds = make_site("a")
    a = write_recording(tmp_path / "a.nc", ds)
    b = write_recording(tmp_path / "b.nc", rotated_copy(ds, "b"))
    args = ["score", "cka", str(a), str(b), "--site", "hidden", "--n_boot", "0"]
    assert main([*args, "--kernel", "linear,cosine", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [p["attrs"]["params"]["kernel"] for p in payload] == ["linear", "cosine"]
    assert payload[0]["value"] != pytest.approx(payload[1]["value"])
    assert main([*args, "--kernel", "linear,cosin"]) == 2
    captured = capsys.readouterr()
    assert "must be one of linear, cosine, rbf, got 'cosin'" in captured.err
    assert captured.out == ""  # refused before the first value ran


def test_plot_without_a_sweep_is_refused(registry: Registry, pair_files: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    a, b = map(str, pair_files)
    png = tmp_path / "p.png"
    assert main(["score", "procrustes", a, b, "--site", "hidden", "--plot", str(png)]) == 2
    assert "--plot draws a sweep" in capsys.readouterr().err and not png.exists()


# ---- recordings are checked before any network loads ---------------------------------------
def _imported(stderr: str) -> set[str]:
    """Top-level module names from ``-X importtime`` lines (``import time: ... | name``)."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.slow
@pytest.mark.parametrize(("measure", "order"), [("cka", "net-first"), ("mas", "rec-first")])
def test_a_bad_recording_fails_before_torch_loads(tmp_path: Path, measure: str, order: str) -> None:
    good = write_recording(tmp_path / "good.nc", make_site("a"))
    bad = tmp_path / "bad.nc"
    bad.write_text("not a recording")
    # cka: the zoo network comes first and the broken file second; mas: a recording where a
    # network must be (an access error), before the network named after it.
    args = ["gru_multi_s1", str(bad)] if order == "net-first" else [str(good), "gru_multi_s1"]
    done = run_cli("score", measure, *args, "--site", "hidden",
                   env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 2, done.stderr[-2000:]
    message = [ln for ln in done.stderr.splitlines() if ln.startswith("simbench: error:")]
    expected = "not a netCDF file" if order == "net-first" else "recording and cannot be run"
    assert message and expected in message[0]
    assert "torch" not in _imported(done.stderr)


# ---- messages -------------------------------------------------------------------------------
def test_a_field_is_named_once(tmp_path: Path) -> None:
    ds = make_site("a")
    ds["activity"][3, 2, 1] = np.nan
    path = write_raw(tmp_path / "a.nc", {"hidden": ds})
    with pytest.raises(RecordingError) as err:
        load_recording(path)
    assert "field 'activity': 1 NaN/Inf values" in str(err.value)
    assert "activity: 1 NaN" not in str(err.value)


def test_an_open_bound_says_so(registry: Registry, pair_files: Any) -> None:
    a, b = pair_files
    with pytest.raises(ParameterError) as err:
        simbench.score("procrustes", a, b, site="hidden", n_boot=-1)
    assert "outside [0, no upper bound)" in str(err.value) and "None" not in str(err.value)


def test_a_choice_error_shows_plain_strings() -> None:
    from simbench.measure import Param

    p = Param("kernel", "linear", "k", choices=("linear", "cosine"))
    with pytest.raises(ParameterError) as err:
        p.parse(np.str_("rbf"), measure="cka")
    assert "must be one of linear, cosine, got 'rbf'" in str(err.value)
    assert "np.str_" not in str(err.value)


def test_no_task_is_null_not_the_string_none(registry: Registry) -> None:
    a = Recording("a", {"hidden": make_site("a")})
    b = Recording("b", {"hidden": rotated_copy(make_site("a"), "b")})
    result = simbench.score("procrustes", a, b, site="hidden", n_boot=0)
    assert result.attrs["task"] is None
    assert json.loads(result.to_json())["attrs"]["task"] is None


def test_the_readme_plugin_without_resamples_prints_no_nan_interval(
        registry: Registry, pair_files: Any, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = map(str, pair_files)
    assert main(["score", "procrustes", a, b, "--site", "hidden", "--n_boot", "0"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "(no CI: the measure gave no finite interval" in out


# ---- validate: the schema as the README states it -----------------------------------------
def _bare_file(path: Path, ds: xr.Dataset, **root: Any) -> Path:
    xr.DataTree.from_dict({"/": xr.Dataset(attrs=root), "/hidden": ds}).to_netcdf(
        path, engine="netcdf4")
    return path


def test_validate_integer_tokens_and_a_foreign_schema(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ds = make_site("a")
    ints = ds.assign_coords(token=(("stimulus", "time"), np.ones((24, 5), dtype=np.int64)))
    bare = _bare_file(tmp_path / "bare.nc", ds)  # no root attrs at all: optional, valid
    tokens = _bare_file(tmp_path / "ints.nc", ints)
    foreign = _bare_file(tmp_path / "foreign.nc", ds, schema="other-format/2")
    assert main(["validate", str(bare)]) == 0
    assert capsys.readouterr().out == f"{bare}: ok\n"
    assert load_recording(bare).system_id == "bare"  # the file name stands in
    assert main(["validate", str(tokens)]) == 0  # integer codes: valid, with a warning
    captured = capsys.readouterr()
    assert captured.out == f"{tokens}: ok\n"
    assert "simbench: warning: " in captured.err and "'token' holds integer codes" in captured.err
    assert main(["validate", str(foreign)]) == 1
    out = capsys.readouterr().out
    assert f"file {foreign}, field 'schema': root attribute schema = 'other-format/2'" in out
    with pytest.raises(RecordingError, match="expected 'simbench-recording/1'"):
        load_recording(foreign)


# ---- validate --task --------------------------------------------------------------------------
def _task_recording(path: Path, n: int = 600, *, counts: Any = "all", drop: str | None = None,
                    tamper: bool = False) -> Path:
    """A recording of task multi_object's own stimuli (random activity), optionally broken."""
    from simbench.recording import save_recording, site_dataset
    from simbench.registry import get_registry

    task = get_registry().make_task("multi_object")
    stim = task.sample(n, 0, counts=counts)
    tokens = np.asarray(task.vocab)[stim.tokens]
    variables = {k: v.copy() for k, v in stim.variables.items() if k != drop}
    if tamper:
        tokens[0, 1] = "ZZ"
        tokens[1, 1] = "QQ"
        variables["count"][2, 1] = 99
    activity = np.random.default_rng(0).normal(size=(*stim.tokens.shape, 3))
    ds = site_dataset(activity, stimulus_ids=stim.ids, site="hidden", system_id="brain",
                      tokens=tokens, valid=stim.valid, variables=variables)
    return save_recording(Recording("brain", {"hidden": ds}, task="multi_object"), path)


@pytest.mark.slow
def test_validate_against_a_task_lists_every_problem(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    good = _task_recording(tmp_path / "good.nc")
    bad = _task_recording(tmp_path / "bad.nc", drop="phase", tamper=True)
    short = _task_recording(tmp_path / "short.nc", counts=range(1, 17))
    assert main(["validate", str(good), "--task", "multi_object"]) == 0
    assert capsys.readouterr().out == f"{good}: ok for task 'multi_object'\n"
    assert main(["validate", str(bad), "--task", "multi_object"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{bad}: 3 problem(s)\n")
    assert "field 'token': 2 token(s) not in task 'multi_object''s vocabulary: 'QQ' (1 steps), " \
           "'ZZ' (1 steps)" in out
    assert "field 'count': values task 'multi_object' cannot produce: count = 99 (1 steps); " \
           "it produces count in 0..20" in out
    assert "field 'phase': no 'phase' coordinate" in out
    assert main(["validate", str(short), "--task", "multi_object"]) == 1
    assert "field 'count': never reached: count = 17..20" in capsys.readouterr().out
    assert main(["validate", str(bad)]) == 0  # the schema alone is met
    capsys.readouterr()
    assert main(["validate", str(good), "--task", "multi_objekt"]) == 2
    assert "did you mean 'multi_object'" in capsys.readouterr().err


# ---- CLMAS: states per value ----------------------------------------------------------------
def _party(n: int, counts: Any, **kw: Any) -> Any:
    from simbench.interventions.recorded import party_from_arrays
    from simbench.registry import get_registry

    task = get_registry().make_task("multi_object")
    stim = task.sample(n, 0, counts=counts)
    activity = np.random.default_rng(0).normal(size=(*stim.tokens.shape, 4))
    return party_from_arrays("brain", task, "count", stim.tokens, activity, stim.variables,
                             seed=0, **kw)


def test_clmas_refuses_values_never_recorded() -> None:
    with pytest.raises(RecordingError) as err:
        _party(400, list(range(1, 17)))
    text = str(err.value)
    assert "count = 17..20 (none)" in text and "at least 5" in text and "--values" in text
    # restricted to what was recorded, it is accepted, and the score can say what was used
    party = _party(400, list(range(1, 17)), values=(0, 16))
    assert party.coverage["count"]["needed"] == "0..16"
    assert party.coverage["count"]["recorded"] == "0..16"


def test_clmas_warns_with_the_numbers_below_30_stimuli_per_count() -> None:
    from simbench.recording_task import CoverageWarning

    with pytest.warns(CoverageWarning, match=r"count = 20 \(\d\)") as caught:
        party = _party(100, "all")  # about 5 stimuli per count
    assert "about 30 each are recommended" in str(caught[0].message)
    assert party.coverage["count"]["min_stimuli_per_value"] < 10
    assert party.coverage["count"]["recorded"] == "0..20"


# ---- what a CLMAS printout means -------------------------------------------------------------
def test_a_clmas_printout_explains_itself() -> None:
    from simbench.cli.core import render_score
    from simbench.result import Score

    fit = xr.DataArray([[0.9, 0.41, -0.2]], dims=("direction", "metric"),
                       coords={"direction": ["net->brain"], "metric": ["cosine", "r2",
                                                                       "r2_unpatched"]})
    train = {"steps": 2000, "stopped": "step cap (2000)", "best_step": 1975, "best_val": 0.62,
             "val_metric": "iia+r2"}
    score = Score(measure="clmas", value=0.8, systems=("net", "brain"), site="hidden",
                  ci=(0.75, 0.85), n_samples=1000, breakdown={"cl_fit": fit},
                  attrs={"train": train})
    text = render_score(score)
    assert "headline: IIA into 'net' with 'brain' as the source (brain->net)" in text
    assert "Wilson interval over those interventions, not a bootstrap" in text
    # clmas has no --control: chance is the shuffled-source null, drawn by --null N
    assert "measure it with --null N" in text and "--control" not in text
    assert "best validation mean over trained directions of IIA (into networks) and R^2 " \
           "(into recordings) = 0.6200 at step 1975" in text
    assert "not converged: training hit the step cap" in text
    assert "r2_unpatched = R^2 of the latent left unpatched" in text
    plateau = Score(measure="mas", value=0.8, systems=("a", "b"), n_samples=10,
                    attrs={"train": {**train, "stopped": "plateau (8 validations without gain)",
                                     "val_metric": "iia"}})
    text = render_score(plateau)
    assert "best validation IIA = 0.6200" in text
    assert "not converged" not in text and "headline" not in text and "cl_fit" not in text
