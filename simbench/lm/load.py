"""Loading a causal LM from a local directory, file by file, from disk only.

A model directory is what ``save_pretrained`` writes for a model and its tokenizer: the config,
safetensors weights (maybe sharded) and the tokenizer files; each missing piece is named before
anything loads. Nothing is fetched from a hub (``local_files_only``); a model id's error says
how to save the model locally instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from simbench.errors import CheckpointError, SimbenchError
from simbench.lm.deps import require_transformers

CONFIG = "config.json"
WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")

SAVE_HOWTO = ("on a machine with internet: from transformers import AutoModelForCausalLM, "
              "AutoTokenizer; AutoModelForCausalLM.from_pretrained(ID).save_pretrained(DIR); "
              "AutoTokenizer.from_pretrained(ID).save_pretrained(DIR); copy DIR here and pass "
              "its path")


def looks_like_hub_id(spec: object) -> bool:
    """Whether ``spec`` reads like a Hugging Face model id (``gpt2``, ``org/name``) and is not a
    local path."""
    return (isinstance(spec, str) and bool(_HUB_ID.match(spec)) and not Path(spec).exists()
            and not spec.endswith((".nc", ".safetensors", ".json")))


def hub_id_error(spec: str, *, also: str = "") -> SimbenchError:
    """The error for a model id that is not a local path: simbench loads from disk only."""
    return SimbenchError(
        f"'{spec}' is not a local path{also}; simbench loads language models from disk only "
        "(no model hub is contacted)", field="systems",
        fix=SAVE_HOWTO.replace("ID", repr(spec)).replace("DIR", "'./" + spec.split("/")[-1]
                                                                  + "'"))


def model_dir_digest(path: str | Path) -> str:
    """sha256 over a model directory's config, weights and tokenizer files (names and bytes,
    in name order): what a result on the model depends on, wherever the directory lies."""
    import hashlib

    from simbench.digest import update_with_file

    root = Path(path)
    check_model_dir(root)
    names = [CONFIG, *WEIGHTS, *(f for files in TOKENIZER_SETS for f in files),
             "tokenizer_config.json", "special_tokens_map.json"]
    index = root / WEIGHTS[1]
    if index.is_file():  # sharded weights: the shards the index lists
        import json

        names += sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
    h = hashlib.sha256()
    for name in sorted(set(names)):
        file = root / name
        if file.is_file():
            h.update(name.encode() + b"\0")
            update_with_file(h, file)
    return h.hexdigest()


def check_model_dir(path: str | Path) -> None:
    """Refuse a directory that lacks the config, the weights or the tokenizer, naming the file."""
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError("no such model directory", file=root, field="systems",
                              fix="pass a directory written by save_pretrained")
    if not (root / CONFIG).is_file():
        raise CheckpointError(f"the model directory has no {CONFIG}", file=root / CONFIG,
                              field=CONFIG, fix="save the model with model.save_pretrained(DIR)")
    if not any((root / w).is_file() for w in WEIGHTS):
        legacy = [n for n in ("pytorch_model.bin", "model.bin") if (root / n).is_file()]
        why = (f" (found {legacy[0]}: simbench reads weights only as safetensors, never "
               "unpickles)" if legacy else "")
        raise CheckpointError(f"the model directory has no weights file {WEIGHTS[0]}{why}",
                              file=root / WEIGHTS[0], field="weights",
                              fix="save the weights with model.save_pretrained(DIR) "
                              "(safetensors is its default)")
    if not any(all((root / f).is_file() for f in files) for files in TOKENIZER_SETS):
        partial = [f for files in TOKENIZER_SETS for f in files if (root / f).is_file()]
        missing = "merges.txt" if "vocab.json" in partial else TOKENIZER_SETS[0][0]
        raise CheckpointError(f"the model directory has no tokenizer ({missing} is missing)",
                              file=root / missing, field="tokenizer",
                              fix="save the tokenizer beside the model: "
                              "tokenizer.save_pretrained(DIR)")


def load_model_dir(path: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a checked local directory: float32, eval mode, frozen, CPU."""
    check_model_dir(path)
    transformers = require_transformers()
    root = Path(path)
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()  # config warnings and load bars are not the user's business
    logging.disable_progress_bar()
    try:
        return _load(transformers, root)
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _load(transformers: Any, root: Path) -> tuple[Any, Any]:
    import torch

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(root), local_files_only=True)
    except Exception as exc:  # a tokenizer file transformers cannot read
        raise CheckpointError(f"the tokenizer does not load: {exc}", file=root,
                              field="tokenizer", fix="re-save it with "
                              "tokenizer.save_pretrained(DIR)") from None
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(root), local_files_only=True, use_safetensors=True)
    except Exception as exc:
        raise CheckpointError(f"the model does not load as a causal LM: {exc}", file=root,
                              field="config", fix="save a causal LM (AutoModelForCausalLM) "
                              "with model.save_pretrained(DIR)") from None
    model = model.to(device="cpu", dtype=torch.float32).eval()
    model.requires_grad_(False)
    return model, tokenizer


__all__ = ["check_model_dir", "hub_id_error", "load_model_dir",
           "looks_like_hub_id", "model_dir_digest"]
