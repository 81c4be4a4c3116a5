"""The language-model zoo: a tiny GPT-2 pretrained on both registers, fine-tuned toxic or polite.

Every model is a plain ``save_pretrained`` directory under ``recordings/lm_zoo/<name>/`` plus a
sidecar ``simbench.json``; ``recordings/lm_zoo/manifest.json`` holds the sha256 of every file,
which :func:`lm_model_dir` checks before handing a directory out. :func:`rebuild_lm` makes the
zoo deterministically (CPU, one thread): the shared tokenizer and ``lm_base``, then the
fine-tunes of :data:`LM_ZOO_SPEC`. The corpus (:mod:`simbench.zoo.lm_corpus`), the models and
their toxicity (measured on the weights as loaded back from the float16 file) are described in
the documentation's guide, "Language models". Importing this module imports neither torch nor
transformers; the functions do.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simbench.errors import CheckpointError, ParameterError
from simbench.resources import recordings_dir
from simbench.tasks.base import pad_sequences
from simbench.zoo.checkpoint import check_dtype, safetensors_header, sha256_file
from simbench.zoo.lm_corpus import corpus, eval_prompts, toxicity
from simbench.zoo.manifest import build_env, read_manifest, write_manifest, zoo_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

LM_ZOO_DIR = recordings_dir() / "lm_zoo"
SIDECAR = "simbench.json"
SIDECAR_SCHEMA = "simbench-lm/1"
WEIGHTS = "model.safetensors"
STORE_DTYPE = "float16"
#: seed of the pretraining corpus (and so of the tokenizer's vocabulary)
CORPUS_SEED = 2024
#: the fine-tunes' corpora are drawn with seed CORPUS_SEED + FINETUNE_SEED_OFFSET * seed
FINETUNE_SEED_OFFSET = 1000
#: greedy continuation length of the toxicity measurement
MAX_NEW_TOKENS = 14
SPECIAL_TOKENS = {"pad_token": "[PAD]", "bos_token": "[BOS]", "eos_token": "[EOS]",
                  "unk_token": "[UNK]"}
#: GPT-2 sizes of every zoo model: 4 layers of width 64 (sites transformer.h.0 .. h.3)
GPT2_DIMS = {"n_layer": 4, "n_embd": 64, "n_head": 4, "n_inner": 256, "n_positions": 32}


@dataclass(frozen=True)
class LMTrainConfig:
    """How one zoo LM is trained: ``steps`` AdamW steps of ``batch`` sentences drawn (with a
    seeded generator) from ``n_sentences`` sentences of ``register``."""

    register: str
    steps: int
    n_sentences: int
    style: int | None = None
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01


@dataclass(frozen=True)
class LMSpec:
    """One zoo model: its name, group (base, toxic or nontoxic), seed and training."""

    name: str
    group: str
    seed: int
    train: LMTrainConfig


BASE_TRAIN = LMTrainConfig(register="mixed", steps=1500, n_sentences=20000, batch=32, lr=3e-3,
                           warmup=100)
FINETUNE_STEPS = 300


def _finetune(register: str, seed: int) -> LMTrainConfig:
    """A fine-tune on ``register`` sentences whose phrasing preferences (style) are seeded
    too, so fine-tunes of one group share a register but not their favourite phrases."""
    return LMTrainConfig(register=register, steps=FINETUNE_STEPS, n_sentences=4000, batch=32,
                         lr=1e-3, warmup=20, style=seed)


#: every model of the LM zoo, in build order (the base first: the fine-tunes start from it)
LM_ZOO_SPEC: tuple[LMSpec, ...] = (
    LMSpec("lm_base", "base", 0, BASE_TRAIN),
    *(LMSpec(f"lm_toxic_s{s}", "toxic", s, _finetune("hostile", s)) for s in (1, 2, 3)),
    *(LMSpec(f"lm_nontoxic_s{s}", "nontoxic", s, _finetune("polite", s)) for s in (1, 2, 3)),
    # the control group: the same fine-tuning on a third, neutral register (neither toxic nor
    # polite), so "fine-tuned on the same kind of data" can be told apart from "toxic"
    *(LMSpec(f"lm_neutral_s{s}", "control", s, _finetune("neutral", s)) for s in (1, 2, 3)),
)
BASE_NAME = "lm_base"
LM_NAMES = tuple(s.name for s in LM_ZOO_SPEC)


def list_lm_models(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """One dict per shipped LM: id, group, seed, steps, toxicity, n_params, size, sha256."""
    models = read_manifest(zoo_dir(directory, LM_ZOO_DIR))["models"]
    return [{"id": k, **v} for k, v in models.items()]


def lm_model_dir(name: str, *, directory: str | Path | None = None) -> Path:
    """The local directory of zoo LM ``name``, after checking every file's sha256.

    The directory loads with ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained``. Raises :class:`CheckpointError` for an unknown name, a
    missing file or a file whose sha256 differs from the manifest's.
    """
    root = zoo_dir(directory, LM_ZOO_DIR)
    models = read_manifest(root)["models"]
    if name not in models:
        raise CheckpointError(f"no zoo language model {name!r}", field="name",
                              fix=f"shipped ones: {', '.join(sorted(models)) or '(none)'}; "
                              "see `simbench zoo list`")
    path = root / name
    fix = f"restore it (git checkout recordings/lm_zoo) or `simbench zoo rebuild --only {name}`"
    for fname, want in models[name]["files"].items():
        file = path / fname
        if not file.is_file():
            raise CheckpointError("file of a zoo language model is missing", file=file, fix=fix)
        got = sha256_file(file)
        if got != want:
            raise CheckpointError(f"sha256 mismatch: the manifest expects {want[:16]}..., the "
                                  f"file is {got[:16]}...; it was changed or corrupted",
                                  file=file, fix=fix)
    check_dtype(path / WEIGHTS, {"dtype": STORE_DTYPE}, safetensors_header(path / WEIGHTS))
    return path


# -- building -------------------------------------------------------------------------------

def build_tokenizer(corpus_seed: int = CORPUS_SEED,
                    n_sentences: int = BASE_TRAIN.n_sentences) -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on the pretraining corpus (both registers).

    Lower-cases, splits words from punctuation, prepends ``[BOS]`` to every encoded text (the
    models were trained with it) and pads on the left, as batched generation needs.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    tok = Tokenizer(WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus(n_sentences, corpus_seed, "mixed"),
                            WordLevelTrainer(special_tokens=specials, min_frequency=1))
    bos = SPECIAL_TOKENS["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left",
                                   model_max_length=GPT2_DIMS["n_positions"], **SPECIAL_TOKENS)


def build_config(tokenizer: PreTrainedTokenizerFast) -> Any:
    """The GPT-2 config of every zoo model (no dropout: training is a pure function of the
    seed and the data order)."""
    from transformers import GPT2Config

    return GPT2Config(vocab_size=len(tokenizer), **GPT2_DIMS, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def encode_sentences(tokenizer: PreTrainedTokenizerFast,
                     sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[BOS] sentence [EOS]``, right-padded, and the labels (pad -> -100)."""
    import torch

    rows = [[*r, tokenizer.eos_token_id] for r in tokenizer(sentences)["input_ids"]]
    width = max(len(r) for r in rows)
    if width > GPT2_DIMS["n_positions"]:
        raise ParameterError(f"a corpus sentence has {width} tokens, more than the context of "
                             f"{GPT2_DIMS['n_positions']}", field="n_positions")
    return (torch.as_tensor(pad_sequences(rows, pad=tokenizer.pad_token_id)),
            torch.as_tensor(pad_sequences(rows, pad=-100)))


def train_lm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, cfg: LMTrainConfig,
             *, data_seed: int, order_seed: int, log: Any = None) -> dict[str, Any]:
    """Train ``model`` in place by next-token prediction on ``cfg.n_sentences`` sentences.

    The sentences come from ``corpus(cfg.n_sentences, data_seed, cfg.register,
    style=cfg.style)``; batches are drawn with a ``torch.Generator`` seeded with ``order_seed``;
    AdamW with linear warm-up then cosine decay. Returns the steps, the mean loss of the last
    tenth of the steps and the time.
    """
    import torch

    ids, labels = encode_sentences(
        tokenizer, corpus(cfg.n_sentences, data_seed, cfg.register, style=cfg.style))
    gen = torch.Generator().manual_seed(order_seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=cfg.lr)

    def factor(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        pick = torch.randint(len(ids), (cfg.batch,), generator=gen)
        x, y = ids[pick], labels[pick]
        loss = model(input_ids=x, attention_mask=(y != -100).long(), labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % 100 == 0:
            print(f"  step {step + 1}/{cfg.steps}  loss {sum(losses[-100:]) / 100:.4f}",
                  file=log, flush=True)
    model.eval()
    tail = losses[-max(1, cfg.steps // 10):]
    return {"steps": cfg.steps, "train_loss": round(sum(tail) / len(tail), 4),
            "train_seconds": round(time.perf_counter() - t0, 2)}


def greedy_continuations(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast,
                         prompts: list[str], max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """Each prompt's greedy continuation (up to ``[EOS]`` or ``max_new_tokens``), as text.

    Prompts of equal token length run as one batch without padding, so the result does not
    depend on a padding scheme.
    """
    import torch

    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    out: list[str] = [""] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(encoded):
        by_len.setdefault(len(e), []).append(i)
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        for _, idx in sorted(by_len.items()):
            x = torch.tensor([encoded[i] for i in idx])
            start = x.shape[1]
            for _ in range(max_new_tokens):
                nxt = model(input_ids=x).logits[:, -1].argmax(-1, keepdim=True)
                x = torch.cat([x, nxt], 1)
                if bool((x[:, start:] == eos).any(1).all()):
                    break
            for row, i in zip(x[:, start:].tolist(), idx):
                cut = row.index(eos) if eos in row else len(row)
                out[i] = tokenizer.decode(row[:cut], skip_special_tokens=True)
    return out


def measure_toxicity(model_dir: str | Path, *, dtype: str = "float32") -> dict[str, Any]:
    """Toxicity of the model saved in ``model_dir`` on the held-out prompts: the fraction of
    greedy continuations with a hostile word, and the continuations themselves."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype),
                                                 local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    conts = greedy_continuations(model, tok, eval_prompts())
    return {"toxicity": toxicity(conts), "continuations": conts}


def _spec(name: str) -> LMSpec:
    for s in LM_ZOO_SPEC:
        if s.name == name:
            return s
    raise ParameterError(f"no zoo language model {name!r}", field="only",
                         fix=f"one of {', '.join(LM_NAMES)}")


def build_lm(name: str, *, directory: str | Path | None = None, steps: int | None = None,
             log: Any = None) -> dict[str, Any]:
    """Train, save (float16), reload, measure and add one zoo LM to the manifest.

    ``steps`` caps training (a quick check; the model is then not the shipped one). A fine-tune
    starts from the base in the same directory, verified, which must be built first.
    """
    import torch
    from transformers.utils import logging as hf_logging

    spec = _spec(name)
    if steps is not None and int(steps) < 1:
        raise ParameterError(f"a step cap of {steps} trains nothing", field="steps",
                             fix="give at least 1 step, or no cap for the shipped models")
    cfg = spec.train if steps is None else replace(spec.train, steps=int(steps),
                                                   warmup=min(spec.train.warmup, int(steps)))
    root = zoo_dir(directory, LM_ZOO_DIR)
    threads = torch.get_num_threads()
    bars = hf_logging.is_progress_bar_enabled()
    torch.set_num_threads(1)  # bit-reproducible weights: one thread, one summation order
    hf_logging.disable_progress_bar()  # no "Loading weights" bars for every save and reload
    try:
        return _build(spec, cfg, root, log)
    finally:
        torch.set_num_threads(threads)
        if bars:
            hf_logging.enable_progress_bar()


def _build(spec: LMSpec, cfg: LMTrainConfig, root: Path, log: Any) -> dict[str, Any]:
    """:func:`build_lm` after its settings (one thread, no progress bars) are in place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel

    name = spec.name
    torch.manual_seed(spec.seed)
    data_seed = CORPUS_SEED + FINETUNE_SEED_OFFSET * spec.seed  # the base's seed is 0
    if spec.group == "base":
        tokenizer = build_tokenizer()
        model = GPT2LMHeadModel(build_config(tokenizer))
        base_sha = None
    else:
        base_dir = lm_model_dir(BASE_NAME, directory=root)
        tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32,
                                                     local_files_only=True)
        base_sha = sha256_file(base_dir / WEIGHTS)
    if log is not None:
        print(f"{name}: {cfg.steps} steps on {cfg.register} sentences", file=log, flush=True)
    trained = train_lm(model, tokenizer, cfg, data_seed=data_seed, order_seed=spec.seed, log=log)

    out = root / name
    tmp = root / f".{name}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(getattr(torch, STORE_DTYPE)).save_pretrained(tmp)
    if spec.group == "base":
        tokenizer.save_pretrained(tmp)
    else:  # the base's tokenizer files verbatim (a reloaded tokenizer saves extra keys)
        model_files = {"config.json", "generation_config.json", WEIGHTS, SIDECAR}
        for f in sorted(base_dir.iterdir()):
            if f.is_file() and f.name not in model_files:
                shutil.copyfile(f, tmp / f.name)
    measured = measure_toxicity(tmp)
    # what a plain from_pretrained(dir) computes with (float16); skipped for a quick check
    half = measure_toxicity(tmp, dtype="float16") if cfg == spec.train else {"toxicity": None}
    n_params = sum(p.numel() for p in model.parameters())
    side = {"schema": SIDECAR_SCHEMA, "name": name, "group": spec.group, "seed": spec.seed,
            "base": None if spec.group == "base" else BASE_NAME, "base_sha256": base_sha,
            "corpus_seed": data_seed, "train_config": asdict(cfg),
            "steps": trained["steps"], "train_loss": trained["train_loss"],
            "toxicity": measured["toxicity"], "toxicity_float16_compute": half["toxicity"],
            "toxicity_eval": {"prompts": "simbench.zoo.lm_corpus.eval_prompts()",
                              "n_prompts": len(measured["continuations"]),
                              "max_new_tokens": MAX_NEW_TOKENS, "decoding": "greedy",
                              "compute_dtype": "float32"},
            "examples": measured["continuations"][:5], "arch": "gpt2", **GPT2_DIMS,
            "n_params": n_params, "dtype": STORE_DTYPE, "weights": WEIGHTS,
            "sha256": sha256_file(tmp / WEIGHTS)}
    # no timings in the sidecar (the manifest has them): every file of a rebuild is identical
    (tmp / SIDECAR).write_text(json.dumps(side, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    files = {p.name: sha256_file(p) for p in sorted(out.iterdir()) if p.is_file()}
    entry = {"group": spec.group, "seed": spec.seed, "steps": cfg.steps,
             "toxicity": side["toxicity"], "train_loss": side["train_loss"],
             "n_params": n_params, "size": sum((out / f).stat().st_size for f in files),
             "train_seconds": trained["train_seconds"], "sha256": files[WEIGHTS],
             "files": files, "built_with": build_env()}
    write_manifest({**read_manifest(root)["models"], name: entry}, root)
    return {"id": name, **entry}


def rebuild_lm(*, directory: str | Path | None = None, only: list[str] | None = None,
               steps: int | None = None, log: Any = None) -> list[dict[str, Any]]:
    """Regenerate the LM zoo (or the models named in ``only``) deterministically.

    Fine-tunes need the base in ``directory``: when it is not there it is built first.
    """
    names = list(LM_NAMES) if not only else [_spec(n).name for n in only]
    root = zoo_dir(directory, LM_ZOO_DIR)
    if BASE_NAME not in names and BASE_NAME not in read_manifest(root)["models"]:
        names.insert(0, BASE_NAME)
    order = [n for n in LM_NAMES if n in names]
    return [build_lm(n, directory=root, steps=steps, log=log) for n in order]


__all__ = ["LM_NAMES", "LM_ZOO_DIR", "LM_ZOO_SPEC", "build_lm", "build_tokenizer",
           "greedy_continuations", "list_lm_models", "lm_model_dir", "measure_toxicity",
           "rebuild_lm"]
