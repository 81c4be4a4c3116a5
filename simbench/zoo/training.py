"""Training zoo models by next-token prediction, stopping at a held-out trial accuracy.

Why teacher forcing for every architecture (RNNs included): the loss is taken only on the
response positions (the tokens the causal model determines: responses and EOS), and every
non-response input is teacher-forced anyway. On these tasks the response inputs a free-running
model feeds itself are, as long as it is right, exactly the teacher's tokens, so teacher forcing
and free running differ only after the first mistake. Teacher forcing runs the whole sequence in
one fused nn.GRU/nn.LSTM call (free running needs a per-token loop, several times slower), and
for the same reason greedy free-running trial accuracy equals "argmax is right at every response
position" under teacher forcing, so the periodic check costs one forward pass. The final,
recorded accuracy is measured with real free-running generation (:func:`evaluate`).

Held-out trial accuracy (see :meth:`Task.score`) is measured on fresh sequences of the task's
held-out counts (never seen in training) and, separately, of all counts; a model is done when
both reach ``target``. The recorded ``accuracy`` is the held-out one on ``EVAL_SEED``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from simbench.devices import resolve_device
from simbench.registry import task_by_name
from simbench.tasks.base import Task
from simbench.zoo.archs import get_arch
from simbench.zoo.models import ModelConfig, ZooModel, build_model

EVAL_SEED = 20_250_117  # the final evaluation set (also what the tests use)
CHECK_SEED = 10_250_117  # the periodic check during training
EVAL_N = 1000


@dataclasses.dataclass
class TrainConfig:
    """Optimisation settings; per-architecture defaults come from :func:`default_train_config`."""

    lr: float = 3e-3
    batch_size: int = 128
    max_steps: int = 4000
    warmup: int = 50
    decay_steps: int = 2500  # cosine decay horizon (lr floor 5% of lr)
    eval_every: int = 50
    target: float = 0.99
    clip: float = 1.0
    weight_decay: float = 0.0
    #: counts the training data is drawn from: None = the task's training counts (held-out
    #: counts excluded), "all" = every count (used for Modulo and Rounding, see below)
    train_counts: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_train_config(arch: str, task: Task | str | None = None) -> TrainConfig:
    """The settings measured to reach 0.99 quickly on 2 CPU cores: the architecture's
    (its registration's ``train``), and the task's ``train_counts`` (see :class:`Task`)."""
    cfg = TrainConfig(**get_arch(arch).train)
    if task is not None:
        cfg.train_counts = task_by_name(task).train_counts
    return cfg


def response_loss(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next-token logits on the response positions only."""
    m = mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][m], tokens[:, 1:][m])


@torch.no_grad()
def teacher_forced_trials(model: ZooModel, tokens: torch.Tensor,
                          mask: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """bool [n]: argmax right at every response position (= greedy free-running correctness)."""
    out = []
    for i in range(0, tokens.shape[0], batch):
        tok, m = tokens[i: i + batch], mask[i: i + batch]
        pred = model(tok).argmax(-1)
        out.append(((pred[:, :-1] == tok[:, 1:]) | ~m[:, 1:]).all(1).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def evaluate(model: ZooModel, task: Task | str, *, seed: int = EVAL_SEED, n: int = EVAL_N,
             device: str | torch.device = "cpu") -> dict[str, float]:
    """Free-running trial and token accuracy on held-out counts and on all counts.

    Generation starts right after the trigger (counting tasks) or after ``v0`` (arithmetic);
    inputs outside the response mask are teacher-forced.
    """
    task = task_by_name(task)
    dev = torch.device(resolve_device(device))
    model = model.to(dev).eval()
    res = {}
    for key, kw in (("heldout", {"held_out": True}), ("all", {"counts": "all"})):
        stim = task.sample(n, seed, **kw)
        tok = torch.as_tensor(stim.tokens, device=dev)
        start = torch.as_tensor(stim.trigger_pos + 1, device=dev)
        pred = model.generate(tok, start, response_mask=torch.as_tensor(stim.response_mask,
                                                                        device=dev),
                              eos=-1 if task.eos is None else task.eos, pad=task.pad)
        trial, token = task.score(pred.cpu().numpy(), stim.tokens, stim.response_mask)
        res[f"{key}_trial_acc"] = float(trial.mean())
        res[f"{key}_token_acc"] = float(token.mean())
    return res


def train(task: Task | str, arch: str, seed: int, device: str | torch.device = "auto", *,
          config: TrainConfig | None = None, model_config: ModelConfig | None = None,
          progress: bool = True, threads: int | None = None,
          log: Any = None, final_eval: bool = True) -> tuple[ZooModel, dict[str, Any]]:
    """Train one model from ``seed`` until held-out trial accuracy reaches ``config.target``.

    The model's vocabulary size and special ids are the task's (:meth:`ModelConfig.for_task`;
    a given ``model_config`` keeps its other fields). Deterministic on the CPU for a given seed
    (and thread count). Returns the model (eval mode, on the CPU) and a metadata dict (task,
    arch, seed, accuracies, steps, seconds, configs, ``stopped``: "target" or "step cap").
    Writing a checkpoint is :func:`simbench.zoo.checkpoint.save_model`.
    """
    task = task_by_name(task)
    arch = get_arch(arch).name  # "tf" -> "transformer"
    cfg = config or default_train_config(arch, task)
    dev = torch.device(resolve_device(device))
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    base = model_config.to_dict() if model_config is not None else {}  # for_task sets the vocab
    mcfg = ModelConfig.for_task(task, **{**base, "arch": arch})
    model = build_model(mcfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        p = min(1.0, (step - cfg.warmup) / max(1, cfg.decay_steps - cfg.warmup))
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))

    checks = [task.sample(500, CHECK_SEED, held_out=True), task.sample(500, CHECK_SEED + 1,
                                                                          counts="all")]
    check_t = [(torch.as_tensor(s.tokens, device=dev), torch.as_tensor(s.response_mask,
                                                                       device=dev))
               for s in checks]
    rng = np.random.default_rng(seed)
    bar = None
    if progress:
        from tqdm import tqdm

        from simbench.runtime import progress_shown

        bar = tqdm(total=cfg.max_steps, desc=f"{arch} {task.name} s{seed}", unit="step",
                   dynamic_ncols=True, disable=not progress_shown())
    t0 = time.perf_counter()
    n_tokens = 0
    acc = (0.0, 0.0)
    stopped = "step cap"
    step = 0
    history = []
    for step in range(1, cfg.max_steps + 1):
        model.train()
        stim = task.sample(cfg.batch_size, int(rng.integers(2**31)), counts=cfg.train_counts)
        tok = torch.as_tensor(stim.tokens, device=dev)
        mask = torch.as_tensor(stim.response_mask, device=dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1)
        loss = response_loss(model(tok), tok, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        n_tokens += int(stim.lengths.sum())
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            model.eval()
            acc = tuple(float(teacher_forced_trials(model, t, m).mean()) for t, m in check_t)
            history.append((step, round(loss.item(), 5), acc[0], acc[1]))
            if log is not None:
                print(f"step {step} loss {float(loss):.4f} heldout {acc[0]:.3f} all {acc[1]:.3f}"
                      f" {time.perf_counter() - t0:.1f}s", file=log, flush=True)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", heldout=f"{acc[0]:.3f}",
                            all=f"{acc[1]:.3f}", tok_s=f"{n_tokens / (time.perf_counter() - t0):.0f}")
        if min(acc) >= cfg.target and step % cfg.eval_every == 0:
            stopped = "target"
            break
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    model = model.cpu().eval()
    final = evaluate(model, task, device="cpu") if final_eval else {
        "heldout_trial_acc": acc[0], "all_trial_acc": acc[1]}
    meta = {
        "task": task.name, "arch": arch, "seed": seed,
        "accuracy": final["heldout_trial_acc"], **final,
        "train_counts": cfg.train_counts or "training (held-out counts excluded)",
        "steps": step, "stopped": stopped, "train_seconds": round(seconds, 2),
        "tokens_per_s": round(n_tokens / seconds, 1), "device": str(dev),
        "threads": torch.get_num_threads(),
        "config": mcfg.to_dict(), "train_config": cfg.to_dict(), "history": history,
        "eval": {"seed": EVAL_SEED, "n": EVAL_N},
    }
    return model, meta
