"""Speed of stepwise MAS between language models against a hook-based baseline, in one run.

- ``lm-step``: one training step (two GPT-2 models, a middle decoder layer, k = 16, batch 64
  per direction, all 4 directions) of the engine (:mod:`simbench.lm.engine`: the target's
  frozen prefix cached, only the layers above the site rerun, all directions into one target
  in one pass, source states cached, the output head only at scored positions) against the
  baseline: forward hooks on the full models, every pass from the embeddings, the source run
  for its states and each direction run separately (what a hook-based library does).
  Target: >= 3x interventions per second (``test_lm_speedup`` asserts it; the ratio also
  prints at the end).
- ``lm-parity``: both trained for the same steps on the same interventions from the same seed:
  test IIA (whole continuation and token) must agree within 0.01 in every direction.

Models: ``SIMBENCH_LM_PAIR=dir_a,dir_b`` (two save_pretrained directories sharing a
tokenizer, e.g. two of the LM zoo's fine-tunes) with ``SIMBENCH_LM_PROMPTS=file``; otherwise
two small random GPT-2 models (6 layers, width 128, a 300-word vocabulary) built here.
``SIMBENCH_LM_SITE`` overrides the site (default: the middle decoder layer).

Run: ``.venv/bin/pytest benchmarks/test_bench_lm.py --benchmark-enable``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from simbench.lm.engine import LMEngine

K, BATCH, NEW_TOKENS = 16, 64, 8
PARITY_TOLERANCE = 0.01
MIN_SPEEDUP = float(os.environ.get("SIMBENCH_LM_MIN_SPEEDUP", "3"))


def _tiny_pair(root: Path) -> tuple[list[str], list[str]]:
    """Two random GPT-2 models sharing a word-level tokenizer, and 96 seeded prompts."""
    import numpy as np
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(300)]
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                                  eos_token="[EOS]")
    dirs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=64, n_embd=128,
                                           n_layer=6, n_head=4, bos_token_id=2, eos_token_id=2))
        path = root / f"gpt_{seed}"
        model.save_pretrained(path)
        tok.save_pretrained(path)
        dirs.append(str(path))
    rng = np.random.default_rng(0)
    prompts = [" ".join(rng.choice(words, int(rng.integers(4, 12)))) for _ in range(96)]
    return dirs, prompts


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], str]:
    from simbench.lm import load_lm
    from simbench.lm.sites import layer_paths

    given = os.environ.get("SIMBENCH_LM_PAIR")
    if given:
        dirs = given.split(",")
        prompts: Any = os.environ["SIMBENCH_LM_PROMPTS"]
    else:
        dirs, prompts = _tiny_pair(tmp_path_factory.mktemp("lm_bench"))
    systems = [load_lm(d, prompts=prompts, new_tokens=NEW_TOKENS) for d in dirs]
    layers = layer_paths(systems[0].module)
    site = os.environ.get("SIMBENCH_LM_SITE") or layers[len(layers) // 2]
    return systems, site


class BaselineEngine(LMEngine):
    """The baseline: each direction its own passes; the source run from its embeddings for its
    states; the target run in full with a forward hook patching the site."""

    def lm_logits(self, split: str, target: int, chunks: Any) -> tuple[Tensor, Tensor, Tensor,
                                                                       int]:
        outs, rows_all, targets_all, offset = [], [], [], 0
        for s, rows in chunks:
            iv = self.data[split][(s, target)]
            own = self.behaviour[s]
            src = iv.src_idx[rows].cpu()
            with torch.no_grad():
                h_s = self.parties[s].runner.site_states(own.tokens[src].to(self.cfg.device),
                                                         own.mask[src].to(self.cfg.device))
            z = self.imap.code(s, target, h_s)
            want = iv.scored[rows]

            def fn(h: Tensor, b: Tensor, t: Tensor, z: Tensor = z) -> Tensor:
                return self.imap.apply(target, h, z[b, t])

            outs.append(self.parties[target].runner.patched(
                iv.cf[rows], iv.mask[rows], iv.patch[rows], fn, want, None))
            rows_all.append(want.nonzero(as_tuple=True)[0] + offset)
            targets_all.append(iv.targets[rows][want])
            offset += len(rows)
        return torch.cat(outs), torch.cat(rows_all), torch.cat(targets_all), offset


def make_engine(systems: list[Any], site: str, *, fast: bool, **cfg: Any) -> LMEngine:
    from simbench.interventions.engine import EngineConfig, Party, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.lm.data import OwnBehaviour
    from simbench.lm.runner import LMRunner
    from simbench.lm.text import greedy_continue

    task = systems[0].task_def
    behaviour, parties = [], []
    for s in systems:
        ids = s.encode(task.prompts, task.new_tokens)
        conts = greedy_continue(s.module, ids, task.new_tokens, pad=s.pad)
        behaviour.append(OwnBehaviour.build(ids, conts, s.pad))
        runner = LMRunner(s, site, fast=fast)
        parties.append(Party(s.system_id, task, "continuation", runner.width, runner))
    config = EngineConfig(seed=0, device="cpu", batch_size=BATCH, stepwise=True, **cfg)
    cls = LMEngine if fast else BaselineEngine
    return cls(parties, SubspaceMap([p.width for p in parties], K, seed=0),
               directions_for(len(parties)), config, behaviour=behaviour)


def _batches(engine: LMEngine) -> dict:
    g = torch.Generator().manual_seed(0)
    return {d: torch.randint(0, len(engine.data["train"][d]), (BATCH,), generator=g)
            for d in engine.trained}


def _step(engine: LMEngine, opt: torch.optim.Optimizer, batches: dict) -> None:
    with parametrize.cached():
        loss = engine.step_loss(batches)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


SIZES = {"n_train": 512, "n_val": 64, "n_test": 256}


@pytest.mark.benchmark(group="lm-step")
@pytest.mark.parametrize("kind", ["baseline", "cached"])
def test_lm_step(benchmark: Any, pair: tuple[list[Any], str], kind: str) -> None:
    systems, site = pair
    engine = make_engine(systems, site, fast=kind == "cached", **SIZES)
    opt = torch.optim.Adam(engine.imap.parameters(), lr=1e-3)
    batches = _batches(engine)
    benchmark.pedantic(_step, args=(engine, opt, batches), rounds=5, warmup_rounds=1)
    benchmark.extra_info["interventions_per_step"] = BATCH * len(engine.trained)
    benchmark.extra_info["site"] = site


def test_lm_speedup(pair: tuple[list[Any], str]) -> None:
    """Interventions per second of the engine over the baseline's, measured alternately."""
    systems, site = pair
    engines = {kind: make_engine(systems, site, fast=kind == "cached", **SIZES)
               for kind in ("baseline", "cached")}
    opts = {k: torch.optim.Adam(e.imap.parameters(), lr=1e-3) for k, e in engines.items()}
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(int(os.environ.get("SIMBENCH_LM_ROUNDS", "5"))):
        for kind, engine in engines.items():
            batches = _batches(engine)
            start = time.perf_counter()
            _step(engine, opts[kind], batches)
            best[kind] = min(best[kind], time.perf_counter() - start)
    ratio = best["baseline"] / best["cached"]
    print(f"\nlm-step at {site}: baseline {best['baseline']:.3f} s, cached "
          f"{best['cached']:.3f} s per step -> {ratio:.2f}x interventions/s")
    assert ratio >= MIN_SPEEDUP


def test_lm_parity(pair: tuple[list[Any], str]) -> None:
    """Same seed, same interventions, same steps: the same test IIA within 0.01."""
    systems, site = pair
    steps = int(os.environ.get("SIMBENCH_LM_PARITY_STEPS", "40"))
    results = {}
    for kind in ("baseline", "cached"):
        engine = make_engine(systems, site, fast=kind == "cached", max_steps=steps,
                             eval_every=steps, patience=10**6, stop_at=1.0, **SIZES)
        engine.train(progress=False)
        results[kind] = engine.evaluate("test")
    for d, base in results["baseline"].items():
        ours = results["cached"][d]
        for level in ("trial", "token"):
            assert abs(base[level] - ours[level]) <= PARITY_TOLERANCE, (d, level, base, ours)
