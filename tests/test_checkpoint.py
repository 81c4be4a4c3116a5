"""User checkpoints on real files: verified or refused, each refusal one line naming the file,
the field and the fix (no traceback): no sha256, pickles, dtype mismatch, missing config,
malformed safetensors headers."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from simbench.errors import CheckpointError
from simbench.zoo.checkpoint import load_checkpoint, save_model, sha256_file
from simbench.zoo.models import ModelConfig, build_model


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A small real GRU checkpoint written the way `simbench zoo train` writes one."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="gru", d_model=8, n_layers=1, d_ff=16))
    save_model(model, tmp_path / "mine.safetensors", {"task": "multi_object", "seed": 0})
    return tmp_path / "mine.safetensors"


def edit_sidecar(path: Path, **changes: object) -> dict:
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    side.write_text(json.dumps(meta))
    return meta


def test_a_verified_checkpoint_loads(ckpt: Path) -> None:
    model, meta = load_checkpoint(ckpt)
    assert meta["sha256"] == sha256_file(ckpt) and meta["dtype"] == "float16"
    assert sum(p.numel() for p in model.parameters()) == meta["n_params"]


def test_a_sidecar_without_sha256_is_refused_and_shows_the_digest(ckpt: Path) -> None:
    """No silent trust on first use: the user adds the digest, deliberately, and then it loads."""
    digest = sha256_file(ckpt)
    edit_sidecar(ckpt, sha256=None)
    with pytest.raises(CheckpointError, match="no sha256, so the weights cannot be verified") \
            as err:
        load_checkpoint(ckpt)
    message = str(err.value)
    assert f"file {ckpt.with_suffix('.json')}, field 'sha256'" in message
    assert f'"sha256": "{digest}"' in message
    load_checkpoint(ckpt, expected_sha256=digest)  # a manifest's digest verifies it too
    edit_sidecar(ckpt, sha256=digest)
    load_checkpoint(ckpt)
    edit_sidecar(ckpt, sha256="abc")
    with pytest.raises(CheckpointError, match="not 64 lowercase hex digits"):
        load_checkpoint(ckpt)


def test_a_dtype_the_tensors_do_not_have_is_refused(tmp_path: Path, ckpt: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = {k: v.float() for k, v in load_file(str(ckpt)).items()}
    save_file(state, str(ckpt))  # float32 tensors under a sidecar that says float16
    edit_sidecar(ckpt, sha256=sha256_file(ckpt))
    with pytest.raises(CheckpointError, match="dtype mismatch: the sidecar says float16") as err:
        load_checkpoint(ckpt)
    assert "is float32" in str(err.value) and '"dtype": "float32"' in str(err.value)
    assert f"file {ckpt}, field 'dtype'" in str(err.value)
    edit_sidecar(ckpt, dtype="float32")
    load_checkpoint(ckpt)
    edit_sidecar(ckpt, dtype="int8")
    with pytest.raises(CheckpointError, match="sidecar dtype 'int8'"):
        load_checkpoint(ckpt)


def test_a_sidecar_without_config_is_one_clear_error(ckpt: Path) -> None:
    edit_sidecar(ckpt, config=None)
    with pytest.raises(CheckpointError, match="sidecar has no 'config' object") as err:
        load_checkpoint(ckpt)
    assert f"file {ckpt.with_suffix('.json')}, field 'config'" in str(err.value)
    assert "d_model" in str(err.value)  # the fix lists the keys
    edit_sidecar(ckpt, config={"arch": "gru", "width": 3})
    with pytest.raises(CheckpointError, match=r"unknown keys \['width'\]"):
        load_checkpoint(ckpt)
    edit_sidecar(ckpt, config={"arch": "gru", "d_model": "wide"})
    with pytest.raises(CheckpointError, match="config does not build a model"):
        load_checkpoint(ckpt)


def _with_header(data: bytearray, change) -> bytes:
    """The file with its JSON header parsed, changed by ``change(header)`` and written back."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    change(header)
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + bytes(data[8 + n:])


def _corrupt(path: Path, fn) -> None:
    """Rewrite the file's bytes, and the sidecar's sha256 to match (so the header is reached)."""
    path.write_bytes(fn(bytearray(path.read_bytes())))
    edit_sidecar(path, sha256=sha256_file(path))


@pytest.mark.parametrize(("damage", "says"), [
    (lambda b: b[:9] + b"\x00\x01" + b[11:], "not valid JSON"),
    (lambda b: (10**6).to_bytes(8, "little") + b[8:], "declares 1000000 header bytes"),
    (lambda b: b[:200], "declares"),  # truncated
    (lambda b: _with_header(b, lambda h: h[next(k for k in h if k != "__metadata__")]
                            .update(data_offsets=[0, 10**9])), "byte range"),
    (lambda b: _with_header(b, lambda h: h.update(w={"shape": [2]})), "'w' has no valid dtype"),
])
def test_a_malformed_safetensors_header_is_one_clear_error(ckpt: Path, damage, says) -> None:
    _corrupt(ckpt, damage)
    with pytest.raises(CheckpointError, match="malformed safetensors header") as err:
        load_checkpoint(ckpt)
    assert says in str(err.value) and f"file {ckpt}" in str(err.value)
    assert "safetensors.torch.save_file" in str(err.value)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl"])
def test_pickled_checkpoints_are_refused_with_the_conversion(tmp_path: Path, ckpt: Path,
                                                             suffix: str, capsys) -> None:
    from simbench.cli import main

    model, _ = load_checkpoint(ckpt)
    path = tmp_path / f"model{suffix}"
    torch.save(model.state_dict(), path)
    rc = main(["score", "cka", str(path), str(ckpt), "--site", "hidden"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"file {path}: refusing a torch.save archive" in err
    assert "not a netCDF" not in err
    # the conversion the message gives works: run it, then the file loads as safetensors
    line = err.split("convert it once where you trust it: ")[1].split(" ; ")[0]
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(line, {})
    finally:
        os.chdir(cwd)
    converted = path.with_suffix(".safetensors")
    assert converted.exists()
    side = json.loads(ckpt.with_suffix(".json").read_text())
    side.update(sha256=sha256_file(converted), dtype="float32")
    converted.with_suffix(".json").write_text(json.dumps(side))
    again, _ = load_checkpoint(converted)
    assert all(torch.equal(a, b.float()) for a, b in
               zip(again.state_dict().values(), model.state_dict().values()))
    path.write_bytes(pickle.dumps({"w": [1.0]}))
    with pytest.raises(CheckpointError, match="refusing a Python pickle"):
        load_checkpoint(path)


def test_a_bad_checkpoint_as_a_system_is_one_line_on_the_cli(ckpt: Path, capsys) -> None:
    from simbench.cli import main

    edit_sidecar(ckpt, config=None)
    rc = main(["score", "cka", str(ckpt), "gru_multi_s1", "--site", "hidden"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"simbench: error: file {ckpt.with_suffix('.json')}, field 'config'")


def test_a_sidecar_without_a_task_names_the_fix(ckpt: Path) -> None:
    """No task in the sidecar and none given: one error naming the sidecar and the field (it
    was a KeyError); giving the task works."""
    from simbench.systems.torch import TorchSystem

    edit_sidecar(ckpt, task=None)
    with pytest.raises(CheckpointError, match="names no task") as err:
        TorchSystem.from_checkpoint(ckpt)
    assert err.value.field == "task" and "mine.json" in str(err.value)
    assert TorchSystem.from_checkpoint(ckpt, task="multi_object").task == "multi_object"
