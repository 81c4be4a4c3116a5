"""Training and evaluating intervention maps between frozen systems.

One :class:`Engine` serves every causal measure: it draws counterfactual intervention sets for
each direction, caches each system's latents over its pools once, and trains the map (the
systems never change); a training step runs all directions into one target as one batch.

Behaviour is scored on the response tokens (and EOS) of the counterfactual sequence.
Trial-level IIA from a teacher-forced pass equals free-running IIA exactly (while every token
is right the generated prefix *is* the counterfactual's); token-level IIA differs after the
first error, so :meth:`Engine.evaluate` generates. A training batch's rows and the shapes they
imply are drawn on the host, so a step never waits for the device; values are read back only
at validation.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import parametrize

from simbench.devices import to_device
from simbench.interventions.adam import Adam
from simbench.interventions.data import Interventions, Pool, make_pool, sample_interventions
from simbench.interventions.maps import InterventionMap
from simbench.interventions.runners import Continuation, HostRows, Runner, continuation_needs
from simbench.runtime import adapt_threads
from simbench.seeds import rng
from simbench.tasks.base import Task

SPLITS = ("train", "val", "test")
_SHOWN = {"iia": "IIA", "r2": "R^2", "iia+r2": "IIA and R^2"}  # validation metrics, for people

Rows = np.ndarray | Tensor
"""Row indices into one direction's data: numpy (host-known: no read-back) or a tensor."""

#: splits whose latents are recorded only when first read (the test split, scored after
#: training: recording it up front would only delay the first step)
DEFERRED = ("test",)


class Latents(dict):
    """A party's site activations per split ([n, T, d] tensors): a dict, except that a split
    with a recorder waiting in ``pending`` is recorded (once) when it is first read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, Callable[[], Tensor]] = {}

    def __missing__(self, split: str) -> Tensor:
        record = self.pending.pop(split, None)
        if record is None:
            raise KeyError(split)
        self[split] = value = record()
        return value

    def __contains__(self, split: object) -> bool:
        return super().__contains__(split) or split in self.pending

    def get(self, split: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[split]  # a pending split is recorded here
        except KeyError:
            return default


@dataclasses.dataclass
class Party:
    """One system in an alignment: its task and variable, and how to run it (if we can)."""

    system_id: str
    task: Task
    variable: str
    width: int
    runner: Runner | None = None  # None: recording-only, never run
    pools: dict[str, Pool] = dataclasses.field(default_factory=dict)
    latents: Latents = dataclasses.field(default_factory=Latents)
    derived: list[str] = dataclasses.field(default_factory=list)  # variables computed from tokens

    @property
    def accessible(self) -> bool:
        return self.runner is not None


@dataclasses.dataclass
class EngineConfig:
    """Training settings; defaults follow the paper plus plateau early stopping."""

    lr: float = 1e-3
    batch_size: int = 128  # per direction and step
    n_train: int = 10_000  # interventions per direction
    n_val: int = 1_000
    n_test: int = 1_000
    max_steps: int = 2_000
    eval_every: int = 25
    patience: int = 8  # validations without improvement before stopping
    min_delta: float = 0.002
    gain_se: float = 0.0  # standard errors a gain must also beat the best by (see gain_margin)
    stop_at: float = 1.0  # stop once every trained direction reaches this validation IIA
    stepwise: bool = False
    pool_size: int = 2_000
    seed: int = 0
    device: str = "cpu"
    values: tuple[int, int] | None = None
    carry: tuple[str, ...] = ()  # variables also set to the source's values (full-state stitch)
    # validate the starting map first (a start from the data may already reach stop_at)
    validate_start: bool = False
    # start each patched pass at the site where the target can (see Engine.site_below)
    cache_below: bool = True
    # compile the training step once per length bucket: "auto" (on CUDA only), "on", "off";
    # None: $SIMBENCH_CAPTURE, else "auto" (see simbench.interventions.capture)
    capture: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **fixed: Any) -> EngineConfig:
        """The settings a measure's parameters of the same names give, ``fixed`` overriding."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in params.items() if k in names}, **fixed})


@dataclasses.dataclass
class DirectionData:
    """One direction's interventions for one split, on the device (``iv`` and ``need`` stay on
    the host: ``need`` is each row's continuation length, what bucket shapes depend on)."""

    iv: Interventions
    tgt_idx: Tensor
    tpos: Tensor
    src_idx: Tensor
    spos: Tensor
    cf: Tensor
    cf_mask: Tensor
    need: np.ndarray

    @classmethod
    def from_numpy(cls, iv: Interventions, device: str) -> DirectionData:
        def t(a: np.ndarray) -> Tensor:
            return to_device(a, device)

        return cls(iv, t(iv.tgt_idx), t(iv.tpos), t(iv.src_idx), t(iv.spos), t(iv.cf_tokens),
                   t(iv.cf_mask), continuation_needs(iv.cf_mask, iv.tpos))


@dataclasses.dataclass
class TrainLog:
    """What a training did: steps, time, why it stopped, and the validations it watched.

    ``metric`` names what ``best_val`` and each history entry's ``val`` are: ``"iia"``
    (validation IIA), ``"r2"`` (held-out R^2 of counterfactual latents, which can be negative)
    or ``"iia+r2"`` (the mean over directions of both kinds).
    """

    steps: int = 0
    seconds: float = 0.0
    best_step: int = 0
    best_val: float = float("nan")
    metric: str = "iia"
    stopped: str = ""
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    interventions: int = 0
    #: when validation reached ``stop_at`` (``time.time()``; None: it did not), so a score can
    #: say how long after its process started the stop condition was met
    reached_at: float | None = None
    #: seconds the held-out test evaluation after training took (set by whoever evaluates)
    test_seconds: float | None = None

    @property
    def interventions_per_s(self) -> float:
        return self.interventions / self.seconds if self.seconds else float("nan")

    def summary(self) -> dict[str, Any]:
        """The training as plain data, for a score's attrs (``best_val`` in ``val_metric``)."""
        return {"steps": self.steps, "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "best_step": self.best_step, "best_val": self.best_val, "val_metric": self.metric,
                "interventions_per_s": round(self.interventions_per_s, 1)}


class Engine:
    """Trains ``imap`` so interventions along ``directions`` make targets follow the
    counterfactuals of their task's causal model."""

    def __init__(self, parties: Sequence[Party], imap: InterventionMap,
                 directions: Sequence[tuple[int, int]], config: EngineConfig, *,
                 trained: Sequence[tuple[int, int]] | None = None) -> None:
        self.parties = list(parties)
        self.imap = imap.to(config.device)
        self.directions = list(directions)
        self.trained = list(trained) if trained is not None else [
            d for d in self.directions if self.parties[d[1]].accessible]
        self.cfg = config
        self.rng = rng(config.seed, 0x1A5)
        torch.manual_seed(config.seed)
        self.data: dict[str, dict[tuple[int, int], DirectionData]] = {}
        # per-row validation hits of the latest validation and of the best one (gain_margin)
        self._val_hits: dict[tuple[int, int], Tensor] = {}
        self._best_hits: dict[tuple[int, int], Tensor] | None = None
        # (split, source, target) -> the target site's unpatched activations over that
        # direction's counterfactual sequences (see EngineConfig.cache_below); made on first use
        self._below: dict[tuple[str, int, int], tuple[Tensor, Tensor]] = {}
        self._prepare()

    # ---- data -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        cfg = self.cfg
        sizes = {"train": cfg.pool_size, "val": max(cfg.pool_size // 4, 200),
                 "test": max(cfg.pool_size // 4, 200)}
        for p in self.parties:
            if not isinstance(p.latents, Latents):
                p.latents = Latents(p.latents)
            for i, split in enumerate(SPLITS):
                if split not in p.pools:
                    p.pools[split] = make_pool(p.task, p.variable, sizes[split],
                                               seed=cfg.seed * 7919 + 1000 * i + 17,
                                               values=cfg.values)
                if split not in p.latents and p.runner is not None:
                    record = functools.partial(_record_pool, p, split, cfg.device,
                                               whole=cfg.stepwise)
                    if split in DEFERRED:
                        p.latents.pending[split] = record
                    else:
                        p.latents[split] = record()
        counts = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        for split in SPLITS:
            self.data[split] = {}
            for s, t in self.directions:
                iv = sample_interventions(self.parties[s].pools[split], self.parties[t].pools[split],
                                          counts[split], self.rng, source_index=s, target_index=t,
                                          stepwise=cfg.stepwise, carry=cfg.carry)
                self.data[split][(s, t)] = DirectionData.from_numpy(iv, cfg.device)

    # ---- one patched pass -------------------------------------------------------------------
    def site_below(self, split: str, s: int, t: int) -> Tensor | None:
        """The target's unpatched site over direction (s, t)'s counterfactual sequences of
        ``split`` [n, W, d], recorded once: every patched pass of those rows starts there
        (exact: a patch cannot change what lies below it). None where the target cannot
        start a pass at its site, or with ``cache_below`` off."""
        runner = self.parties[t].runner
        if not self.cfg.cache_below or runner is None or not runner.resumes:
            return None
        key, cf = (split, s, t), self.data[split][(s, t)].cf
        held = self._below.get(key)
        if held is None or held[0] is not cf:  # first use, or the direction's data replaced
            held = self._below[key] = (cf, runner.below(cf))
        return held[1]

    def device_rows(self, rows: Sequence[Rows]) -> list[Tensor]:
        """Row indices on the device: host arrays go in one (pinned, non-blocking) copy."""
        if all(isinstance(r, Tensor) for r in rows):
            return list(rows)  # type: ignore[arg-type]
        host = [np.asarray(r, dtype=np.int64) if not isinstance(r, Tensor) else None
                for r in rows]
        moved = to_device(np.concatenate([h for h in host if h is not None]), self.cfg.device)
        out, start = [], 0
        for h, r in zip(host, rows):
            if h is None:
                out.append(r)
            else:
                out.append(moved[start: start + len(h)])
                start += len(h)
        return out

    def patched_logits(self, split: str, target: int,
                       chunks: Sequence[tuple[int, Rows]],
                       cf_override: Tensor | None = None, upto: int | None = None
                       ) -> tuple[Tensor, Continuation]:
        """Continuation logits of ``target`` for rows of several directions into it, batched.

        ``chunks`` lists (source, row indices into that direction's data): numpy rows let the
        pass be planned on the host, tensors cost a read-back. ``cf_override`` replaces the
        counterfactual tokens (generation feeds its own); ``upto`` computes only the first
        that many continuation logits (the rest are zeros).
        """
        party = self.parties[target]
        runner = party.runner
        assert runner is not None, "behaviour needs an accessible target"
        lat_t = party.latents[split]  # recorded now if deferred (the runner keeps its states)
        datas = [self.data[split][(s, target)] for s, _ in chunks]
        host = None
        if not any(isinstance(r, Tensor) for _, r in chunks):
            host_rows = [np.asarray(r, dtype=np.int64) for _, r in chunks]
            host = HostRows(np.concatenate([d.need[r] for d, r in zip(datas, host_rows)]),
                            np.concatenate([d.iv.tpos[r] for d, r in zip(datas, host_rows)]))
        dev_rows = self.device_rows([r for _, r in chunks])
        parts = [(s, d, rows) for (s, _), d, rows in zip(chunks, datas, dev_rows)]
        cf, cf_mask, tpos, tgt_idx = self.batch(parts)
        width = cf.shape[1]
        if cf_override is not None:
            cf = cf_override
        cont = Continuation.build(cf, cf_mask, tpos, host)
        below = None
        if cf_override is None:  # generated tokens have no recorded site to start from
            belows = [self.site_below(split, s, target) for s, _, _ in parts]
            if all(b is not None for b in belows):
                below = torch.cat([F.pad(b[r], (0, 0, 0, width - b.shape[1]))  # type: ignore[index]
                                   for b, (_, _, r) in zip(belows, parts)])
        if not self.cfg.stepwise:
            h_new = self.patched_sites(split, target, parts, lat_t[tgt_idx, tpos])
            return runner.single(cont, h_new, split, tgt_idx, upto, below), cont
        codes = []
        for s, d, r in parts:
            lat = self.parties[s].latents[split][d.src_idx[r]]  # [n, T_s, d_s]
            z = self.imap.code(s, target, lat)
            codes.append(F.pad(z, (0, 0, 0, max(width - z.shape[1], 0)))[:, :width])
        z_all = torch.cat(codes)

        def patch(h: Tensor, b: Tensor, t: Tensor) -> Tensor:
            return self.imap.apply(target, h, z_all[b, t])

        return runner.stepwise(cont, patch, upto, below), cont

    @staticmethod
    def batch(parts: Sequence[tuple[int, DirectionData, Tensor]]
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(cf, cf_mask, tpos, tgt_idx) of ``parts`` (source, its data, device rows) as one
        batch, the counterfactuals padded on the right to the widest."""
        width = max(d.cf.shape[1] for _, d, _ in parts)
        cf = torch.cat([F.pad(d.cf[r], (0, width - d.cf.shape[1])) for _, d, r in parts])
        cf_mask = torch.cat([F.pad(d.cf_mask[r], (0, width - d.cf_mask.shape[1]))
                             for _, d, r in parts])
        tpos = torch.cat([d.tpos[r] for _, d, r in parts])
        tgt_idx = torch.cat([d.tgt_idx[r] for _, d, r in parts])
        return cf, cf_mask, tpos, tgt_idx

    def patched_sites(self, split: str, target: int,
                      parts: Sequence[tuple[int, DirectionData, Tensor]], h_t: Tensor) -> Tensor:
        """The patched target latents [B, d] of single-position interventions: ``h_t`` (the
        batch's target latents) with each part's source code applied."""
        news, start = [], 0
        for s, d, r in parts:
            n = len(r)
            h_s = self.parties[s].latents[split][d.src_idx[r], d.spos[r]]
            news.append(self.imap.apply(target, h_t[start: start + n],
                                        self.imap.code(s, target, h_s)))
            start += n
        return torch.cat(news)

    # ---- losses and accuracy ------------------------------------------------------------------
    @staticmethod
    def behaviour_loss(logits: Tensor, cont: Continuation) -> Tensor:
        """Cross-entropy on the causally determined tokens, averaged per row then over rows."""
        ce = F.cross_entropy(logits.transpose(1, 2), cont.targets, reduction="none")
        mask = cont.mask.to(ce.dtype)
        return ((ce * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()

    @staticmethod
    def correct(logits: Tensor, cont: Continuation) -> tuple[Tensor, Tensor]:
        """Per row: all response tokens right (trial) and the fraction right (token)."""
        hit = logits.argmax(-1) == cont.targets
        trial = (hit | ~cont.mask).all(1)
        token = (hit & cont.mask).sum(1) / cont.mask.sum(1).clamp(min=1)
        return trial, token

    def step_loss(self, batches: dict[tuple[int, int], Rows]) -> Tensor:
        """The training objective for one step: behaviour loss averaged over directions.

        Subclasses (CLMAS) add terms for directions into recording-only systems.
        """
        losses = []
        for target in sorted({t for _, t in batches}):
            if not self.parties[target].accessible:
                continue
            chunks = [(s, rows) for (s, t), rows in batches.items() if t == target]
            logits, cont = self.patched_logits("train", target, chunks)
            losses.append(self.behaviour_loss(logits, cont) * len(chunks))
        n_dirs = sum(1 for (_, t) in batches if self.parties[t].accessible)
        return torch.stack(losses).sum() / max(n_dirs, 1)

    @torch.no_grad()
    def iia(self, split: str = "val", directions: Sequence[tuple[int, int]] | None = None,
            chunk: int = 2048, limit: int | None = None) -> dict[tuple[int, int], float]:
        """Trial-level IIA per direction (teacher-forced; equal to free-running, see module).

        ``limit`` scores only each direction's first that many rows (a quick look, e.g. to
        choose a start); such a look is not kept for the paired gain test.
        """
        out = {}
        with parametrize.cached():
            for s, t in directions or self.directions:
                if not self.parties[t].accessible:
                    continue
                n = len(self.data[split][(s, t)].iv)
                if limit is not None:
                    n = min(n, limit)
                rows_hit = []
                for i in range(0, n, chunk):
                    rows = np.arange(i, min(i + chunk, n))
                    logits, cont = self.patched_logits(split, t, [(s, rows)])
                    rows_hit.append(self.correct(logits, cont)[0])
                hit = torch.cat(rows_hit)
                if split == "val" and limit is None:  # what the paired gain test compares
                    self._val_hits[(s, t)] = hit
                out[(s, t)] = int(hit.sum()) / n  # one read-back per direction
        return out

    @torch.no_grad()
    def evaluate(self, split: str = "test", chunk: int = 1024) -> dict[tuple[int, int], dict]:
        """Trial- and token-level IIA per direction with free-running generation."""
        out = {}
        with parametrize.cached():
            for s, t in self.directions:
                if not self.parties[t].accessible:
                    continue
                d = self.data[split][(s, t)]
                n = len(d.iv)
                trials, tokens = [], []
                for i in range(0, n, chunk):
                    trial, token = self._free_run(split, s, t, np.arange(i, min(i + chunk, n)))
                    trials.append(trial)
                    tokens.append(token)
                trial_all = torch.cat(trials).float()
                out[(s, t)] = {"trial": float(trial_all.mean()),
                               "token": float(torch.cat(tokens).mean()),
                               "n": n, "hits": int(trial_all.sum())}
        return out

    def _free_run(self, split: str, s: int, t: int, rows: Rows) -> tuple[Tensor, Tensor]:
        """Generate greedily after the patch: responses are the model's own tokens.

        A row whose teacher-forced pass is right everywhere generates exactly the
        counterfactual (its own tokens *are* the teacher's), so only rows with an error are
        generated step by step.
        """
        logits, cont = self.patched_logits(split, t, [(s, rows)])
        trial, token = self.correct(logits, cont)
        wrong = (~trial).nonzero(as_tuple=True)[0]
        if len(wrong) == 0:
            return trial, torch.ones_like(token)
        token = torch.ones_like(token)
        token[wrong] = self._generate(split, s, t, self.device_rows([rows])[0][wrong],
                                      logits[wrong].argmax(-1))
        return trial, token

    def _generate(self, split: str, s: int, t: int, rows: Tensor,
                  forced: Tensor | None = None) -> Tensor:
        """Token-level accuracy of free-running generation for ``rows``.

        ``forced`` (the rows' teacher-forced predictions [n, L]) saves the passes that cannot
        differ from them: up to a row's first error its generated prefix is the
        counterfactual's. Each step then runs only the rows past their first error whose token
        there is determined.
        """
        d = self.data[split][(s, t)]
        cont = Continuation.build(d.cf[rows], d.cf_mask[rows], d.tpos[rows])
        gen = d.cf[rows].clone()
        preds = torch.zeros_like(cont.targets)
        n, length = cont.targets.shape
        if forced is not None:
            forced = forced[:, :length]
            miss = (forced != cont.targets) & cont.mask
            first = torch.where(miss.any(1), miss.int().argmax(1),
                                torch.full_like(miss[:, 0], length, dtype=torch.long))
        for i in range(length):
            if not bool(cont.mask[:, i:].any()):
                break
            if forced is None:
                active = torch.arange(n, device=rows.device)
            else:
                active = ((first < i) & cont.mask[:, i]).nonzero(as_tuple=True)[0]
                preds[:, i] = forced[:, i]
            if len(active):
                logits, _ = self.patched_logits(split, t, [(s, rows[active])],
                                                cf_override=gen[active], upto=i + 1)
                preds[active, i] = logits[:, i].argmax(-1)
            col = cont.index[:, i]
            cur = gen.gather(1, col[:, None])[:, 0]
            gen.scatter_(1, col[:, None], torch.where(cont.mask[:, i], preds[:, i], cur)[:, None])
        hit = preds == cont.targets
        return (hit & cont.mask).sum(1) / cont.mask.sum(1).clamp(min=1)

    # ---- training ---------------------------------------------------------------------------
    def train(self, *, progress: bool = True, label: str = "align") -> TrainLog:
        """Adam on the map's parameters; keep the best validation score; stop on a plateau.

        The score (:meth:`validation_score`, averaged over directions; any real number) sets
        the best at the first validation and later only when it beats it by
        :meth:`gain_margin`; ``patience`` validations without that stop training. The map
        ends in the best state seen. With ``validate_start`` the initial map is validated
        first and counts as seen (a start that already reaches ``stop_at`` takes no step).
        """
        cfg = self.cfg
        metric = self.validation_metric
        log = TrainLog(metric=metric)
        params = [p for p in self.imap.parameters() if p.requires_grad]
        if not params or not self.trained:
            log.stopped = "nothing to train"
            return log
        opt = Adam(params, lr=cfg.lr)  # torch.optim.Adam's update without loading dynamo
        steps = self.training_steps(opt)
        best_state = copy.deepcopy(self.imap.state_dict())
        best: float | None = None
        self._best_hits = None
        bad = 0
        bar = _progress(cfg.max_steps, label, progress)
        start = time.perf_counter()

        def validate(step: int, loss: float) -> tuple[dict[tuple[int, int], float], float, bool]:
            """Validate and log it: (scores, their mean, whether every one reached stop_at)."""
            val = self.validation_score()
            mean_val = float(np.mean(list(val.values()))) if val else 0.0
            log.history.append({"step": step, "loss": loss, "val": mean_val,
                                **{f"{s}->{t}": v for (s, t), v in val.items()}})
            reached = bool(val) and min(val.values()) >= cfg.stop_at
            if reached:
                log.reached_at = time.time()
                log.stopped = f"validation {_SHOWN[metric]} reached {cfg.stop_at}"
            return val, mean_val, reached

        try:
            if cfg.validate_start:
                val, mean_val, reached = validate(0, float("nan"))
                best, self._best_hits = mean_val, dict(self._val_hits)
                log.best_step, log.best_val = 0, mean_val
                if reached:
                    log.stopped += " at the start"
                    return log
            for step in range(1, cfg.max_steps + 1):
                loss = next(steps)
                log.steps = step
                log.interventions += cfg.batch_size * len(self.trained)
                if step % cfg.eval_every == 0 or step == cfg.max_steps:
                    val, mean_val, reached = validate(step, loss.item())
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss.item():.3f}",
                                        **{f"val_{metric}": f"{mean_val:.3f}"},
                                        **{f"{s}>{t}": f"{v:.2f}" for (s, t), v in val.items()})
                    if best is None or mean_val > best + self.gain_margin(val):
                        best, bad = mean_val, 0
                        self._best_hits = dict(self._val_hits)
                        best_state = copy.deepcopy(self.imap.state_dict())
                        log.best_step, log.best_val = step, mean_val
                    else:
                        bad += 1
                    if reached:
                        break
                    if bad >= cfg.patience:
                        log.stopped = f"plateau ({cfg.patience} validations without gain)"
                        break
                if bar is not None:
                    bar.update(1)
            else:
                log.stopped = f"step cap ({cfg.max_steps})"
        except KeyboardInterrupt:
            log.stopped = "interrupted (best checkpoint kept)"
        finally:
            if bar is not None:
                bar.close()
            log.seconds = time.perf_counter() - start
            self.imap.load_state_dict(best_state)
        return log

    def training_steps(self, opt: Adam | torch.optim.Optimizer) -> Iterator[Tensor]:
        """Endless training steps: each draws the next batch of every trained direction (a
        seeded shuffle, reshuffled when used up), takes one optimiser step and yields the
        loss, still on the device (nothing here waits for it)."""
        cfg = self.cfg
        orders = {d: self._perm(len(self.data["train"][d].iv)) for d in self.trained}
        cursor = dict.fromkeys(self.trained, 0)
        from simbench.interventions.capture import captured_loss

        captured = captured_loss(self, Engine)  # None: the eager step below
        while True:
            adapt_threads()  # fewer threads while other processes use the cores
            batches: dict[tuple[int, int], Rows] = {}
            for d in self.trained:
                n = len(orders[d])
                if cursor[d] + cfg.batch_size > n:
                    orders[d] = self._perm(n)
                    cursor[d] = 0
                batches[d] = orders[d][cursor[d]: cursor[d] + cfg.batch_size]
                cursor[d] += cfg.batch_size
            if captured is not None:
                loss = captured(batches)
            else:
                with parametrize.cached():
                    loss = self.step_loss(batches)
            opt.zero_grad()
            loss.backward()
            opt.step()
            yield loss

    def validation_score(self) -> dict[tuple[int, int], float]:
        """What early stopping watches: validation IIA of the trained directions."""
        return self.iia("val", self.trained)

    def gain_margin(self, val: dict[tuple[int, int], float]) -> float:
        """How much a validation must beat the best to count as a gain: ``min_delta``, or when
        ``gain_se`` > 0 and the score is IIA, that many standard errors of the paired
        difference from the best if more (only the b of n rows the two maps disagree on move
        it: sqrt(b) / n per direction, sqrt(sum b / n^2) / D over D directions). A map that
        only wanders flips many rows each way, so it no longer resets its patience on noise.
        """
        cfg = self.cfg
        now, best = self._val_hits, self._best_hits
        if (cfg.gain_se <= 0 or self.validation_metric != "iia" or not val or best is None
                or not all(d in now and d in best for d in val)):
            return cfg.min_delta
        flips = torch.stack([(now[d] != best[d]).sum() for d in val]).cpu().numpy()
        n = np.array([len(now[d]) for d in val], dtype=float)
        return max(cfg.min_delta, cfg.gain_se * math.sqrt(float((flips / n ** 2).sum())) / len(val))

    @property
    def validation_metric(self) -> str:
        """The name of what :meth:`validation_score` returns (``"iia"`` here)."""
        return "iia"

    def _perm(self, n: int) -> np.ndarray:
        """A seeded shuffle of ``n`` rows, on the host (see the module docstring)."""
        return self.rng.permutation(n)


def _record_pool(party: Party, split: str, device: str, *, whole: bool = True) -> Tensor:
    """``party``'s site over its ``split`` pool, recorded by (and kept in) its runner.

    Single-position interventions read a pool's latents only at its stimuli's own positions,
    so unless ``whole`` the runner may skip each row's padding (stepwise ones read a source at
    every position of the target's sequence, which can lie past the source's end). A task pads
    on the right only (``simbench tasks --check``), so a row's length is how far it reaches."""
    assert party.runner is not None
    stim = party.pools[split].stimuli
    reach = None if whole else np.asarray(stim.lengths)
    return party.runner.cache(split, to_device(stim.tokens, device), reach=reach)


def _progress(total: int, label: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    from simbench.runtime import progress_shown

    return tqdm(total=total, desc=label, unit="step", leave=False, dynamic_ncols=True,
                disable=not progress_shown())


def directions_for(n: int, *, within: bool = True) -> list[tuple[int, int]]:
    """All ordered pairs (s, t) of n systems; within-model pairs (s == t) when ``within``."""
    return [(s, t) for s in range(n) for t in range(n) if within or s != t]


def iia_matrices(results: dict, names: Sequence[str]) -> dict[str, Any]:
    """Source x target DataArrays of trial and token IIA (NaN where not measured)."""
    import xarray as xr

    n = len(names)
    out = {}
    for level in ("trial", "token"):
        m = np.full((n, n), np.nan)
        for (s, t), r in results.items():
            m[s, t] = r[level]
        labels = [f"{i}:{nm}" if names.count(nm) > 1 else nm for i, nm in enumerate(names)]
        out[f"iia_{level}"] = xr.DataArray(m, dims=("source", "target"),
                                           coords={"source": labels, "target": labels})
    return out
