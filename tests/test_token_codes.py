"""A recording whose optional ``token`` coordinate holds integer codes (common in files from
other tools): measures that do not read tokens accept it with a warning; what reads tokens
refuses it with the one line that converts the codes to names, and that line works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simbench
from simbench.cli import main
from simbench.errors import RecordingError, TokenCodesWarning
from simbench.recording import Recording, load_recording, save_recording, site_dataset
from simbench.registry import get_registry

TASK = "multi_object"


def coded_recording(path: Path, seed: int = 0, n: int = 300) -> Path:
    """A recording of task multi_object's own stimuli whose tokens are the task's integer
    codes (as another tool would store them), with random activity."""
    task = get_registry().make_task(TASK)
    stim = task.sample(n, 0, counts="all")
    activity = np.random.default_rng(seed).normal(size=(*stim.tokens.shape, 6))
    ds = site_dataset(activity, stimulus_ids=stim.ids, site="hidden", system_id=path.stem,
                      valid=stim.valid, variables=stim.variables)
    ds = ds.assign_coords(token=(("stimulus", "time"), stim.tokens.astype(np.int32)))
    return save_recording(Recording(path.stem, {"hidden": ds}, task=TASK), path)


@pytest.mark.slow
def test_measures_that_do_not_read_tokens_accept_codes_with_a_warning(tmp_path: Path) -> None:
    a, b = coded_recording(tmp_path / "a.nc", 0), coded_recording(tmp_path / "b.nc", 1)
    with pytest.warns(TokenCodesWarning) as caught:
        score = simbench.score("cka", a, b, site="hidden")
    assert 0 <= score.value <= 1
    text = str(caught[0].message)
    assert "'token' holds integer codes (int32)" in text and "cka, rsa" in text
    assert "CLMAS (which derives the causal variables" in text
    assert "pairing a network with this recording" in text
    assert (f"name_tokens('{a}', '{tmp_path / 'a_named.nc'}', "
            f"vocab=get_registry().make_task('{TASK}').vocab)") in text
    line = text[text.index('python -c "') + len('python -c "'):].rsplit('"', 1)[0]
    out = subprocess.run([sys.executable, "-c", line], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert load_recording(tmp_path / "a_named.nc").site("hidden")["token"].dtype.kind == "U"


def test_validate_accepts_codes_and_validate_task_says_how_to_convert(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = coded_recording(tmp_path / "a.nc")
    assert main(["validate", str(a)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{a}: ok\n" and "integer codes" in captured.err
    assert main(["validate", str(a), "--task", TASK]) == 1
    out = capsys.readouterr().out
    assert "'token' holds integer codes, not task 'multi_object''s token names" in out
    assert "name_tokens(" in out


@pytest.mark.slow
def test_what_reads_tokens_refuses_codes_with_the_conversion_line(tmp_path: Path) -> None:
    """Running a network on the recording's sequences (pairing by content) and CLMAS both
    refuse, and the line in the refusal converts the file into one they accept."""
    a = coded_recording(tmp_path / "a.nc")
    task = get_registry().make_task(TASK)
    with pytest.warns(TokenCodesWarning):
        rec = load_recording(a)
    from simbench.stimuli import stimuli_from_recording

    with pytest.raises(RecordingError) as err:
        stimuli_from_recording(rec, task)
    message = str(err.value)
    assert "'token' holds integer codes" in message and "field 'token'" in message
    assert "convert the codes to names once (if code i is task 'multi_object''s i-th " in message
    line = message[message.index('python -c "'):].rsplit('"', 1)[0] + '"'
    assert line.startswith('python -c "from simbench.recording import name_tokens; ')
    assert str(task.vocab[:3])[1:-1] in line  # the task's names, spelled out in code order
    with pytest.warns(TokenCodesWarning), pytest.raises(RecordingError, match="name_tokens"):
        simbench.score("cka", "gru_multi_s1", a, site="hidden")
    # CLMAS on the recording: refused before any training (multi_object's vocabulary has the
    # names '0'..'20', so codes read as text would silently mean other tokens)
    with pytest.warns(TokenCodesWarning), pytest.raises(RecordingError, match="name_tokens"):
        simbench.score("clmas", "gru_multi_s1", a, site="hidden", task=TASK, device="cpu")
    from simbench.recording_task import derive_variables

    ds = rec.site("hidden").drop_vars(list(task.variables))
    with pytest.raises(RecordingError, match="integer codes"):
        derive_variables(ds, task, file=a, site="hidden")

    # the one line, run as a user would
    out = subprocess.run([sys.executable, "-c", line.split('"', 1)[1].rsplit('"', 1)[0]],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    named = load_recording(tmp_path / "a_named.nc")
    tokens = named.site("hidden")["token"].values
    assert tokens.dtype.kind == "U"
    valid = named.site("hidden")["valid"].values
    assert np.array_equal(tokens[valid],
                          np.asarray(task.vocab)[rec.site("hidden")["token"].values][valid])
    stim = stimuli_from_recording(named, task)
    assert len(stim.ids) == 300


def test_codes_without_a_name_are_refused(tmp_path: Path) -> None:
    from simbench.recording import name_tokens

    a = coded_recording(tmp_path / "a.nc")
    with pytest.raises(RecordingError, match=r"token code \d+ has no name: the vocabulary has 2"):
        name_tokens(a, tmp_path / "out.nc", vocab=["x", "y"])


def test_digit_strings_from_codes_are_recognised(tmp_path: Path) -> None:
    """Codes already turned into text (site_dataset's str conversion) are named as codes."""
    from simbench.stimuli import token_ids_of_strings

    task = get_registry().make_task(TASK)
    with pytest.raises(RecordingError, match=r"integer codes \(e\.g\. 42, 99\)"):
        token_ids_of_strings(task, np.array([["99", "3", "42"]]), None)
    with pytest.raises(RecordingError, match="not in task"):  # a foreign name stays foreign
        token_ids_of_strings(task, np.array([["zebra", "3"]]), None)


def test_codes_pair_with_names_of_the_same_stimuli(tmp_path: Path) -> None:
    """One file with codes, one with names, same stimuli: their tokens cannot be compared, so
    they are paired on stimulus ids alone (names against names, or codes against codes, are
    still compared)."""
    a = coded_recording(tmp_path / "a.nc", 0)
    task = get_registry().make_task(TASK)
    with pytest.warns(TokenCodesWarning):
        rec = load_recording(a)
    ds = rec.site("hidden")
    named = ds.assign_coords(token=(ds["token"].dims,
                                    np.asarray(task.vocab)[ds["token"].values]))
    b = save_recording(Recording("b", {"hidden": named}, task=TASK), tmp_path / "b.nc")
    with pytest.warns(TokenCodesWarning):
        assert simbench.score("cka", a, b, site="hidden").value == pytest.approx(1.0)
    other = ds.assign_coords(token=(ds["token"].dims, (ds["token"].values + 1).astype(np.int32)))
    c = save_recording(Recording("c", {"hidden": other}, task=TASK), tmp_path / "c.nc")
    with pytest.warns(TokenCodesWarning), pytest.raises(RecordingError, match="different tokens"):
        simbench.score("cka", a, c, site="hidden")
