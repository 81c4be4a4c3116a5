"""One stepwise-MAS training step on two zoo language models: pyvene against simbench.

pyvene (the DAS library: ``IntervenableModel`` + ``LowRankRotatedSpaceIntervention``) is not a
dependency of simbench; run this script with a python that has both (pyvene pulls in datasets,
accelerate, plotnine and ipywidgets, so give it its own environment that still sees
simbench's)::

    python3 -m venv --system-site-packages /tmp/pvenv && /tmp/pvenv/bin/pip install pyvene
    PYTHONPATH=. /tmp/pvenv/bin/python benchmarks/pyvene_compare.py --json pyvene.json

Every path times the same training step on the same interventions: the same two models
(``lm_toxic_s1`` and ``lm_nontoxic_s1`` of the LM zoo by default), the same site (the output of
decoder block ``transformer.h.2``; ``--layer``), the same k, the same batch per direction (all four
directions s -> t, within-model ones included, as ``simbench score mas`` trains them), the
same sequences (each row a counterfactual sequence: the target's own tokens up to a sampled
step j, the source's after it) and the same loss (cross-entropy to the source's continuation
tokens after j, averaged per row, then over rows and directions), then backward and one Adam
step on the subspace parameters only (the models are frozen).

- ``pyvene``: one ``IntervenableModel`` per target model, each with one
  ``LowRankRotatedSpaceIntervention`` (a d x k matrix R_t with orthonormal columns, torch's
  orthogonal parametrisation, evaluated at each use as pyvene does) on ``block_output`` of
  the layer. Rows of both directions into a
  target go through one intervened forward of the *full* target model (hooks, every layer from
  the embeddings), with the source model's states passed as ``source_representations``
  (pyvene's way to patch in activations it did not compute). pyvene patches
  ``h_t + ((h_src - h_t) R_t) R_t^T``: one rotation shared by source and target.
- ``simbench``: :class:`simbench.lm.engine.LMEngine` with the cached prefix (the target's
  states at the site are computed once per counterfactual sequence; a step patches them and
  runs only the blocks above it and the output head at the scored positions), all directions into a
  target in one pass, per-model subspaces ``h_t + (h_s U_s - h_t U_t) U_t^T``.
- ``simbench-hooked``: the same engine with ``fast=False``: a forward hook on the full target
  model, every pass from the embeddings (what pyvene does too).

Differences that the step cannot avoid, stated rather than hidden:

1. MAS has one subspace per model (U_s codes the source, U_t the target); pyvene's
   intervention has one rotation R_t applied to both the target's and the source's states. For
   the within-model directions the two are the same; for the cross directions pyvene's
   ``source -> target`` reads the source's states through the *target's* R_t. The work per step
   is the same (one more d x k product per row for simbench).
2. Stepwise MAS patches positions 0..j with j differing per row; pyvene's ``unit_locations``
   must be rectangular (a tensor of positions per batch). So every row of pyvene's batch is
   patched at positions 0..P-1, P = 1 + the largest j in the batch, and at a row's positions
   after its own j the "source" passed in is the target's own unpatched state there (the site's
   states of the counterfactual sequence, constant while the frozen model is aligned), where
   pyvene's interchange adds ``((h_t - h_t) R) R^T = 0``: those positions are left exactly as
   they were. A check before the timing confirms that pyvene's patched logits and its gradient
   with respect to R_t equal simbench's (to 1e-4; the script fails otherwise) when simbench's
   U_s and U_t are set to pyvene's R_t.
3. The source's states (and the padding states of 2.) are computed once, outside the timed
   step, for all three paths: the simbench engine caches them the same way.

The three paths take turns, one step each, ``--warmup`` rounds untimed, then ``--steps``
timed rounds; the table reports the median (and the fastest) seconds per step on one torch
thread (``--threads``) and interventions per second. ``--json`` writes the figures, the
settings, the load average and the package versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

K, BATCH, NEW_TOKENS, N_PROMPTS = 16, 64, 8, 96
LAYER = 2  # GPT-2 decoder block: simbench site transformer.h.LAYER, pyvene layer LAYER
SIZES = {"n_train": 512, "n_val": 64, "n_test": 256}
CHECK_TOL = 1e-4


def need_pyvene() -> Any:
    """pyvene, or exit with how to get it (it is not a dependency of simbench)."""
    try:
        import pyvene
    except ImportError as exc:
        sys.exit(
            f"pyvene_compare: pyvene cannot be imported in {sys.executable} ({exc}). pyvene is "
            "not a dependency of simbench; give it its own environment that also sees "
            "simbench:\n  python3 -m venv --system-site-packages /tmp/pvenv && "
            "/tmp/pvenv/bin/pip install pyvene\n  PYTHONPATH=. /tmp/pvenv/bin/python "
            "benchmarks/pyvene_compare.py")
    return pyvene


def site(layer: int) -> str:
    """simbench's name of GPT-2 block ``layer``'s output (pyvene's ``block_output``)."""
    return f"transformer.h.{layer}"


def make_engine(systems: list[Any], *, fast: bool, k: int, batch: int, layer: int) -> Any:
    """A simbench LM engine on the two systems at block ``layer`` (all four directions)."""
    from simbench.interventions.engine import EngineConfig, Party, directions_for
    from simbench.interventions.maps import SubspaceMap
    from simbench.lm.data import OwnBehaviour
    from simbench.lm.engine import LMEngine
    from simbench.lm.runner import LMRunner
    from simbench.lm.text import greedy_continue

    task = systems[0].task_def
    behaviour, parties = [], []
    for s in systems:
        ids = s.encode(task.prompts, task.new_tokens)
        conts = greedy_continue(s.module, ids, task.new_tokens, pad=s.pad, side=s.padding_side)
        behaviour.append(OwnBehaviour.build(ids, conts, s.pad))
        runner = LMRunner(s, site(layer), fast=fast)
        parties.append(Party(s.system_id, task, "continuation", runner.width, runner))
    config = EngineConfig(seed=0, device="cpu", batch_size=batch, stepwise=True,
                          pool_size=len(task.prompts), **SIZES)
    return LMEngine(parties, SubspaceMap([p.width for p in parties], k, seed=0),
                    directions_for(len(parties)), config, behaviour=behaviour)


def simbench_step(engine: Any, opt: torch.optim.Optimizer, batches: dict) -> float:
    """One training step exactly as ``Engine.train`` runs it."""
    with parametrize.cached():
        loss = engine.step_loss(batches)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


class PyveneMAS:
    """Stepwise MAS through pyvene: one IntervenableModel per target (see module)."""

    def __init__(self, pv: Any, engine: Any, systems: list[Any], k: int, layer: int) -> None:
        self.engine = engine
        self.models = []
        for t, s in enumerate(systems):
            torch.manual_seed(t)
            d = engine.parties[t].width
            config = pv.IntervenableConfig(representations=[{
                "layer": layer, "component": "block_output", "unit": "pos",
                "intervention": pv.LowRankRotatedSpaceIntervention(
                    embed_dim=d, low_rank_dimension=k, keep_last_dim=True)}])
            model = pv.IntervenableModel(config, s.module)
            model.disable_model_gradients()
            self.models.append(model)
        self.params = [p for m in self.models for p in m.get_trainable_parameters()]

    def R(self, t: int) -> torch.Tensor:
        """Target t's d x k rotation (orthonormal columns)."""
        intervention = next(iter(self.models[t].interventions.values()))
        return intervention.rotate_layer.weight.detach().clone()

    def inputs(self, t: int, chunks: list[tuple[int, torch.Tensor]]) -> dict[str, Any]:
        """Rows of several directions into target t, as pyvene takes them: the padded
        counterfactual sequences, one rectangular set of positions 0..P-1, and per row the
        source's states at 0..j and the target's own unpatched states after j."""
        e = self.engine
        parts = [(s, e.data["train"][(s, t)], rows) for s, rows in chunks]
        width = max(iv.cf.shape[1] for _, iv, _ in parts)

        def cat(name: str) -> torch.Tensor:
            return torch.cat([F.pad(getattr(iv, name)[r], (0, width - iv.cf.shape[1]))
                              for _, iv, r in parts])

        cf, mask, scored, targets = (cat(n) for n in ("cf", "mask", "scored", "targets"))
        step = torch.cat([iv.step[r] for _, iv, r in parts])
        n_pos = int(step.max()) + 1
        sources = []
        for s, iv, r in parts:
            own = e.own_states[s][iv.src_idx[r], :n_pos]
            unpatched = e.states["train"][(s, t)][r, :n_pos]
            keep = torch.arange(n_pos)[None, :] <= iv.step[r][:, None]
            sources.append(torch.where(keep[..., None], own, unpatched))
        from simbench.lm.text import position_ids

        return {"base": {"input_ids": cf, "attention_mask": mask,
                         "position_ids": position_ids(mask)},
                "positions": list(range(n_pos)), "source": torch.cat(sources),
                "scored": scored, "targets": targets[scored], "n": int(cf.shape[0])}

    def logits(self, t: int, x: dict[str, Any]) -> torch.Tensor:
        """pyvene's intervened forward of target t: logits at the scored positions."""
        model = self.models[t]
        key = model.sorted_keys[0]
        _, out = model(x["base"], unit_locations={"base": x["positions"]},
                       source_representations={key: x["source"]}, use_cache=False)
        return out.logits[x["scored"]]

    def loss(self, batches: dict) -> torch.Tensor:
        """The engine's loss (per row, then rows, then directions) on pyvene's logits."""
        losses = []
        for t in sorted({t for _, t in batches}):
            chunks = [(s, rows) for (s, tt), rows in batches.items() if tt == t]
            x = self.inputs(t, chunks)
            ce = F.cross_entropy(self.logits(t, x), x["targets"], reduction="none")
            rows = x["scored"].nonzero(as_tuple=True)[0]
            losses.append(self.engine.per_row(ce, rows, x["n"]).mean() * len(chunks))
        return torch.stack(losses).sum() / max(len(batches), 1)

    def step(self, opt: torch.optim.Optimizer, batches: dict) -> float:
        loss = self.loss(batches)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())


def check_equal(pyv: PyveneMAS, engines: dict[str, Any], batches: dict, k: int
                ) -> dict[str, dict[str, float]]:
    """How far pyvene's step is from each simbench path's when simbench's U_s and U_t are set
    to pyvene's R_t (the map they then share), per direction: the largest |difference| of the
    patched logits, and of the gradient of the direction's cross-entropy with respect to R_t
    (relative to the largest gradient entry)."""
    from simbench.interventions.maps import SubspaceMap

    worst = {"logits": dict.fromkeys(engines, 0.0), "grad": dict.fromkeys(engines, 0.0)}
    for (s, t), rows in batches.items():
        intervention = next(iter(pyv.models[t].interventions.values()))
        with parametrize.cached():
            r_t = intervention.rotate_layer.weight
            r_t.retain_grad()
            x = pyv.inputs(t, [(s, rows)])
            theirs = pyv.logits(t, x)
            F.cross_entropy(theirs, x["targets"]).backward()
        their_grad = r_t.grad.detach().clone()
        for p in pyv.params:
            p.grad = None
        for name, engine in engines.items():
            shared_r = r_t.detach().clone().requires_grad_(True)
            shared = SubspaceMap([p.width for p in pyv.engine.parties], k)
            shared.fix(s, shared_r)
            shared.fix(t, shared_r)
            own_map, engine.imap = engine.imap, shared
            try:
                ours, _, targets, _ = engine.lm_logits("train", t, [(s, rows)])
                F.cross_entropy(ours, targets).backward()
            finally:
                engine.imap = own_map
            assert shared_r.grad is not None
            worst["logits"][name] = max(worst["logits"][name],
                                        float((ours - theirs).detach().abs().max()))
            worst["grad"][name] = max(worst["grad"][name], float(
                (shared_r.grad - their_grad).abs().max() / their_grad.abs().max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="lm_toxic_s1,lm_nontoxic_s1",
                        help="two LM zoo names or model directories, comma-separated")
    parser.add_argument("--layer", type=int, default=LAYER,
                        help="GPT-2 block whose output is aligned (transformer.h.LAYER)")
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--batch", type=int, default=BATCH, help="interventions per direction")
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    parser.add_argument("--prompts", type=int, default=N_PROMPTS,
                        help="held-out zoo prompts (lm_corpus.prompts(n, seed 0))")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per path")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)

    pv = need_pyvene()
    import transformers

    from simbench.interventions.frozen import frozen_on
    from simbench.lm import load_lm
    from simbench.zoo import lm_corpus, lm_model_dir

    torch.set_num_threads(args.threads)
    names = args.pair.split(",")
    if len(names) != 2:
        sys.exit(f"pyvene_compare: --pair needs two names, got {args.pair!r}")
    prompts = lm_corpus.prompts(args.prompts, 0)
    dirs = [n if os.path.isdir(n) else str(lm_model_dir(n)) for n in names]
    systems = [load_lm(d, prompts=prompts, new_tokens=args.new_tokens) for d in dirs]
    load_before = os.getloadavg()
    with frozen_on(systems[0].module, "cpu"), frozen_on(systems[1].module, "cpu"):
        engines = {"simbench": make_engine(systems, fast=True, k=args.k, batch=args.batch,
                                               layer=args.layer),
                   "simbench-hooked": make_engine(systems, fast=False, k=args.k,
                                                  batch=args.batch, layer=args.layer)}
        ref = engines["simbench"]
        g = torch.Generator().manual_seed(0)
        batches = {d: torch.randint(0, len(ref.data["train"][d]), (args.batch,), generator=g)
                   for d in ref.trained}
        pyv = PyveneMAS(pv, ref, systems, args.k, args.layer)
        check = check_equal(pyv, engines, batches, args.k)
        opts = {name: torch.optim.Adam(e.imap.parameters(), lr=1e-3)
                for name, e in engines.items()}
        opts["pyvene"] = torch.optim.Adam(pyv.params, lr=1e-3)
        steps: dict[str, Any] = {
            "pyvene": lambda: pyv.step(opts["pyvene"], batches),
            "simbench": lambda: simbench_step(engines["simbench"], opts["simbench"], batches),
            "simbench-hooked": lambda: simbench_step(engines["simbench-hooked"],
                                                     opts["simbench-hooked"], batches)}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for r in range(args.warmup + args.steps):
            for name, fn in steps.items():
                start = time.perf_counter()
                fn()
                if r >= args.warmup:
                    times[name].append(time.perf_counter() - start)
    load_after = os.getloadavg()

    n_iv = args.batch * len(batches)
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name] = {"median_s": med, "min_s": min(ts), "interventions_per_s": n_iv / med}
    base = rows["pyvene"]["median_s"]
    print(f"\none stepwise-MAS training step: {names[0]} <-> {names[1]}, "
          f"{site(args.layer)} (block output), k = {args.k}, batch {args.batch} x "
          f"{len(batches)} directions, "
          f"{args.new_tokens} new tokens, {args.threads} thread(s), median of {args.steps} "
          f"steps after {args.warmup} warm-up (load average {load_before[0]:.2f} -> "
          f"{load_after[0]:.2f})")
    print(f"{'path':<17}{'median s/step':>14}{'min s/step':>12}{'interventions/s':>17}"
          f"{'vs pyvene':>11}")
    for name, r in rows.items():
        print(f"{name:<17}{r['median_s']:>14.4f}{r['min_s']:>12.4f}"
              f"{r['interventions_per_s']:>17.0f}{base / r['median_s']:>10.2f}x")
    for what, label in (("logits", "patched logits"), ("grad", "gradient wrt R_t (relative)")):
        print(f"{label}, pyvene vs simbench with U_s = U_t = R_t: max |diff| "
              + ", ".join(f"{n} {v:.1e}" for n, v in check[what].items()))
    if args.json:
        out = {"pair": names, "site": site(args.layer), "k": args.k,
               "batch_per_direction": args.batch, "directions": [list(d) for d in batches],
               "new_tokens": args.new_tokens,
               "prompts": args.prompts, "threads": args.threads, "steps": args.steps,
               "warmup": args.warmup, "results": rows, "check_max_abs_diff": check,
               "loadavg_before": load_before, "loadavg_after": load_after,
               "versions": {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__,
                            "pyvene": getattr(pv, "__version__", None) or _version("pyvene")}}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    bad = {f"{what} {n}": v for what, per in check.items() for n, v in per.items()
           if v > CHECK_TOL}
    if bad:
        print(f"pyvene_compare: the patched passes differ by more than {CHECK_TOL}: {bad}",
              file=sys.stderr)
        return 1
    return 0


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
