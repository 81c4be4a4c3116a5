"""Exact re-parametrizations of a GPT-2 language model: the planted identity for LM measures.

:func:`permuted_copy` returns a model computing the same function (logits equal to about 1e-6;
permutations commute with LayerNorm) with the residual stream's units and every block's MLP
units permuted, so no unit sits where its counterpart does: a measure invariant to a layer's
basis must score the pair as identical (CKA = RSA = 1, MAS cross-model IIA equal to the
model's IIA with itself). :func:`save_permuted_copy` writes it as a ``save_pretrained``
directory.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simbench.errors import ParameterError

#: files of a model directory that belong to the model rather than to its tokenizer
MODEL_FILES = frozenset({"config.json", "generation_config.json", "model.safetensors",
                         "pytorch_model.bin", "simbench.json"})


def _perm(n: int, gen: torch.Generator) -> torch.Tensor:
    """A random permutation of ``n`` that moves every unit (a derangement), so no unit of the
    copy is where it was."""
    while True:
        p = torch.randperm(n, generator=gen)
        if n < 2 or not bool((p == torch.arange(n)).any()):
            return p


def permutations(module: nn.Module, seed: int = 0) -> dict[str, Any]:
    """The permutations :func:`permuted_copy` applies: ``resid`` [d] and ``mlp`` (one [d_ff]
    per block); new unit i is old unit ``perm[i]``."""
    cfg = module.config
    gen = torch.Generator().manual_seed(int(seed))
    d = int(cfg.n_embd)
    d_ff = int(module.transformer.h[0].mlp.c_fc.weight.shape[1])
    return {"resid": _perm(d, gen), "mlp": [_perm(d_ff, gen) for _ in range(cfg.n_layer)]}


@torch.no_grad()
def permuted_copy(module: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of a GPT-2 ``module`` with its residual stream and MLP units permuted (see the
    module docstring); the original is left unchanged."""
    if getattr(getattr(module, "config", None), "model_type", None) != "gpt2":
        raise ParameterError(
            f"a permuted copy needs a GPT-2 model, not "
            f"{getattr(getattr(module, 'config', None), 'model_type', type(module).__name__)}",
            field="model", fix="use a GPT-2 model (the zoo's language models are)")
    out = copy.deepcopy(module)
    perms = permutations(module, seed)
    r = perms["resid"]
    tr = out.transformer
    tr.wte.weight.copy_(tr.wte.weight[:, r])  # the output head is tied to it
    tr.wpe.weight.copy_(tr.wpe.weight[:, r])
    for block, m in zip(tr.h, perms["mlp"]):
        for ln in (block.ln_1, block.ln_2):
            ln.weight.copy_(ln.weight[r])
            ln.bias.copy_(ln.bias[r])
        # Conv1D weights are [in, out]: the stream is the rows going in, the columns going out
        block.attn.c_attn.weight.copy_(block.attn.c_attn.weight[r, :])
        block.attn.c_proj.weight.copy_(block.attn.c_proj.weight[:, r])
        block.attn.c_proj.bias.copy_(block.attn.c_proj.bias[r])
        fc, proj = block.mlp.c_fc, block.mlp.c_proj
        fc.weight.copy_(fc.weight[r, :][:, m])
        fc.bias.copy_(fc.bias[m])
        proj.weight.copy_(proj.weight[m, :][:, r])
        proj.bias.copy_(proj.bias[r])
    tr.ln_f.weight.copy_(tr.ln_f.weight[r])
    tr.ln_f.bias.copy_(tr.ln_f.bias[r])
    head = out.get_output_embeddings()
    if head is not None and head.weight.data_ptr() != tr.wte.weight.data_ptr():
        head.weight.copy_(module.get_output_embeddings().weight[:, r])
    return out


def _stored_dtype(model_dir: Path) -> torch.dtype:
    """The dtype of the weights file (float16 for the zoo), float32 when it cannot be read."""
    try:
        from safetensors import safe_open

        with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
            return f.get_tensor(next(iter(f.keys()))).dtype
    except Exception:  # any unreadable file: keep full precision
        return torch.float32


def save_permuted_copy(model_dir: str | Path, out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write the permuted copy of the GPT-2 in ``model_dir`` to ``out_dir`` in the dtype its
    weights are stored in (a permutation moves values without rounding them: the copy of a
    float16 zoo model is exactly its weights in another order), the tokenizer files copied
    verbatim; returns ``out_dir``."""
    from simbench.lm.load import load_model_dir

    model, _ = load_model_dir(model_dir)
    copy_ = permuted_copy(model.float(), seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copy_.to(_stored_dtype(Path(model_dir))).save_pretrained(out)
    for f in sorted(Path(model_dir).iterdir()):
        if f.is_file() and f.name not in MODEL_FILES:
            shutil.copyfile(f, out / f.name)
    return out


#: the zoo LM whose permuted copy the language-model validity spec names
VALIDITY_LM = "lm_toxic_s1"


def write_lm_planted(directory: str | Path, *, name: str = VALIDITY_LM, seed: int = 0) -> Path:
    """(Re)write ``{name}_planted/``, the exact permuted copy of zoo LM ``name``, in
    ``directory`` (the planted identity of ``benchmarks/specs/validity_lm.toml``)."""
    from simbench.zoo.lm_build import lm_model_dir

    return save_permuted_copy(lm_model_dir(name), Path(directory) / f"{name}_planted",
                              seed=seed)


__all__ = ["VALIDITY_LM", "permutations", "permuted_copy", "save_permuted_copy",
           "write_lm_planted"]
