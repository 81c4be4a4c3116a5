"""``simbench zoo list|train|rebuild`` and ``simbench record``: the model zoo from the shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from simbench.cli.core import DEVICE_HELP
from simbench.cli.output import table
from simbench.errors import ParameterError


def register(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser("zoo", help="the trained model zoo: list, train, rebuild")
    zsub = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zoo.set_defaults(handler=lambda a, e: (zoo.print_help(), 0)[1])

    p = zsub.add_parser("list", help="the shipped models with accuracy, size and sha256")
    p.add_argument("--dir", help="zoo directory (default: the shipped recordings/zoo)")
    p.add_argument("--json", action="store_true",
                   help="print the numeric zoo as JSON (with --lm: the language models)")
    p.add_argument("--lm", action="store_true",
                   help="only the language models (recordings/lm_zoo)")
    p.set_defaults(handler=cmd_list)

    p = zsub.add_parser(
        "train", help="train one model until held-out trial accuracy reaches the target",
        description="Trains by next-token prediction on the response positions; stops when "
        "held-out trial accuracy (held-out counts and all counts) reaches --target or at "
        "--max-steps, and writes ID.safetensors + ID.json (config, accuracy, sha256).")
    p.add_argument("--task", required=True, help="task name (see `simbench tasks`)")
    p.add_argument("--arch", required=True, help="gru, lstm or transformer (tf): a registered "
                   "architecture (simbench.zoo.archs)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--out", default=".", help="directory for the checkpoint (default: .)")
    p.add_argument("--max-steps", type=int, help="step cap (default per architecture)")
    p.add_argument("--target", type=float, help="held-out trial accuracy to stop at (0.99)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--d-model", type=int, help="width of the hidden state (default 128)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default 128)")
    p.add_argument("--lr", type=float, help="peak learning rate (default per architecture)")
    p.add_argument("--eval-every", type=int, help="steps between accuracy checks (50)")
    p.add_argument("--all-counts", action="store_true",
                   help="train on every condition, held-out ones included (their held-out "
                   "accuracy is then on fresh sequences)")
    # --no-progress as everywhere else; --quiet, its old name, still works
    p.add_argument("--no-progress", "--quiet", action="store_true", dest="quiet",
                   help="no progress bar (there is none when stderr is not a terminal)")
    p.set_defaults(handler=cmd_train)

    p = zsub.add_parser(
        "rebuild", help="regenerate the shipped zoo from its seeds (CPU)",
        description="Regenerates the numeric zoo (recordings/zoo) and the language-model zoo "
        "(recordings/lm_zoo) deterministically on one CPU thread. --only lm rebuilds only the "
        "language models (about 3 minutes); --only numeric only the others.")
    p.add_argument("--dir", help="write here instead of the shipped recordings/zoo (the "
                   "language models go to DIR/lm_zoo)")
    p.add_argument("--only", help="comma-separated zoo ids, or 'lm' (every language model) or "
                   "'numeric' (every other model)")
    p.add_argument("--lm-steps", type=int, metavar="N",
                   help="cap each language model's training at N steps: a quick check of the "
                   "pipeline, not the shipped models (use with --dir)")
    p.set_defaults(handler=cmd_rebuild)

    p = sub.add_parser("record", help="record a zoo model's sites into a netCDF recording")
    p.add_argument("system", metavar="ZOO_ID", help="zoo id (or a .safetensors checkpoint, "
                   "or a language model's directory)")
    p.add_argument("--task", help="task of the stimuli (default: the model's own)")
    p.add_argument("--out", required=True, help="output .nc file")
    p.add_argument("--n", type=int, default=1000, help="number of stimuli (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stimuli", metavar="FILE",
                   help="record on these stimuli instead of --n/--seed: a recording (.nc; its "
                   "tokens and stimulus ids) or a text file with one sequence of "
                   "space-separated tokens per line ('#' comments skipped)")
    p.add_argument("--sites", help="comma-separated sites (default: all)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--prompts", metavar="FILE", help="a language-model directory: record it "
                   "over these prompts (one per line)")
    p.set_defaults(handler=cmd_record)


def cmd_list(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.zoo import list_lm_models, list_models

    models = [] if args.lm else list_models(args.dir)
    lms = list_lm_models(Path(args.dir) / "lm_zoo" if args.dir else None)
    if args.json:
        print(json.dumps(lms if args.lm else models, indent=1))
        return 0
    if not models and not lms:
        print("no models in the zoo (run `simbench zoo rebuild`)")
        return 0
    if models:
        rows = [(m["id"], m["task"], m["arch"], m["seed"], ",".join(m["sites"]),
                 float(m["accuracy"]), m["n_params"], m["sha256"][:12]) for m in models]
        print(table(("id", "task", "arch", "seed", "sites", "heldout_acc", "params", "sha256"),
                    rows))
    if lms:
        if models:
            print()
        print("language models (GPT-2 directories; toxicity: fraction of greedy continuations "
              "of held-out prompts with a hostile word)")
        rows = [(m["id"], m["group"], m["seed"], m["steps"], float(m["toxicity"]),
                 float(m["train_loss"]), m["n_params"], f"{m['size'] / 1e6:.2f} MB",
                 m["sha256"][:12]) for m in lms]
        print(table(("id", "group", "seed", "steps", "toxicity", "train_loss", "params", "size",
                     "sha256"), rows))
    return 0


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.registry import task_by_name
    from simbench.zoo import zoo_id
    from simbench.zoo.archs import get_arch
    from simbench.zoo.checkpoint import save_model
    from simbench.zoo.models import ModelConfig
    from simbench.zoo.training import default_train_config, train

    task = task_by_name(args.task)  # a plugin task as well as a built-in one
    found = get_arch(args.arch)
    arch = found.name
    cfg = default_train_config(arch, task)
    for field in ("max_steps", "target", "batch_size", "lr", "eval_every"):
        if getattr(args, field):
            setattr(cfg, field, getattr(args, field))
    if args.all_counts:
        cfg.train_counts = "all"
    model_config = ModelConfig(**found.widths(args.d_model)) if args.d_model else None
    model, meta = train(task, arch, args.seed, args.device, config=cfg, threads=args.threads,
                        model_config=model_config, progress=not args.quiet)
    path = Path(args.out) / f"{zoo_id(task.name, arch, args.seed)}.safetensors"
    side = save_model(model, path, meta)
    verdict = ("reached the target" if meta["stopped"] == "target"
               else f"stopped at the step cap ({cfg.max_steps} steps) BELOW the target")
    print(f"{arch} on {task.name}, seed {args.seed}: {verdict} after {meta['steps']} steps, "
          f"{meta['train_seconds']:.1f} s ({meta['tokens_per_s']:.0f} tokens/s); held-out "
          f"trial accuracy {meta['heldout_trial_acc']:.4f} (all counts "
          f"{meta['all_trial_acc']:.4f})\nwrote {path} (sha256 {side['sha256'][:16]}...)")
    return 0 if meta["stopped"] == "target" else 1


def cmd_rebuild(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.zoo import ZOO_SPEC, rebuild, zoo_id
    from simbench.zoo.lm_build import LM_NAMES, rebuild_lm

    if args.lm_steps is not None and not args.dir:
        raise ParameterError("--lm-steps trains models that are not the shipped ones, so it "
                             "does not write into the shipped zoo", field="--lm-steps",
                             fix="add --dir DIR to write the capped models there")
    t0 = time.perf_counter()
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else []
    known = {*LM_NAMES, "lm", "numeric", *(zoo_id(t, a, s) for t, a, s in ZOO_SPEC)}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ParameterError(f"no zoo model {', '.join(map(repr, unknown))}", field="--only",
                             fix="ids are listed by `simbench zoo list`; 'lm' selects every "
                             "language model, 'numeric' every other model")
    lm_only = [n for n in only if n in LM_NAMES]
    numeric_only = [n for n in only if n not in (*LM_NAMES, "lm", "numeric")]
    do_lm = not only or "lm" in only or bool(lm_only)
    do_numeric = not only or "numeric" in only or bool(numeric_only)
    entries = (rebuild(directory=args.dir, only=numeric_only or None, log=sys.stderr)
               if do_numeric else [])
    for e in entries:
        print(f"{e['task']:13s} {e['arch']:11s} s{e['seed']}  acc {e['accuracy']:.4f}  "
              f"{e['train_seconds']:.0f} s")
    lm_entries = (rebuild_lm(directory=Path(args.dir) / "lm_zoo" if args.dir else None,
                             only=None if "lm" in only else lm_only or None,
                             steps=args.lm_steps, log=sys.stderr) if do_lm else [])
    for e in lm_entries:
        print(f"{e['id']:15s} {e['group']:8s} s{e['seed']}  toxicity {e['toxicity']:.2f}  "
              f"loss {e['train_loss']:.4f}  {e['train_seconds']:.0f} s  sha256 "
              f"{e['sha256'][:12]}")
    print(f"rebuilt {len(entries) + len(lm_entries)} models in "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


def cmd_record(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.devices import resolve_device
    from simbench.recording import save_recording
    from simbench.systems.torch import TorchSystem

    spec = args.system
    from simbench.api import zoo_lm_dir

    if Path(spec).is_dir() or zoo_lm_dir(spec) is not None:  # a language model
        from simbench.cli.core import record_lm

        return record_lm(args)
    if spec.endswith(".safetensors"):
        system = TorchSystem.from_checkpoint(spec, task=args.task,
                                              device=resolve_device(args.device))
    else:
        system = TorchSystem.from_zoo(spec, device=resolve_device(args.device))
    if args.task and args.task != system.task:
        from simbench.registry import task_by_name

        system = TorchSystem(system.module, task_by_name(args.task),
                             system_id=system.system_id, meta=system.meta)
    sites = args.sites.split(",") if args.sites else None
    stim = None
    if args.stimuli:
        from simbench.stimuli import read_stimulus_file

        stim = read_stimulus_file(args.stimuli, system.task_def)
    t0 = time.perf_counter()
    rec = system.record(stim, n=args.n, seed=args.seed, sites=sites)
    path = save_recording(rec, args.out)
    n = len(stim) if stim is not None else args.n
    source = f" from {args.stimuli}" if stim is not None else ""
    print(f"recorded {n} stimuli{source} of {system.system_id} ({system.task}) at sites "
          f"{', '.join(rec.sites)} in {time.perf_counter() - t0:.1f} s -> {path}")
    return 0
