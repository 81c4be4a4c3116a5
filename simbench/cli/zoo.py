"""``simbench zoo list|train|rebuild`` and ``simbench record``: the model zoo from the shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from simbench.cli.output import table


def register(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser("zoo", help="the trained model zoo: list, train, rebuild")
    zsub = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zoo.set_defaults(handler=lambda a, e: (zoo.print_help(), 0)[1])

    p = zsub.add_parser("list", help="the shipped models with accuracy, size and sha256")
    p.add_argument("--dir", help="zoo directory (default: the shipped recordings/zoo)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)

    p = zsub.add_parser(
        "train", help="train one model until held-out trial accuracy reaches the target",
        description="Trains by next-token prediction on the response positions; stops when "
        "held-out trial accuracy (held-out counts and all counts) reaches --target or at "
        "--max-steps, and writes ID.safetensors + ID.json (config, accuracy, sha256).")
    p.add_argument("--task", required=True, help="task name (see `simbench tasks`)")
    p.add_argument("--arch", required=True, help="gru, lstm or transformer (tf)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default=".", help="directory for the checkpoint (default: .)")
    p.add_argument("--max-steps", type=int, help="step cap (default per architecture)")
    p.add_argument("--target", type=float, help="held-out trial accuracy to stop at (0.99)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(handler=cmd_train)

    p = zsub.add_parser("rebuild", help="regenerate the shipped zoo from its seeds (CPU)")
    p.add_argument("--dir", help="write here instead of the shipped recordings/zoo")
    p.add_argument("--only", help="comma-separated zoo ids")
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
    p.add_argument("--device", default="cpu")
    p.add_argument("--prompts", metavar="FILE", help="a language-model directory: record it "
                   "over these prompts (one per line)")
    p.set_defaults(handler=cmd_record)


def cmd_list(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.zoo import list_models

    models = list_models(args.dir)
    if args.json:
        print(json.dumps(models, indent=1))
        return 0
    if not models:
        print("no models in the zoo (run `simbench zoo rebuild`)")
        return 0
    rows = [(m["id"], m["task"], m["arch"], m["seed"], ",".join(m["sites"]),
             float(m["accuracy"]), m["n_params"], m["sha256"][:12]) for m in models]
    print(table(("id", "task", "arch", "seed", "sites", "heldout_acc", "params", "sha256"),
                rows))
    return 0


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.registry import task_by_name
    from simbench.zoo import zoo_id
    from simbench.zoo.checkpoint import save_model
    from simbench.zoo.training import default_train_config, resolve_arch, train

    task = task_by_name(args.task)
    arch = resolve_arch(args.arch)
    cfg = default_train_config(arch, task.name)
    if args.max_steps:
        cfg.max_steps = args.max_steps
    if args.target:
        cfg.target = args.target
    model, meta = train(task, arch, args.seed, args.device, config=cfg, threads=args.threads)
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
    from simbench.zoo import rebuild

    t0 = time.perf_counter()
    only = args.only.split(",") if args.only else None
    entries = rebuild(directory=args.dir, only=only, log=sys.stderr)
    for e in entries:
        print(f"{e['task']:13s} {e['arch']:11s} s{e['seed']}  acc {e['accuracy']:.4f}  "
              f"{e['train_seconds']:.0f} s")
    print(f"rebuilt {len(entries)} models in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_record(args: argparse.Namespace, extra: list[str]) -> int:
    from simbench.recording import save_recording
    from simbench.systems.torch import TorchSystem

    spec = args.system
    if Path(spec).is_dir():  # a language model's save_pretrained directory
        from simbench.cli.core import record_lm

        return record_lm(args)
    if spec.endswith(".safetensors"):
        system = TorchSystem.from_checkpoint(spec, task=args.task, device=args.device)
    else:
        system = TorchSystem.from_zoo(spec, device=args.device)
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
