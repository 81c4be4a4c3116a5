"""Language models as systems: loading local directories, sites, bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

import torch
from lm_helpers import PROMPTS, gpt2, llama, save, tokenizer

import simbench
from simbench.api import resolve_system
from simbench.errors import CheckpointError, SimbenchError, SiteError, TaskError
from simbench.lm import LMSystem, load_lm
from simbench.lm.text import greedy_continue


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lms")
    return {"gpt": save(gpt2(0), tokenizer(), root / "gpt"),
            "llama": save(llama(0), tokenizer("left"), root / "llama")}


@pytest.mark.slow
def test_gpt2_and_llama_directories_load_frozen_float32(dirs: dict[str, Path]) -> None:
    for name, layers in (("gpt", ["transformer.h.0", "transformer.h.1", "transformer.h.2"]),
                         ("llama", ["model.layers.0", "model.layers.1"])):
        system = resolve_system(str(dirs[name]))
        assert isinstance(system, LMSystem) and system.system_id == name
        assert system.sites == ("embedding", *layers)
        assert system.site_dims == dict.fromkeys(system.sites, 32)
        assert system.task == "continuation" and system.access == "accessible"
        params = list(system.module.parameters())
        assert all(p.dtype == torch.float32 and not p.requires_grad for p in params)
        assert not system.module.training
    assert resolve_system(str(dirs["llama"])).padding_side == "left"


@pytest.mark.slow
def test_a_model_object_and_its_tokenizer_are_a_system() -> None:
    model = gpt2(1).half()
    system = load_lm(model, tokenizer(), prompts=PROMPTS[:3], system_id="mine")
    assert system.system_id == "mine" and len(system.task_def.prompts) == 3
    assert next(system.module.parameters()).dtype == torch.float32


def test_left_and_right_padding_continue_and_record_alike(dirs: dict[str, Path]) -> None:
    """Padding on either side, with the attention mask and positions from it, gives what each
    prompt gives alone."""
    system = load_lm(dirs["llama"], prompts=PROMPTS)
    ids = system.encode(PROMPTS, 4)
    alone = [greedy_continue(system.module, [i], 4, pad=system.pad)[0] for i in ids]
    for side in ("left", "right"):
        assert greedy_continue(system.module, ids, 4, pad=system.pad, side=side) == alone
    rec = system.record(sites=["model.layers.1"]).site("model.layers.1")
    one = system.record(prompts=[PROMPTS[6]], sites=["model.layers.1"]).site("model.layers.1")
    n = len(ids[6])
    np.testing.assert_allclose(rec["activity"].values[6, :n], one["activity"].values[0, :n],
                               atol=1e-5)


def test_unknown_site_lists_the_layers(dirs: dict[str, Path]) -> None:
    system = resolve_system(str(dirs["gpt"]))
    with pytest.raises(SiteError) as err:
        system.site_data("transformer.h.9")
    text = str(err.value)
    assert "transformer.h.9" in text and "transformer.h.0" in text and "embedding" in text


def test_directory_without_weights_or_tokenizer_names_the_file(dirs: dict[str, Path],
                                                               tmp_path: Path) -> None:
    import shutil

    no_weights = shutil.copytree(dirs["gpt"], tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors") as err:
        resolve_system(str(no_weights))
    assert err.value.field == "weights"
    no_tok = shutil.copytree(dirs["gpt"], tmp_path / "no_tok")
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json") as err:
        resolve_system(str(no_tok))
    assert err.value.field == "tokenizer" and "save_pretrained" in err.value.fix


def test_a_hub_id_is_refused_with_how_to_save_locally() -> None:
    for spec in ("openai-community/gpt2", "gpt2"):
        with pytest.raises(SimbenchError, match="disk only") as err:
            simbench.score("mas", spec, spec, site="transformer.h.1", progress=False)
        assert "save_pretrained" in err.value.fix and spec in str(err.value)


def test_prompts_longer_than_the_context_are_refused(tmp_path: Path) -> None:
    system = load_lm(save(gpt2(0, context=8), tokenizer(), tmp_path / "short"))
    with pytest.raises(TaskError, match="more than the 8 positions") as err:
        system.encode(["the dog sat on the mat"], new_tokens=4)
    assert "refuses" in str(err.value) and err.value.field == "prompts"


def test_an_empty_prompts_file_is_refused(tmp_path: Path, dirs: dict[str, Path]) -> None:
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n  \n")
    with pytest.raises(TaskError, match="no prompt") as err:
        load_lm(dirs["gpt"], prompts=empty)
    assert err.value.file == str(empty)


def test_importing_simbench_lm_needs_neither_torch_nor_transformers() -> None:
    import subprocess

    code = ("import sys, simbench, simbench.lm, simbench.tasks\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


def test_a_model_directory_digest_follows_content_not_place(dirs: dict[str, Path],
                                                            tmp_path: Path) -> None:
    import shutil

    from simbench.lm.load import model_dir_digest

    copy = shutil.copytree(dirs["gpt"], tmp_path / "moved")
    assert model_dir_digest(copy) == model_dir_digest(dirs["gpt"])
    (copy / "tokenizer_config.json").write_text("{}")
    assert model_dir_digest(copy) != model_dir_digest(dirs["gpt"])
