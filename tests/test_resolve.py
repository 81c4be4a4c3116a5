"""One resolver answers what kind of system a spec is, for the API, the CLI and the harness:
its order, its one error, its cache, and a new kind added as one entry (in this file)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_site, rotated_copy, write_recording

import simbench
from simbench.errors import SimbenchError
from simbench.recording import Recording, load_recording
from simbench.systems import RecordedSystem
from simbench.systems import resolve as resolver
from simbench.systems.resolve import SystemKind, kind_of, register_kind, resolve_cached

ZOO = Path(__file__).parent.parent / "recordings" / "zoo"


def test_each_spec_goes_to_its_kind_in_the_documented_order(
        tmp_path: Path, pair_files: tuple[Path, Path]) -> None:
    a, _ = pair_files
    rec = load_recording(a)
    names = [k.name for k in resolver.KINDS]
    assert names == ["recording object", "system object", "torch module", "model directory",
                     "zoo language model", "checkpoint", "recording file", "zoo network"]
    assert kind_of(rec).name == "recording object"
    assert kind_of(RecordedSystem(rec)).name == "system object"
    assert kind_of(tmp_path).name == "model directory"
    assert kind_of("lm_toxic_s1").name == "zoo language model"
    assert kind_of(str(ZOO / "gru_multi_s1.safetensors")).name == "checkpoint"
    assert kind_of(a).name == kind_of(tmp_path / "missing.nc").name == "recording file"
    assert kind_of("gru_multi_s1").name == "zoo network"
    # a local path wins over a zoo name
    (tmp_path / "gru_multi_s1").write_text("not a recording")
    monkey = tmp_path / "gru_multi_s1"
    assert kind_of(str(monkey)).name == "recording file"


def test_a_spec_no_kind_opens_is_one_error_naming_every_kind() -> None:
    with pytest.raises(SimbenchError) as err:
        simbench.resolve_system("gru_multi_s9")
    text = str(err.value)
    assert all(k.name in text for k in resolver.KINDS)
    assert "did you mean 'gru_multi_s1'" in err.value.fix or "gru_multi_s" in err.value.fix
    with pytest.raises(SimbenchError, match="disk only") as err:
        simbench.resolve_system("org/model")
    assert "save_pretrained" in err.value.fix
    with pytest.raises(SimbenchError, match="no system simbench can open"):
        simbench.resolve_system(42)


def test_the_harness_resolves_each_system_once(pair_files: tuple[Path, Path]) -> None:
    a, _ = pair_files
    first = resolve_cached(str(a), None, lazy=True)
    assert resolve_cached(str(a), None) is first  # the same process loads a file once
    assert isinstance(first, RecordedSystem) and first.sites == ("hidden",)
    assert resolver.identity(str(a)).startswith("recording:sha256:")
    assert resolver.identity("gru_multi_s1") == "zoo:gru_multi_s1"


def test_a_new_kind_of_system_is_one_entry(monkeypatch: pytest.MonkeyPatch, registry: object,
                                           tmp_path: Path) -> None:
    """A toy kind: ``rotated:PATH`` is the recording at PATH, rotated, scaled and shifted."""
    monkeypatch.setattr(resolver, "KINDS", list(resolver.KINDS))  # this test's table only
    a = write_recording(tmp_path / "a.nc", make_site("a"))

    def load(spec: str, task: object, lazy: bool) -> RecordedSystem:
        site = load_recording(spec.removeprefix("rotated:")).site("hidden")
        turned = rotated_copy(site, "turned")
        return RecordedSystem(Recording("turned", {"hidden": turned}, task="counting"))

    register_kind(SystemKind(
        "rotated recording", "rotated:PATH (a recording, rotated)",
        opens=lambda spec: isinstance(spec, str) and spec.startswith("rotated:"), load=load,
        identity=lambda spec: "rotated:" + resolver.file_digest(spec.removeprefix("rotated:"))),
        before="recording file")  # "rotated:x.nc" ends in .nc: ask before the files do

    spec = f"rotated:{a}"
    assert kind_of(spec).name == "rotated recording"
    score = simbench.score("procrustes", a, spec, site="hidden", n_boot=0)
    assert score.value == pytest.approx(1.0, abs=1e-6) and score.systems == ("a", "turned")
    assert resolver.identity(spec) == "rotated:" + resolver.file_digest(a)
    with pytest.raises(SimbenchError, match="rotated recording: rotated:PATH"):
        kind_of("nothing-like-it")
    with pytest.raises(SimbenchError, match="exists"):
        register_kind(resolver.KINDS[0])


def test_a_torch_module_is_a_system_on_the_task_given() -> None:
    from simbench.systems.torch import TorchSystem
    from simbench.zoo import load_model

    module, _ = load_model("gru_multi_s1")
    assert kind_of(module).name == "torch module"
    system = simbench.resolve_system(module, task="multi_object")
    assert isinstance(system, TorchSystem) and "hidden" in system.sites
    with pytest.raises(SimbenchError, match="needs the task") as err:
        simbench.resolve_system(module)
    assert err.value.field == "task"
